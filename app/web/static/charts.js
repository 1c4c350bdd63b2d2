// Render every element with data-plotly="<id of a JSON script tag>" as a plotly chart.
(function () {
  document.querySelectorAll("[data-plotly]").forEach(function (el) {
    var source = document.getElementById(el.dataset.plotly);
    if (!source || !window.Plotly) { return; }
    var fig = JSON.parse(source.textContent);
    window.Plotly.newPlot(el, fig.data, fig.layout, { responsive: true, displaylogo: false });
  });
})();
