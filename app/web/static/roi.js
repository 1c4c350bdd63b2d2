// Interactive ROI page: edit the input document, evaluate it through /api/v1/roi, draw plotly
// charts, download reports and save versioned scenarios. No inline script (the CSP forbids it).
(function () {
  "use strict";
  var root = document.getElementById("roi-app");
  if (!root) { return; }
  var urls = root.dataset;
  var state = { document: null, ranges: {}, customer: "", utilityId: null, scenario: null, timer: null, seq: 0 };
  var $ = function (id) { return document.getElementById(id); };
  var PLOT = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  var BRAND = "#0550ae", GOOD = "#1a7f37", BAD = "#cf222e", GREY = "#8c959f";

  // Same format as roi.report.money in the PDF: -$1,234 (no cents).
  function money(v) {
    if (v === null || v === undefined || !isFinite(v)) { return "n/a"; }
    var r = Math.round(v);
    if (r === 0) { return "$0"; }
    return (r < 0 ? "-" : "") + "$" + Math.abs(r).toLocaleString("en-US");
  }
  function pct(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) { return "n/a"; }
    return (v * 100).toFixed(digits === undefined ? 1 : digits) + " %";
  }
  // As the reports say it (roi.report.rate_of_return): past 100 % a rate only says the
  // outlay is tiny next to the savings.
  function rate(v) {
    if (v !== null && v !== undefined && isFinite(v) && v > 1) { return "over 100 %"; }
    return pct(v);
  }
  function yrs(v, horizon) {
    if (v === null || v === undefined) { return "not within " + horizon + " yr"; }
    return v < 1 ? (v * 12).toFixed(1) + " months" : v.toFixed(1) + " yr";
  }
  function text(el, value) { el.textContent = value; return el; }
  function make(tag, cls, content) {
    var el = document.createElement(tag);
    if (cls) { el.className = cls; }
    if (content !== undefined) { el.textContent = content; }
    return el;
  }

  function request(method, url, body) {
    var headers = { Accept: "application/json" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; headers["X-CSRFToken"] = urls.csrf; }
    return fetch(url, { method: method, credentials: "same-origin", headers: headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }
  function json(response) {
    return response.json().then(function (body) {
      if (!response.ok) { var e = new Error(body.message || response.statusText); e.field = body.field; throw e; }
      return body;
    });
  }
  // The API names fields by their place in the request; the page by their ids.
  var FIELD_IDS = { customer_name: "customer-name", name: "scenario-name", note: "scenario-note", utility_id: "calibrate",
    utility: "calibrate", segment: "segment", horizon_years: "horizon_years", discount_rate: "discount_rate" };
  var RANGE_ENDS = { low: " (low end of its range)", high: " (high end of its range)" };

  function fieldFor(path) {
    var parts = path.replace(/^document\./, "").split(".");
    if (parts[0] === "inputs" && parts[1]) { return { el: $("in-" + parts[1]), end: RANGE_ENDS[parts[2]] || "" }; }
    return { el: FIELD_IDS[parts[0]] ? $(FIELD_IDS[parts[0]]) : null, end: "" };
  }
  // The words the page shows for a field, not the API's dotted name.
  function visibleLabel(el) {
    if (el.dataset.input) { return $("label-" + el.dataset.input).textContent; }
    if (el.getAttribute("aria-label")) { return el.getAttribute("aria-label"); }
    var label = el.labels && el.labels[0];
    return label ? label.firstChild.textContent.trim() : el.id;
  }
  function describedBy(el, id, on) {
    var ids = (el.getAttribute("aria-describedby") || "").split(" ").filter(function (t) { return t && t !== id; });
    if (on) { ids.push(id); }
    if (ids.length) { el.setAttribute("aria-describedby", ids.join(" ")); } else { el.removeAttribute("aria-describedby"); }
  }
  // Show an API or input error beside its field: the field's visible name, aria-invalid and
  // aria-describedby pointing at the message; `focus` moves the keyboard to the field (not
  // while someone is typing in another one, whose every keystroke re-evaluates).
  function showError(err, focus) {
    var box = $("roi-error");
    root.querySelectorAll("[aria-invalid=true]").forEach(function (el) {
      el.classList.remove("invalid");
      el.removeAttribute("aria-invalid");
      describedBy(el, "roi-error", false);
    });
    if (!err) { box.hidden = true; return; }
    var message = err.message, target = err.field ? fieldFor(err.field) : { el: null, end: "" };
    if (target.el) {
      var problem = message.indexOf(err.field + ": ") === 0 ? message.slice(err.field.length + 2) : message;
      message = visibleLabel(target.el) + target.end + ": " + problem;
      target.el.classList.add("invalid");
      target.el.setAttribute("aria-invalid", "true");
      describedBy(target.el, "roi-error", true);
    }
    text(box, message);
    box.hidden = false;
    if (target.el && focus !== false && document.activeElement !== target.el) { target.el.focus(); }
  }
  function showActionError(err) { showError(err, true); }

  // --- Inputs ------------------------------------------------------------------------------
  function renderInputs() {
    var doc = state.document, box = $("inputs");
    box.textContent = "";
    $("segment").value = doc.segment;
    $("horizon_years").value = doc.horizon_years;
    $("discount_rate").value = +(doc.discount_rate * 100).toFixed(4);
    Object.keys(doc.inputs).forEach(function (name) {
      var item = doc.inputs[name];
      var row = make("div", "roi-input");
      var label = make("label", null);
      label.htmlFor = "in-" + name;
      var nameEl = label.appendChild(make("span", "name", (labels[name] || name)));
      nameEl.id = "label-" + name;
      label.appendChild(make("span", "unit", item.unit));
      var input = make("input");
      input.type = "number";
      input.id = "in-" + name;
      input.dataset.input = name;
      input.step = "any";
      input.min = item.min;
      if (item.max !== null) { input.max = item.max; }
      input.value = item.value;
      input.addEventListener("input", function () { onInput(name, input); });
      var range = make("span", "range", rangeText(item));
      range.id = "range-" + name;
      // The description, unit, range and source were a mouse-only tooltip: now a <details>
      // a keyboard opens, and the field's description for a screen reader.
      var about = make("details", "about");
      var summary = about.appendChild(make("summary", null, "Source"));
      summary.appendChild(make("span", "sr-only", " of " + (labels[name] || name))).id = "about-name-" + name;
      var detail = about.appendChild(make("p", null));
      detail.id = "about-" + name;
      detail.append(item.description + " Unit: " + item.unit + ". Range: ");
      detail.appendChild(make("span", null, rangeText(item))).id = "about-range-" + name;
      detail.append(". Source: " + item.source + ".");
      input.setAttribute("aria-describedby", "about-" + name);
      row.appendChild(label);
      row.appendChild(input);
      row.appendChild(range);
      row.appendChild(about);
      box.appendChild(row);
    });
  }
  var labels = {};
  function rangeText(item) { return item.low === item.high ? "fixed" : item.low + " – " + item.high; }

  function onInput(name, input) {
    var value = parseFloat(input.value);
    if (!isFinite(value)) { showError({ message: "inputs." + name + ": must be a number", field: "inputs." + name }, false); return; }
    var item = state.document.inputs[name];
    item.value = value;
    // The server refuses a value outside an explicit range, so widen it as the model does,
    // from the range as loaded (not from the last value typed).
    var loaded = state.ranges[name];
    if (loaded.low === loaded.high) { item.low = value; item.high = value; }
    else { item.low = Math.min(loaded.low, value); item.high = Math.max(loaded.high, value); }
    text($("range-" + name), rangeText(item));
    text($("about-range-" + name), rangeText(item));
    schedule();
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(evaluate, 250);
  }

  // --- Evaluation and charts ---------------------------------------------------------------
  function typing() {
    var el = document.activeElement;
    return !!el && el.tagName === "INPUT" && el.type !== "checkbox";
  }

  function evaluate() {
    var seq = ++state.seq;
    root.classList.add("busy");
    return request("POST", urls.evaluateUrl, state.document).then(json).then(function (result) {
      if (seq !== state.seq) { return; }  // a newer edit is on its way
      showError(null);
      labels = result.labels.inputs;
      Object.keys(labels).forEach(function (name) {
        var el = $("label-" + name), about = $("about-name-" + name);
        if (el) { text(el, labels[name]); }
        if (about) { text(about, " of " + labels[name]); }
      });
      render(result);
    }).catch(function (err) {
      if (seq === state.seq) { showError(err, !typing()); }
    }).then(function () {
      if (seq === state.seq) { root.classList.remove("busy"); root.dataset.evaluated = String(seq); }
    });
  }

  function render(r) {
    var horizon = r.horizon_years, mc = r.monte_carlo;
    text($("kpi-npv"), money(r.npv));
    $("kpi-npv").classList.toggle("negative", r.npv < 0);
    text($("kpi-npv-note"), "at " + pct(r.discount_rate) + " over " + horizon + " years" + (r.after_tax ? " · after tax " + money(r.after_tax.npv) : ""));
    text($("cases-note"), "Low case " + money(r.cases.low.npv) + " · base " + money(r.cases.base.npv) + " · high case " + money(r.cases.high.npv) +
      " (every ranged assumption at its worse or better end). Seeded draws (seed " + mc.seed + "): the same inputs always give the same figures.");
    text($("kpi-irr"), rate(r.irr));
    text($("kpi-mirr"), "MIRR " + rate(r.mirr) + " · benefit/cost " + (r.benefit_cost_ratio === null ? "n/a" : r.benefit_cost_ratio.toFixed(2)));
    text($("kpi-payback"), yrs(r.simple_payback_years, horizon));
    text($("kpi-dpayback"), "discounted " + yrs(r.discounted_payback_years, horizon));
    text($("kpi-prob"), pct(mc.probability_payback, 0));
    text($("kpi-p1090"), "NPV P10 " + money(mc.p10) + " · P50 " + money(mc.p50) + " · P90 " + money(mc.p90));
    announceResult(r);
    cumulativeChart(r);
    savingsChart(r);
    tornadoChart(r);
    monteCarloChart(r);
    table(r);
    budget(r);
    text($("convention"), r.notes.join(" "));
    var risks = $("risks");
    risks.textContent = "";
    r.risks.forEach(function (risk) { risks.appendChild(make("li", null, risk)); });
    $("risks-card").hidden = r.risks.length === 0;
  }

  // One sentence a second after the figures settle, not each tile on every keystroke.
  var announceTimer = null;
  function announceResult(r) {
    clearTimeout(announceTimer);
    announceTimer = setTimeout(function () {
      var payback = r.simple_payback_years === null ? "not within " + r.horizon_years + " years" : r.simple_payback_years.toFixed(1) + " years";
      text($("roi-announce"), "NPV " + money(r.npv) + ", payback " + payback + ".");
    }, 1000);
  }

  // The plot's SVG reads as loose axis ticks: hidden, the caption and data tables speak.
  function plot(el, data, lay, config) {
    return window.Plotly.react(el, data, lay, config).then(function () {
      el.querySelectorAll(".main-svg").forEach(function (svg) { svg.setAttribute("aria-hidden", "true"); });
    });
  }
  function dataTable(id, heads, rows) {
    var t = $(id);
    Array.prototype.slice.call(t.children).forEach(function (c) { if (c.tagName !== "CAPTION") { c.remove(); } });
    var head = make("tr");
    heads.forEach(function (h, i) { var th = make("th", i ? "num" : null, h); th.scope = "col"; head.appendChild(th); });
    t.appendChild(make("thead")).appendChild(head);
    var body = t.appendChild(make("tbody"));
    rows.forEach(function (row) {
      var tr = make("tr");
      row.forEach(function (v, i) {
        var c = make(i ? "td" : "th", i ? "num" : null, v);
        if (!i) { c.scope = "row"; }
        tr.appendChild(c);
      });
      body.appendChild(tr);
    });
  }

  function layout(title, extra) {
    var base = {
      title: { text: title, x: 0, font: { size: 14 } }, margin: { l: 70, r: 20, t: 40, b: 40 },
      paper_bgcolor: "#fff", plot_bgcolor: "#fff", font: { family: "system-ui, sans-serif", size: 12 },
      yaxis: { tickprefix: "$", tickformat: "~s", zerolinecolor: "#59636e" }, legend: { orientation: "h", y: -0.2 },
    };
    Object.keys(extra || {}).forEach(function (k) { base[k] = extra[k]; });
    return base;
  }

  function cumulativeChart(r) {
    var years = r.cash_flows.map(function (c) { return c.year; });
    var net = r.cash_flows.map(function (c) { return c.net; });
    var traces = [
      { type: "bar", name: "Net cash flow", x: years, y: net, marker: { color: net.map(function (v) { return v >= 0 ? GOOD : BAD; }), opacity: 0.4 } },
      { type: "scatter", mode: "lines+markers", name: "Cumulative", x: years, y: r.cash_flows.map(function (c) { return c.cumulative; }), line: { color: BRAND, width: 3 } },
      { type: "scatter", mode: "lines", name: "Cumulative, discounted", x: years, y: r.cash_flows.map(function (c) { return c.cumulative_discounted; }), line: { color: BRAND, dash: "dash" } },
    ];
    if (r.simple_payback_years !== null) {
      traces.push({ type: "scatter", mode: "markers+text", name: "Payback", x: [r.simple_payback_years], y: [0],
        text: ["payback " + yrs(r.simple_payback_years, r.horizon_years)], textposition: "top right",
        marker: { color: GOOD, size: 12, symbol: "diamond" } });
    }
    plot($("chart-cumulative"), traces, layout("Cumulative cash flow (year 0 = investment)", { xaxis: { dtick: 1, title: { text: "Year" } } }), PLOT);
  }

  function savingsChart(r) {
    var items = Object.keys(r.savings_by_category).map(function (k) { return [r.labels.categories[k] || k, r.savings_by_category[k]]; });
    items.sort(function (a, b) { return a[1] - b[1]; });
    dataTable("savings-data", ["Category", "Savings over " + r.horizon_years + " years"],
      items.slice().reverse().map(function (i) { return [i[0], money(i[1])]; }));
    plot($("chart-savings"), [{
      type: "bar", orientation: "h", x: items.map(function (i) { return i[1]; }), y: items.map(function (i) { return i[0]; }), marker: { color: GOOD },
      hovertemplate: "%{y}: $%{x:,.0f}<extra></extra>",
    }], layout("Savings by category over " + r.horizon_years + " years", { margin: { l: 190, r: 20, t: 40, b: 40 }, xaxis: { tickprefix: "$", tickformat: "~s" }, yaxis: { automargin: true } }), PLOT);
  }

  function tornadoChart(r) {
    var bars = r.tornado.bars.slice(0, 12).reverse(), base = r.tornado.base_npv;
    dataTable("tornado-data", ["Assumption", "Low end", "NPV at low end", "High end", "NPV at high end"],
      r.tornado.bars.map(function (b) {
        return [r.labels.inputs[b.name] || b.name, b.low_value + " " + b.unit, money(b.npv_at_low), b.high_value + " " + b.unit, money(b.npv_at_high)];
      }));
    var names = bars.map(function (b) { return r.labels.inputs[b.name] || b.name; });
    function trace(key, name, color, valueKey) {
      return { type: "bar", orientation: "h", name: name, y: names, base: base, marker: { color: color },
        x: bars.map(function (b) { return b[key] - base; }),
        customdata: bars.map(function (b) { return [b[valueKey], b.unit, b[key]]; }),
        hovertemplate: "%{y} = %{customdata[0]} %{customdata[1]}<br>NPV $%{customdata[2]:,.0f}<extra>" + name + "</extra>" };
    }
    plot($("chart-tornado"), [trace("npv_at_low", "input at low end", GREY, "low_value"), trace("npv_at_high", "input at high end", BRAND, "high_value")],
      layout("Tornado: NPV swing per input", { barmode: "overlay", margin: { l: 190, r: 20, t: 40, b: 40 }, xaxis: { tickprefix: "$", tickformat: "~s" }, yaxis: { automargin: true },
        shapes: [{ type: "line", x0: base, x1: base, yref: "paper", y0: 0, y1: 1, line: { color: "#000", width: 1 } }] }), PLOT);
  }

  function monteCarloChart(r) {
    var mc = r.monte_carlo, h = mc.histogram;
    var mids = h.counts.map(function (_, i) { return (h.edges[i] + h.edges[i + 1]) / 2; });
    var shapes = [], notes = [];
    [["P10", mc.p10, BAD], ["P50", mc.p50, "#59636e"], ["P90", mc.p90, GOOD]].forEach(function (p) {
      shapes.push({ type: "line", x0: p[1], x1: p[1], yref: "paper", y0: 0, y1: 1, line: { color: p[2], dash: "dash" } });
      notes.push({ x: p[1], yref: "paper", y: 1, text: p[0] + " " + money(p[1]), showarrow: false, xanchor: "left", font: { size: 11, color: p[2] } });
    });
    plot($("chart-montecarlo"), [{ type: "bar", x: mids, y: h.counts, marker: { color: BRAND, opacity: 0.75 }, hovertemplate: "NPV ≈ $%{x:,.0f}: %{y} draws<extra></extra>" }],
      layout("Monte Carlo: NPV over " + mc.draws.toLocaleString("en-US") + " draws · payback within the horizon in " + pct(mc.probability_payback, 0) + " of them",
        { bargap: 0.02, shapes: shapes, annotations: notes, xaxis: { tickprefix: "$", tickformat: "~s" }, yaxis: { title: { text: "draws" } } }), PLOT);
  }

  function grid(id, cols, rows) {
    var t = $(id);
    t.textContent = "";
    var head = make("tr");
    cols.forEach(function (c) { var th = make("th", c[0] === "year" ? null : "num", c[1]); th.scope = "col"; head.appendChild(th); });
    t.appendChild(make("thead")).appendChild(head);
    var body = t.appendChild(make("tbody"));
    rows.forEach(function (row) {
      var tr = make("tr");
      cols.forEach(function (c) {
        var td = make("td", c[0] === "year" ? null : "num", c[0] === "year" ? String(row.year) : money(row[c[0]]));
        if (c[0] !== "year" && row[c[0]] < 0) { td.classList.add("negative"); }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function budget(r) {
    $("budget-card").hidden = !r.budget;
    if (!r.budget) { return; }
    grid("budget", [["year", "Year"], ["subscription", "Subscription"], ["one_time", "One-time"], ["spend", "Total spend"], ["monthly_spend", "Per month"],
      ["avoided", "Costs avoided"], ["net_budget_effect", "Budget effect"]], r.budget);
  }

  function table(r) {
    var cols = [["year", "Year"], ["capex", "Capex"], ["opex", "Running costs"], ["avoided", "Savings"], ["net", "Net"], ["cumulative", "Cumulative"], ["discounted", "Discounted"], ["cumulative_discounted", "Cum. discounted"]];
    if (r.cash_flows[0].net_after_tax !== undefined) { cols.push(["net_after_tax", "Net after tax"]); }
    grid("cash-flows", cols, r.cash_flows);
  }

  // --- Loading documents -------------------------------------------------------------------
  function load(doc) {
    state.document = doc;
    // Each input's range as loaded: a value typed outside it widens it from these, so a
    // passing 0 while typing does not stay in the range the server is sent.
    state.ranges = {};
    Object.keys(doc.inputs).forEach(function (name) {
      state.ranges[name] = { low: doc.inputs[name].low, high: doc.inputs[name].high };
    });
    renderInputs();
    return evaluate();
  }
  function loadDefaults(segment) {
    state.utilityId = null;
    $("network-card").hidden = true;
    $("calibration-note").hidden = true;
    return request("GET", urls.defaultsUrl + "?segment=" + encodeURIComponent(segment)).then(json).then(load).catch(showActionError);
  }
  function calibrate(utilityId) {
    return request("GET", urls.calibrateUrl + "?utility=" + encodeURIComponent(utilityId)).then(json).then(function (body) {
      state.utilityId = body.utility_id;
      $("customer-name").value = body.customer_name;
      var p = body.profile, note = $("calibration-note");
      text(note, "Prefilled from the fleet: " + p.c_and_i_customers.toLocaleString("en-US") + " C&I customers, " + p.modem_lines.toLocaleString("en-US") +
        " modem lines, " + p.meters + " metered sites" + (p.read_success === null ? "" : ", " + pct(p.read_success) + " of expected intervals received") + ".");
      note.hidden = false;
      networkMix(utilityId);
      return load(body.document);
    }).catch(showActionError);
  }

  // Cheapest network per metered site of the utility: public cellular or the private network.
  function networkMix(utilityId) {
    return request("GET", urls.networkUrl + "?utility=" + encodeURIComponent(utilityId)).then(json).then(function (mix) {
      var counts = { urban: { cellular: 0, private: 0 }, rural: { cellular: 0, private: 0 } };
      mix.choices.forEach(function (c) { counts[c.area][c.network] += 1; });
      text($("network-summary"), mix.choices.length + " metered sites of " + mix.utility_name + ": " + mix.counts.cellular + " on public cellular, " +
        mix.counts.private + " on the distributor's private network; present cost over " + mix.horizon_years + " years " + money(mix.total_cost_pv) +
        ". Sites within 25 km of the territory's centre count as urban.");
      var areas = ["urban", "rural"];
      plot($("chart-network"), [
        { type: "bar", name: "Public cellular", x: areas, y: areas.map(function (a) { return counts[a].cellular; }), marker: { color: BRAND } },
        { type: "bar", name: "Private network", x: areas, y: areas.map(function (a) { return counts[a].private; }), marker: { color: GOOD } },
      ], layout("Sites by area and chosen network", { barmode: "stack", yaxis: { title: { text: "sites" } } }), PLOT);
      $("network-card").hidden = false;
    }).catch(function () { $("network-card").hidden = true; });
  }

  $("segment").addEventListener("change", function (e) { state.scenario = null; $("save-version").hidden = true; loadDefaults(e.target.value); });
  $("calibrate").addEventListener("change", function (e) { if (e.target.value) { state.scenario = null; $("save-version").hidden = true; calibrate(e.target.value); } });
  $("horizon_years").addEventListener("input", function (e) { var v = parseFloat(e.target.value); if (isFinite(v)) { state.document.horizon_years = v; schedule(); } });
  $("discount_rate").addEventListener("input", function (e) { var v = parseFloat(e.target.value); if (isFinite(v)) { state.document.discount_rate = v / 100; schedule(); } });

  // --- Downloads ---------------------------------------------------------------------------
  document.querySelectorAll("[data-download]").forEach(function (button) {
    button.addEventListener("click", function () {
      var fmt = button.dataset.download, body = Object.assign({}, state.document);
      var customer = $("customer-name").value.trim();
      if (customer) { body.customer_name = customer; }
      if (state.utilityId) { body.utility_id = state.utilityId; }
      button.disabled = true;
      request("POST", urls.reportUrl + "?format=" + fmt, body).then(function (response) {
        if (!response.ok) { return json(response); }
        var name = (response.headers.get("Content-Disposition") || "").replace(/.*filename="([^"]+)".*/, "$1") || "roi." + fmt;
        return response.blob().then(function (blob) {
          var link = document.createElement("a");
          link.href = URL.createObjectURL(blob);
          link.download = name;
          document.body.appendChild(link);
          link.click();
          setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
        });
      }).catch(showActionError).then(function () { button.disabled = false; });
    });
  });

  // --- Scenarios ---------------------------------------------------------------------------
  function saveStatus(message) { text($("save-status"), message); }
  $("save-scenario").addEventListener("click", function () {
    var body = { name: $("scenario-name").value.trim(), customer_name: $("customer-name").value.trim(), note: $("scenario-note").value.trim() || undefined, document: state.document };
    if (state.utilityId) { body.utility_id = state.utilityId; }
    request("POST", urls.scenariosUrl, body).then(json).then(function (s) {
      showError(null);
      saveStatus("Saved “" + s.name + "” as version 1.");
      addScenarioRow(s);
      openScenario(s.id);
    }).catch(showActionError);
  });
  $("save-version").addEventListener("click", function () {
    if (!state.scenario) { return; }
    request("POST", urls.scenariosUrl + "/" + state.scenario + "/versions", { document: state.document, note: $("scenario-note").value.trim() || undefined })
      .then(json).then(function (v) { saveStatus("Saved version " + v.version + "."); openScenario(state.scenario); }).catch(showActionError);
  });

  function addScenarioRow(s) {
    var tbody = document.querySelector("#scenario-list tbody");
    var empty = tbody.querySelector(".empty");
    if (empty) { empty.remove(); }
    var tr = make("tr"), a = make("a", null, s.name);
    a.href = "#";
    a.dataset.scenario = s.id;
    tr.appendChild(make("td")).appendChild(a);
    [s.customer_name, s.segment].forEach(function (v) { tr.appendChild(make("td", null, v)); });
    tr.appendChild(make("td", "num", String(s.latest_version)));
    tr.appendChild(make("td", null, s.updated_at.slice(0, 16).replace("T", " ")));
    tbody.insertBefore(tr, tbody.firstChild);
  }

  document.querySelector("#scenario-list").addEventListener("click", function (e) {
    var link = e.target.closest("[data-scenario]");
    if (!link) { return; }
    e.preventDefault();
    openScenario(link.dataset.scenario, true);
  });

  function describe(change) {
    var f = change.field.replace(/^inputs\./, "").replace(/\.value$/, "");
    return f + ": " + JSON.stringify(change.from) + " → " + JSON.stringify(change.to);
  }

  function openScenario(id, loadLatest) {
    return request("GET", urls.scenariosUrl + "/" + id).then(json).then(function (s) {
      state.scenario = s.id;
      $("save-version").hidden = false;
      text($("history-title"), "History of “" + s.name + "” for " + s.customer_name);
      var rows = $("history-rows");
      rows.textContent = "";
      s.versions.forEach(function (v) {
        var tr = make("tr");
        tr.appendChild(make("td", null, "v" + v.version + " · " + v.model_version));
        tr.appendChild(make("td", null, v.created_at.slice(0, 16).replace("T", " ")));
        tr.appendChild(make("td", null, v.created_by || ""));
        tr.appendChild(make("td", "num", money(v.npv)));
        var what = v.changes.length ? v.changes.map(describe).join("; ") : (v.version === 1 ? "first version" : "no input changed");
        tr.appendChild(make("td", "small", what + (v.note ? " — " + v.note : "")));
        var links = make("td", "small");
        ["pdf", "xlsx", "csv"].forEach(function (fmt) {
          var a = make("a", null, fmt.toUpperCase());
          a.href = urls.scenariosUrl + "/" + s.id + "/versions/" + v.version + "/report?format=" + fmt;
          links.appendChild(a);
          links.appendChild(document.createTextNode(" "));
        });
        tr.appendChild(links);
        rows.appendChild(tr);
      });
      $("history").hidden = false;
      if (loadLatest) {
        return request("GET", urls.scenariosUrl + "/" + s.id + "/versions/" + s.latest_version).then(json).then(function (v) {
          $("customer-name").value = s.customer_name;
          $("scenario-name").value = s.name;
          state.utilityId = s.utility_id;
          return load(v.document);
        });
      }
    }).catch(showActionError);
  }

  // A page opened with ?utility= (the presenter's story) starts prefilled from that fleet.
  if ($("calibrate").value) { calibrate($("calibrate").value); } else { loadDefaults($("segment").value); }
})();
