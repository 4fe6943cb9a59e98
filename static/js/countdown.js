/* 支付倒计时：读取 #countdown[data-expires]（unix 秒），显示剩余时间；到期时用
 * #qr-expired（“二维码已失效”）盖住二维码，免得有人扫一个已经不能付款的码。 */
(function () {
  "use strict";
  var el = document.getElementById("countdown");
  if (!el) { return; }
  var expires = parseInt(el.getAttribute("data-expires"), 10);
  if (!isFinite(expires) || expires <= 0) { return; }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  var timer = null;
  function tick() {
    var left = Math.floor(expires - Date.now() / 1000);
    if (left <= 0) {
      el.textContent = "订单已超时";
      el.className = "expired";
      var cover = document.getElementById("qr-expired");
      if (cover) {
        cover.hidden = false;
        if (cover.parentNode) { cover.parentNode.className += " is-expired"; }
      }
      if (timer !== null) { window.clearInterval(timer); timer = null; }
      return;
    }
    var m = Math.floor(left / 60);
    var s = left % 60;
    el.textContent = "剩余 " + pad(m) + " 分 " + pad(s) + " 秒";
  }

  tick();
  if (Math.floor(expires - Date.now() / 1000) > 0) {
    timer = window.setInterval(tick, 1000);
  }
})();
