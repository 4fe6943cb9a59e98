/* 支付状态轮询：读取 #pay-status 的 data-status-url / data-result-url / data-order-status，
 * 每秒 POST 查询一次订单状态；状态不再是 1（待支付）时跳转到支付结果页。
 * 到达 #countdown[data-expires]（unix 秒）后停止轮询。没有 JavaScript 时页面上的
 * “我已完成支付”链接同样可以到达结果页。 */
(function () {
  "use strict";
  var el = document.getElementById("pay-status");
  if (!el) { return; }

  var statusUrl = el.getAttribute("data-status-url") || "";
  var resultUrl = el.getAttribute("data-result-url") || "";
  var initial = (el.getAttribute("data-order-status") || "").replace(/^\s+|\s+$/g, "");
  var INTERVAL = 1000;
  var UNPAID = 1;

  var stopped = false;
  var failing = false;
  var pollTimer = null;
  var tickTimer = null;
  var started = Date.now();

  function setText(text, state) {
    el.textContent = text;
    el.setAttribute("data-state", state);
  }

  function stop() {
    stopped = true;
    if (pollTimer !== null) { window.clearTimeout(pollTimer); pollTimer = null; }
    if (tickTimer !== null) { window.clearInterval(tickTimer); tickTimer = null; }
  }

  function goResult() {
    if (!resultUrl) { return; }
    stop();
    setText("支付状态已更新，正在跳转…", "done");
    // replace: the back button then skips this pay page (its QR is stale) for the shop.
    window.location.replace(resultUrl);
  }

  // 订单已不是待支付：直接去结果页。
  if (initial !== "" && initial !== String(UNPAID)) {
    goResult();
    return;
  }
  if (!statusUrl || !resultUrl) { return; }

  var expires = NaN;
  var cd = document.getElementById("countdown");
  if (cd) { expires = parseInt(cd.getAttribute("data-expires"), 10); }
  var hasDeadline = isFinite(expires) && expires > 0;

  function expired() {
    return hasDeadline && Date.now() / 1000 >= expires;
  }

  function render() {
    if (stopped) { return; }
    if (expired()) {
      stop();
      setText("订单已超时", "expired");
      return;
    }
    if (failing) {
      setText("网络异常，正在重试…", "error");
      return;
    }
    var secs = Math.floor((Date.now() - started) / 1000);
    setText("等待支付…" + (secs > 0 ? "（已等待 " + secs + " 秒）" : ""), "waiting");
  }

  // fetch 优先，老浏览器退回 XMLHttpRequest。回调参数：(error, parsedJson)。
  function request(done) {
    if (window.fetch) {
      window.fetch(statusUrl, {
        method: "POST",
        headers: { "Accept": "application/json" },
        credentials: "same-origin",
        cache: "no-store"
      }).then(function (res) {
        if (!res.ok) { throw new Error("HTTP " + res.status); }
        return res.json();
      }).then(function (json) {
        done(null, json);
      }, function (err) {
        done(err || new Error("request failed"), null);
      });
      return;
    }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", statusUrl, true);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) { return; }
      if (xhr.status < 200 || xhr.status >= 300) { done(new Error("HTTP " + xhr.status), null); return; }
      var json = null;
      try { json = JSON.parse(xhr.responseText); } catch (e) { done(e, null); return; }
      done(null, json);
    };
    xhr.send();
  }

  function schedule() {
    if (stopped) { return; }
    pollTimer = window.setTimeout(poll, INTERVAL);
  }

  function poll() {
    pollTimer = null;
    if (stopped) { return; }
    if (expired()) { render(); return; }
    request(function (err, json) {
      if (stopped) { return; }
      if (err || !json || typeof json !== "object") {
        failing = true;
        render();
        schedule();
        return;
      }
      failing = false;
      var status = json.data;
      if (typeof status === "number" && isFinite(status) && status !== UNPAID) {
        goResult();
        return;
      }
      render();
      schedule();
    });
  }

  render();
  tickTimer = window.setInterval(render, INTERVAL);
  schedule();
})();
