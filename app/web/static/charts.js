// Render every element with data-plotly="<id of a JSON script tag>" as a plotly chart.
(function () {
  // The plot's SVG reads as loose axis ticks; the figure's caption (and, where the numbers
  // are nowhere else, its "Show data" table) says what it shows instead.
  function hideSvg(el) {
    el.querySelectorAll(".main-svg").forEach(function (svg) { svg.setAttribute("aria-hidden", "true"); });
  }
  window.WattlineCharts = { hideSvg: hideSvg };

  function cell(tag, value) {
    var el = document.createElement(tag);
    el.textContent = value;
    return el;
  }
  function show(v) {
    if (v === null || v === undefined) { return "—"; }
    if (typeof v === "number") { return v.toLocaleString("en-US", { maximumFractionDigits: 3 }); }
    // ISO times as the captions give them: "2026-12-08 13:15".
    return /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(v) ? v.slice(0, 16).replace("T", " ") : String(v);
  }

  // A table of the figure's traces, one row per x value: for charts whose numbers the page
  // gives nowhere else (data-table="<first column's heading>").
  function dataTable(el, fig) {
    // A two-point line (a threshold drawn across the chart) is a reference, not data.
    var traces = fig.data.filter(function (t) { return Array.isArray(t.x) && !(t.mode === "lines" && t.x.length === 2); });
    if (!traces.length) { return; }
    var rows = {}, order = [];
    traces.forEach(function (t, i) {
      t.x.forEach(function (x, j) {
        var key = String(x);
        if (!rows[key]) { rows[key] = { x: x, values: [] }; order.push(key); }
        rows[key].values[i] = t.y[j];
      });
    });
    var table = document.createElement("table");
    table.appendChild(cell("caption", "Data of the chart above")).className = "sr-only";
    var head = table.appendChild(document.createElement("thead")).appendChild(document.createElement("tr"));
    head.appendChild(cell("th", el.dataset.table)).scope = "col";
    traces.forEach(function (t) { var th = head.appendChild(cell("th", t.name || "")); th.scope = "col"; th.className = "num"; });
    var body = table.appendChild(document.createElement("tbody"));
    order.forEach(function (key) {
      var tr = body.appendChild(document.createElement("tr"));
      tr.appendChild(cell("th", show(rows[key].x))).scope = "row";
      traces.forEach(function (_t, i) { tr.appendChild(cell("td", show(rows[key].values[i]))).className = "num"; });
    });
    var details = document.createElement("details");
    details.className = "chart-data";
    details.appendChild(cell("summary", "Show data"));
    var scroll = details.appendChild(document.createElement("div"));
    scroll.className = "chart-data-scroll";
    scroll.appendChild(table);
    (el.closest("figure") || el).appendChild(details);
  }

  document.querySelectorAll("[data-plotly]").forEach(function (el) {
    var source = document.getElementById(el.dataset.plotly);
    if (!source || !window.Plotly) { return; }
    var fig = JSON.parse(source.textContent);
    window.Plotly.newPlot(el, fig.data, fig.layout, { responsive: true, displaylogo: false }).then(function () { hideSvg(el); });
    if (el.dataset.table) { dataTable(el, fig); }
  });
})();
