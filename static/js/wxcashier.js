/* 微信内的收银台：点击 #wx-pay 后用 WeixinJSBridge 的 getBrandWCPayRequest 调起支付，
 * 参数来自按钮的 data-launch（服务端签好的 appId/timeStamp/nonceStr/package/signType/paySign）。
 * 微信返回 ok 后打开 data-return（本页加 paid=1），由服务端向微信确认订单已支付，
 * 尚未确认时页面显示“正在确认”并每两秒再问一次；取消或失败时说明原因，可以再次点击。 */
(function () {
  "use strict";
  // 已付款、等待商城确认：两秒后再问一次。
  var confirming = document.getElementById("cashier-confirming");
  if (confirming) {
    window.setTimeout(function () {
      window.location.replace(confirming.getAttribute("data-reload"));
    }, 2000);
    return;
  }
  var button = document.getElementById("wx-pay");
  var status = document.getElementById("cashier-status");
  if (!button || !status) { return; }

  var params;
  try {
    params = JSON.parse(button.getAttribute("data-launch") || "");
  } catch (e) {
    status.textContent = "支付参数有误，请刷新页面重试。";
    button.disabled = true;
    return;
  }

  function say(text, state) {
    status.textContent = text;
    status.setAttribute("data-state", state);
  }

  function launch() {
    button.disabled = true;
    say("正在调起微信支付…", "waiting");
    window.WeixinJSBridge.invoke("getBrandWCPayRequest", params, function (res) {
      var msg = (res && res.err_msg) || "";
      if (msg === "get_brand_wcpay_request:ok") {
        say("支付成功，正在确认…", "done");
        window.location.replace(button.getAttribute("data-return"));
        return;
      }
      button.disabled = false;
      if (msg === "get_brand_wcpay_request:cancel") {
        say("已取消支付，可以再次点击支付。", "cancel");
      } else {
        say("支付未完成：" + ((res && res.err_desc) || msg || "未知错误") + "。请重试。", "fail");
      }
    });
  }

  function ready(fn) {
    if (window.WeixinJSBridge) { fn(); return; }
    document.addEventListener("WeixinJSBridgeReady", fn, false);
  }

  button.addEventListener("click", function () {
    if (window.WeixinJSBridge) { launch(); return; }
    say("请在微信中打开本页面完成支付。", "fail");
    ready(launch);
  });
})();
