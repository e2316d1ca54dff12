/* LLMObserve: small page behaviours. Charts read their data from a json_script block next to them. */
(function () {
  "use strict";

  function drawCharts(root) {
    if (!window.Plotly) return;
    (root || document).querySelectorAll("[data-chart]").forEach(function (el) {
      var source = document.getElementById(el.dataset.chart);
      if (!source || el.dataset.rendered === "1") return;
      var spec = JSON.parse(source.textContent);
      var counts = spec.unit === "count";  // default: US dollars
      // spec.kind "line": lines in spec.unit ("ms", "%"), gaps where a bucket had no value; else stacked $ bars.
      var line = spec.kind === "line", unit = spec.unit || "";
      var traces = spec.series.map(function (s) {
        if (line) {
          return {type: "scatter", mode: "lines+markers", name: s.name, x: spec.x, y: s.y, connectgaps: false,
                  line: {color: s.color, width: 2}, marker: {size: 4},
                  hovertemplate: "%{x}<br>" + s.name + ": %{y:,.1f} " + unit + "<extra></extra>"};
        }
        return {type: "bar", name: s.name, x: spec.x, y: s.y, marker: {color: s.color},
                hovertemplate: "%{x}<br>" + s.name + (counts ? ": %{y:,}" : ": $%{y:.4f}") + "<extra></extra>"};
      });
      var layout = {
        barmode: "stack", margin: {l: 52, r: 8, t: 8, b: 36}, height: 280,
        paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
        font: {family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#374151"},
        yaxis: line ? {ticksuffix: " " + unit, gridcolor: "#eef0f3", rangemode: "tozero"}
                    : {tickprefix: counts ? "" : "$", gridcolor: "#eef0f3", rangemode: "tozero"},
        xaxis: {type: "date", automargin: true, gridcolor: "rgba(0,0,0,0)"},
        legend: {orientation: "h", y: -0.18}, showlegend: spec.series.length > 0
      };
      if (counts) {  // whole numbers: no 0.2 ticks on a day with one signup
        var most = Math.max.apply(null, [0].concat.apply([0], spec.series.map(function (s) { return s.y; })));
        layout.yaxis.tickformat = ",d";
        if (most <= 5) layout.yaxis.dtick = 1;
      }
      window.Plotly.newPlot(el, traces, layout, {displayModeBar: false, responsive: true});
      el.dataset.rendered = "1";
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function () { drawCharts(document); });
  // Back/forward restores a snapshot whose chart lost its event handlers: draw it again.
  document.addEventListener("htmx:historyRestore", function () {
    document.querySelectorAll("[data-chart]").forEach(function (el) { el.dataset.rendered = ""; el.innerHTML = ""; });
    drawCharts(document);
  });

  // Close open menus when clicking elsewhere.
  document.addEventListener("click", function (evt) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(evt.target)) menu.removeAttribute("open");
    });
  });

  // No inline handlers anywhere (the CSP forbids them): behaviours hang off data attributes.
  // <form data-confirm="text">: ask before submitting; the text is read as text, never as code.
  document.addEventListener("submit", function (evt) {
    var form = evt.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) {
      evt.preventDefault();
      evt.stopImmediatePropagation();
    }
  }, true);
  // <select data-autosubmit>: submit its form when the choice changes.
  document.addEventListener("change", function (evt) {
    var field = evt.target.closest("[data-autosubmit]");
    if (field && field.form) field.form.requestSubmit();
  });

  // Copy buttons: <button data-copy="#id">.
  document.addEventListener("click", function (evt) {
    var btn = evt.target.closest("[data-copy]");
    if (!btn) return;
    var target = document.querySelector(btn.dataset.copy);
    if (target && navigator.clipboard) {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        btn.textContent = "Copied";
        setTimeout(function () { btn.textContent = "Copy"; }, 1500);
      }, function () {});
    }
  });
})();
