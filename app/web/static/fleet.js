// Live fleet page: Server-Sent Events update the totals, utility rows, event feed and map.
(function () {
  var root = document.getElementById("live-totals");
  if (!root || !window.EventSource) { return; }
  var state = document.getElementById("live-state");
  var stamp = document.getElementById("refreshed");
  var feed = document.getElementById("event-feed");
  var mapEl = document.getElementById("fleet-map");
  var table = document.getElementById("utilities");
  var signature = null;
  var outline = null;

  var announcer = document.getElementById("feed-announce");
  var pause = document.getElementById("live-pause");
  var paused = false;
  var busy = false;  // the portal's live streams are all taken: a snapshot every 15 s
  var pending = null;  // the newest snapshot that arrived while paused
  var updates = 0;

  // Written only when it changes: a role="status" element re-announces every write.
  function setState(text, on) {
    var cls = "live-state" + (on === null ? "" : on ? " on" : " off");
    if (state.textContent !== text) { state.textContent = text; }
    if (state.className !== cls) { state.className = cls; }
  }

  function meterUrl(id) { return root.dataset.meterUrl.replace("__id__", encodeURIComponent(id)); }

  function feedItem(e) {
    var li = document.createElement("li");
    li.className = "sev-" + e.severity;
    li.dataset.event = String(e.id);
    var sev = document.createElement("span");
    sev.className = "sev " + e.severity;
    sev.textContent = e.severity;
    var what = document.createElement("strong");
    what.textContent = e.type.replace(/_/g, " ");
    var link = document.createElement("a");
    link.href = meterUrl(e.meter_id);
    link.textContent = e.site_name;
    var when = document.createElement("span");
    when.className = "muted small";
    // Minutes are enough on a wall screen: "2026-12-08 13:15 UTC", not microseconds.
    when.textContent = e.utility + " · " + e.at.slice(0, 16).replace("T", " ") + " UTC";
    li.append(sev, " ", what, " · ", link, " ", when);
    return li;
  }

  // New events are told at most every ANNOUNCE_MS, so a storm is one sentence, not fifty.
  var ANNOUNCE_MS = 5000;
  var unannounced = [];
  var announceTimer = null;
  var lastAnnounced = 0;
  function announce() {
    announceTimer = null;
    if (!unannounced.length) { return; }
    var newest = unannounced[0];
    var what = newest.type.replace(/_/g, " ") + " at " + newest.site_name + " (" + newest.severity + ")";
    announcer.textContent = unannounced.length === 1
      ? "New event: " + what + "."
      : unannounced.length + " new events; newest: " + what + ".";
    unannounced = [];
    lastAnnounced = Date.now();
  }
  function queueAnnouncement(fresh) {
    if (!announcer || !fresh.length) { return; }
    unannounced = fresh.concat(unannounced);
    if (announceTimer === null) {
      announceTimer = setTimeout(announce, Math.max(0, lastAnnounced + ANNOUNCE_MS - Date.now()));
    }
  }

  // Existing items are left alone (a focused link keeps focus, nothing is re-read); only
  // new events are inserted and events that left the feed removed.
  function renderFeed(events) {
    var existing = {};
    feed.querySelectorAll("li[data-event]").forEach(function (li) { existing[li.dataset.event] = li; });
    var empty = feed.querySelector("li.empty");
    if (!events.length) {
      Object.keys(existing).forEach(function (id) { existing[id].remove(); });
      if (!empty) {
        empty = document.createElement("li");
        empty.className = "muted empty";
        empty.textContent = "No events yet.";
        feed.appendChild(empty);
      }
      return;
    }
    if (empty) { empty.remove(); }
    var keep = {}, fresh = [];
    var cursor = feed.firstElementChild;
    events.forEach(function (e) {
      var id = String(e.id);
      keep[id] = true;
      var li = existing[id];
      if (!li) { li = feedItem(e); fresh.push(e); }
      if (li === cursor) { cursor = cursor.nextElementSibling; } else { feed.insertBefore(li, cursor); }
    });
    Object.keys(existing).forEach(function (id) { if (!keep[id]) { existing[id].remove(); } });
    queueAnnouncement(fresh);
  }

  var STYLES = {
    online: { name: "Online", color: "#1a7f37", symbol: "circle" },
    offline: { name: "Offline", color: "#cf222e", symbol: "x" },
    unknown: { name: "Not heard from", color: "#8c959f", symbol: "diamond" }
  };

  function drawMap(meters) {
    if (!mapEl || !window.Plotly) { return; }
    var traces = [];
    if (outline) {
      traces.push({ x: outline.lon, y: outline.lat, mode: "lines", type: "scatter", hoverinfo: "skip",
        line: { color: "#afb8c1", width: 0.8 }, showlegend: false });
    }
    Object.keys(STYLES).forEach(function (status) {
      var group = meters.filter(function (m) { return (STYLES[m.status] ? m.status : "unknown") === status; });
      if (!group.length) { return; }
      var st = STYLES[status];
      traces.push({
        x: group.map(function (m) { return m.lon; }), y: group.map(function (m) { return m.lat; }),
        customdata: group.map(function (m) { return m.id; }),
        text: group.map(function (m) { return m.id + "<br>" + m.site + "<br>" + st.name; }),
        hoverinfo: "text", mode: "markers", type: "scatter", name: st.name,
        marker: { color: st.color, symbol: st.symbol, size: 8, line: { width: 1, color: "#fff" } }
      });
    });
    var layout = {
      margin: { l: 0, r: 0, t: 0, b: 0 }, showlegend: true, legend: { orientation: "h", y: 0 },
      xaxis: { range: [-125, -66], visible: false, fixedrange: true },
      yaxis: { range: [24, 50], visible: false, scaleanchor: "x", scaleratio: 1.29, fixedrange: true },
      plot_bgcolor: "#fff", paper_bgcolor: "#fff", hovermode: "closest"
    };
    window.Plotly.react(mapEl, traces, layout, { displayModeBar: false, responsive: true }).then(function () {
      if (window.WattlineCharts) { window.WattlineCharts.hideSvg(mapEl); }
    });
    if (!mapEl.dataset.bound) {
      mapEl.dataset.bound = "1";
      mapEl.on("plotly_click", function (ev) {
        var id = ev.points && ev.points[0] && ev.points[0].customdata;
        if (id) { window.location.href = meterUrl(id); }
      });
    }
  }

  function refreshMap() {
    fetch(root.dataset.mapUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) { if (body) { drawMap(body.meters); } })
      .catch(function () { /* the next status change retries */ });
  }

  function setText(el, value) { if (el.textContent !== value) { el.textContent = value; } }

  function apply(snap) {
    if (paused) { pending = snap; return; }
    Object.keys(snap.totals).forEach(function (key) {
      root.querySelectorAll('[data-total="' + key + '"]').forEach(function (el) {
        setText(el, snap.totals[key].toLocaleString("en-US"));
      });
    });
    // The segment tiles are the utilities' sums, so they move with the totals above them.
    var bySegment = {};
    snap.utilities.forEach(function (u) {
      var seg = bySegment[u.segment] || (bySegment[u.segment] = { meters: 0, online: 0, offline: 0, readings_last_hour: 0 });
      Object.keys(seg).forEach(function (f) { seg[f] += u[f]; });
    });
    document.querySelectorAll("[data-segment]").forEach(function (tile) {
      var seg = bySegment[tile.dataset.segment];
      if (!seg) { return; }
      tile.querySelectorAll("[data-seg-field]").forEach(function (el) {
        setText(el, seg[el.dataset.segField].toLocaleString("en-US"));
      });
    });
    if (table) {
      snap.utilities.forEach(function (u) {
        var row = table.querySelector('tr[data-utility="' + u.id + '"]');
        if (!row) { return; }
        ["meters", "online", "offline", "readings_last_hour"].forEach(function (f) {
          var cell = row.querySelector('[data-field="' + f + '"]');
          if (cell) { setText(cell, String(u[f])); }
        });
      });
    }
    renderFeed(snap.events);
    if (snap.status_signature !== signature) {
      signature = snap.status_signature;
      refreshMap();
    }
    if (stamp) { stamp.textContent = "Updated " + new Date().toLocaleTimeString() + "."; }
    updates += 1;
    root.dataset.updates = String(updates);  // how many pushes were applied (tests watch it)
  }

  if (pause) {
    pause.addEventListener("click", function () {
      paused = !paused;
      pause.setAttribute("aria-pressed", paused ? "true" : "false");
      if (paused) {
        setState("paused", null);
      } else {
        setState(busy ? "updating every 15 s" : "live", true);
        if (pending) { var snap = pending; pending = null; apply(snap); }
      }
    });
  }

  fetch(root.dataset.outlineUrl, { credentials: "same-origin" })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (body) { outline = body; refreshMap(); })
    .catch(function () { refreshMap(); });

  var source = new EventSource(root.dataset.streamUrl);
  // "busy": this page gets a snapshot a while and is told so, instead of looking broken
  // between them.
  // While paused the status says so, whatever the stream does meanwhile.
  source.addEventListener("open", function () { if (!busy && !paused) { setState("live", true); } });
  source.addEventListener("error", function () {
    if (!paused) { setState(busy ? "updating every 15 s" : "reconnecting…", busy); }
  });
  source.addEventListener("busy", function () { busy = true; if (!paused) { setState("updating every 15 s", true); } });
  source.addEventListener("fleet", function (ev) {
    if (!busy && !paused) { setState("live", true); }
    apply(JSON.parse(ev.data));
  });
  source.addEventListener("live", function () { busy = false; if (!paused) { setState("live", true); } });
})();
