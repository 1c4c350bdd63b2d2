// Meter page: send a command over the API, then follow it until the meter answers or it times out.
(function () {
  var box = document.getElementById("commands");
  if (!box) { return; }
  var log = document.querySelector("#command-log tbody");
  // Screen readers hear each command's outcome once, not every poll.
  var announce = document.getElementById("command-announce");
  var FINAL = { ok: true, error: true, timeout: true };

  function json(url, options) {
    return fetch(url, Object.assign({ credentials: "same-origin", headers: { Accept: "application/json" } }, options || {}))
      .then(function (r) { return r.json().then(function (body) { return { status: r.status, body: body }; }); });
  }

  function describe(result) {
    if (result === null || result === undefined) { return ""; }
    if (typeof result !== "object") { return String(result); }
    if (result.error) { return result.error; }
    if (result.registers) {
      var reg = result.registers;
      return "kWh " + reg.kwh + " · kVARh " + reg.kvarh + " · max demand " + reg.max_demand_kw + " kW (as of " + result.as_of + ")";
    }
    return Object.keys(result).filter(function (k) { return k !== "meter_id"; }).map(function (k) {
      var v = result[k];
      return k + ": " + (typeof v === "object" ? JSON.stringify(v) : v);
    }).join(" · ");
  }

  function render(row, cmd) {
    row.dataset.status = cmd.status;
    row.cells[2].innerHTML = "";
    var badge = document.createElement("span");
    badge.className = "cmd-status " + cmd.status;
    badge.textContent = cmd.status;
    row.cells[2].appendChild(badge);
    row.cells[3].textContent = describe(cmd.result);
    if (announce && FINAL[cmd.status] && row.dataset.announced !== cmd.status) {
      row.dataset.announced = cmd.status;
      announce.textContent = row.cells[1].textContent + ": " + cmd.status + (row.cells[3].textContent ? " · " + row.cells[3].textContent : "");
    }
  }

  function follow(row, url, started) {
    json(url).then(function (res) {
      render(row, res.body);
      if (!FINAL[res.body.status] && Date.now() - started < 30 * 60 * 1000) {
        setTimeout(function () { follow(row, url, started); }, 500);
      }
    }).catch(function () { setTimeout(function () { follow(row, url, started); }, 2000); });
  }

  function addRow(label, sentAt, atEnd) {
    var empty = log.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    var row = log.insertRow(atEnd ? -1 : 0);
    ["", "", "", ""].forEach(function () { row.insertCell(); });
    row.cells[0].textContent = (sentAt || new Date().toISOString()).slice(0, 19).replace("T", " ");
    row.cells[1].textContent = label;
    row.cells[2].textContent = "sending…";
    return row;
  }

  // The commands sent before this page loaded (newest first), still followed if pending:
  // a reload used to show "No commands sent from here yet" after eight had been answered.
  var labels = {};
  box.querySelectorAll("button[data-command]").forEach(function (button) {
    labels[button.dataset.command + " " + JSON.stringify(JSON.parse(button.dataset.args || "{}"))] = button.textContent.trim();
  });
  if (box.dataset.historyUrl) {
    json(box.dataset.historyUrl).then(function (res) {
      if (res.status !== 200) { return; }
      res.body.commands.forEach(function (cmd) {
        var key = cmd.command + " " + JSON.stringify(cmd.args || {});
        var row = addRow(labels[key] || cmd.command, cmd.requested_at, true);
        row.dataset.announced = cmd.status;  // already known: not announced again
        render(row, cmd);
        if (!FINAL[cmd.status]) { follow(row, cmd.url, Date.now()); }
      });
    }).catch(function () { /* the log fills as commands are sent */ });
  }

  box.querySelectorAll("button[data-command]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (button.dataset.command === "disconnect" && !window.confirm("Open the relay and cut this customer's supply?")) { return; }
      var row = addRow(button.textContent.trim());
      json(box.dataset.sendUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": box.dataset.csrf },
        body: JSON.stringify({ command: button.dataset.command, args: JSON.parse(button.dataset.args || "{}") })
      }).then(function (res) {
        if (res.status === 202) { render(row, res.body); follow(row, res.body.url, Date.now()); }
        else { render(row, { status: "error", result: { error: res.body.message || ("HTTP " + res.status) } }); }
      }).catch(function () { render(row, { status: "error", result: { error: "network error" } }); });
    });
  });
})();
