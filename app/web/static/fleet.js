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

  function setState(text, on) {
    state.textContent = text;
    state.className = "live-state " + (on ? "on" : "off");
  }

  function meterUrl(id) { return root.dataset.meterUrl.replace("__id__", encodeURIComponent(id)); }

  function renderFeed(events) {
    feed.textContent = "";
    if (!events.length) {
      var empty = document.createElement("li");
      empty.className = "muted empty";
      empty.textContent = "No events yet.";
      feed.appendChild(empty);
      return;
    }
    events.forEach(function (e) {
      var li = document.createElement("li");
      li.className = "sev-" + e.severity;
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
      feed.appendChild(li);
    });
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
    window.Plotly.react(mapEl, traces, layout, { displayModeBar: false, responsive: true });
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

  function apply(snap) {
    Object.keys(snap.totals).forEach(function (key) {
      root.querySelectorAll('[data-total="' + key + '"]').forEach(function (el) {
        el.textContent = snap.totals[key].toLocaleString("en-US");
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
        el.textContent = seg[el.dataset.segField].toLocaleString("en-US");
      });
    });
    if (table) {
      snap.utilities.forEach(function (u) {
        var row = table.querySelector('tr[data-utility="' + u.id + '"]');
        if (!row) { return; }
        ["meters", "online", "offline", "readings_last_hour"].forEach(function (f) {
          var cell = row.querySelector('[data-field="' + f + '"]');
          if (cell) { cell.textContent = u[f]; }
        });
      });
    }
    renderFeed(snap.events);
    if (snap.status_signature !== signature) {
      signature = snap.status_signature;
      refreshMap();
    }
    if (stamp) { stamp.textContent = "Updated " + new Date().toLocaleTimeString() + "."; }
  }

  fetch(root.dataset.outlineUrl, { credentials: "same-origin" })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (body) { outline = body; refreshMap(); })
    .catch(function () { refreshMap(); });

  var source = new EventSource(root.dataset.streamUrl);
  // "busy": the portal's live streams are all taken; this page gets a snapshot a while
  // and is told so, instead of looking broken between them.
  var busy = false;
  source.addEventListener("open", function () { if (!busy) { setState("live", true); } });
  source.addEventListener("error", function () {
    setState(busy ? "updating every 15 s" : "reconnecting…", busy);
  });
  source.addEventListener("busy", function () { busy = true; setState("updating every 15 s", true); });
  source.addEventListener("fleet", function (ev) {
    if (!busy) { setState("live", true); }
    apply(JSON.parse(ev.data));
  });
  source.addEventListener("live", function () { busy = false; setState("live", true); });
})();
