// Refresh the utilities table from /api/v1/fleet/summary every few seconds.
(function () {
  var table = document.getElementById("utilities");
  if (!table) { return; }
  var url = table.dataset.summaryUrl;
  var stamp = document.getElementById("refreshed");
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) { return; }
        body.utilities.forEach(function (u) {
          var row = table.querySelector('tr[data-utility="' + u.id + '"]');
          if (!row) { return; }
          ["meters", "online", "offline", "readings_last_hour"].forEach(function (f) {
            var cell = row.querySelector('[data-field="' + f + '"]');
            if (cell) { cell.textContent = u[f]; }
          });
        });
        if (stamp) { stamp.textContent = "Updated " + new Date().toLocaleTimeString() + "."; }
      })
      .catch(function () { /* keep the last figures; the next poll retries */ });
  }
  setInterval(refresh, 5000);
})();
