// The admin order page while a refund is on its way: asks the order's refunds.json every
// 3 s and writes each refund's status and the order's status into the page, until none is
// pending (or after 10 minutes: reload by hand then).
(function () {
  "use strict";
  var table = document.getElementById("refunds");
  var url = table && table.getAttribute("data-poll");
  if (!url) return;
  var note = document.getElementById("refund-progress");
  var badge = document.getElementById("order-status");
  var started = Date.now();
  function show(data) {
    if (badge) badge.textContent = data.status_label;
    data.refunds.forEach(function (r) {
      var row = table.querySelector('tr[data-refund-id="' + r.id + '"]');
      if (!row) return;
      var cell = row.querySelector(".refund-status");
      if (cell) cell.textContent = r.status_label;
      row.className = "refund-row refund-status-" + r.status;
    });
    if (!data.in_progress && note) note.textContent = "退款状态已更新";
    return data.in_progress;
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (data) {
        var again = data ? show(data) : true;
        if (again && Date.now() - started < 600000) setTimeout(poll, 3000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 3000);
})();
