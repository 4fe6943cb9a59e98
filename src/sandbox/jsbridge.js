/* 沙箱：微信浏览器的 WeixinJSBridge 替身（只在沙箱模式下由收银台页面加载）。
 * 真实的微信客户端会自己注入 WeixinJSBridge；这里在 User-Agent 含 MicroMessenger 时
 * 定义同名对象：invoke("getBrandWCPayRequest", 参数, 回调) 弹出模拟的付款确认层，
 * 用户确认后把参数交给沙箱（POST /sandbox/wechat/jsapi_pay）验签并付款，
 * 回调收到与微信相同的 err_msg：get_brand_wcpay_request:ok / :cancel / :fail。 */
(function () {
  "use strict";
  if (window.WeixinJSBridge || navigator.userAgent.indexOf("MicroMessenger") < 0) { return; }

  function sheet(onConfirm, onCancel) {
    var layer = document.createElement("div");
    layer.id = "sbx-wx-sheet";
    layer.setAttribute("role", "dialog");
    layer.setAttribute("aria-label", "微信支付（沙箱）");
    layer.style.cssText = "position:fixed;left:0;right:0;bottom:0;padding:16px;background:#fff;" +
      "border-top:1px solid #ddd;box-shadow:0 -4px 16px rgba(0,0,0,.15);z-index:9999;text-align:center";
    layer.innerHTML = '<p style="margin:0 0 4px;color:#07c160;font-weight:600">微信支付（沙箱模拟）</p>' +
      '<p style="margin:0 0 12px">确认付款给 结算商城？不会产生真实扣款。</p>' +
      '<button type="button" id="sbx-wx-confirm" style="padding:10px 24px;margin:0 6px;background:#07c160;color:#fff;border:0;border-radius:4px">确认支付</button>' +
      '<button type="button" id="sbx-wx-cancel" style="padding:10px 24px;margin:0 6px">取消</button>';
    document.body.appendChild(layer);
    function close() { layer.parentNode && layer.parentNode.removeChild(layer); }
    document.getElementById("sbx-wx-confirm").onclick = function () { close(); onConfirm(); };
    document.getElementById("sbx-wx-cancel").onclick = function () { close(); onCancel(); };
  }

  function pay(params, done) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/sandbox/wechat/jsapi_pay");
    xhr.setRequestHeader("Content-Type", "application/json");
    xhr.onload = function () {
      var res;
      try { res = JSON.parse(xhr.responseText); } catch (e) { res = null; }
      done(res || { err_msg: "get_brand_wcpay_request:fail", err_desc: "沙箱无响应" });
    };
    xhr.onerror = function () {
      done({ err_msg: "get_brand_wcpay_request:fail", err_desc: "网络错误" });
    };
    xhr.send(JSON.stringify(params));
  }

  window.WeixinJSBridge = {
    invoke: function (name, params, callback) {
      var cb = typeof callback === "function" ? callback : function () {};
      if (name !== "getBrandWCPayRequest") {
        cb({ err_msg: name + ":fail", err_desc: "沙箱只模拟 getBrandWCPayRequest" });
        return;
      }
      sheet(function () { pay(params || {}, cb); },
            function () { cb({ err_msg: "get_brand_wcpay_request:cancel" }); });
    }
  };

  function ready() {
    var e = document.createEvent("Event");
    e.initEvent("WeixinJSBridgeReady", true, true);
    document.dispatchEvent(e);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
