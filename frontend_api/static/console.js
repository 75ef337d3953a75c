// The console's charts (uPlot, served from /console/static/vendor) and htmx's error handling.
(function () {
  "use strict";

  function major(v) { return v == null ? null : v / 100; }
  function percent(v) { return v == null ? null : v * 100; }

  function draw(el) {
    if (!window.uPlot || el.dataset.drawn) return;
    var spec = JSON.parse(el.dataset.chart);
    var labels = spec.labels;
    var xs = labels.map(function (_, i) { return i; });
    var data = [xs];
    var series = [{ label: spec.x_label || "", value: function (u, i) { return i == null ? "" : labels[i]; } }];
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 40] }) : null;
    var scale = spec.percent ? percent : major;
    var bands = [];
    spec.series.forEach(function (s, n) {
      data.push(s.values.map(scale));
      series.push({
        label: s.label, stroke: s.color, width: 2,
        fill: s.bars ? s.color + "88" : undefined,
        paths: s.bars && bars ? bars : undefined,
        scale: s.scale === "right" ? "right" : "y",
        value: function (u, v) { return v == null ? "" : (spec.percent ? v.toFixed(1) + " %" : Math.round(v).toLocaleString(document.documentElement.lang)); },
      });
      if (s.low && s.high) {  // the 90 % band around the line, filled between its edges
        data.push(s.low.map(scale));
        series.push({ label: s.label + " ↓", stroke: s.color + "66", width: 1, dash: [4, 4] });
        data.push(s.high.map(scale));
        series.push({ label: s.label + " ↑", stroke: s.color + "66", width: 1, dash: [4, 4] });
        bands.push({ series: [series.length - 1, series.length - 2], fill: s.color + "22" });
      }
    });
    var axes = [
      { values: function (u, splits) { return splits.map(function (i) { return labels[i] !== undefined ? labels[i] : ""; }); } },
      { values: function (u, splits) { return splits.map(function (v) { return v.toLocaleString(document.documentElement.lang); }); }, size: 70 },
    ];
    if (spec.series.some(function (s) { return s.scale === "right"; })) {
      axes.push({ scale: "right", side: 1, grid: { show: false }, size: 80,
                  values: function (u, splits) { return splits.map(function (v) { return v.toLocaleString(document.documentElement.lang); }); } });
    }
    var width = Math.max(260, el.clientWidth || 300);
    var plot = new uPlot({ width: width, height: 240, series: series, axes: axes, bands: bands,
                           scales: { x: { time: false } }, legend: { live: true } }, data, el);
    el.dataset.drawn = "1";
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(260, el.clientWidth || 300), height: 240 });
    });
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawAll(document);
    document.body.addEventListener("htmx:afterSwap", function (e) { drawAll(e.target); });
    // 4xx answers carry a message for the flash area (the server retargets them there).
    document.body.addEventListener("htmx:beforeSwap", function (e) {
      var status = e.detail.xhr.status;
      if (status >= 400 && status < 500 && status !== 401) {
        e.detail.shouldSwap = true;
        e.detail.isError = false;
      }
    });
    document.body.addEventListener("htmx:afterRequest", function (e) {
      var ok = e.detail.xhr && e.detail.xhr.status < 400;
      if (ok && e.detail.elt && e.detail.elt.tagName !== "TEXTAREA") {
        var flash = document.getElementById("flash");
        if (flash && e.detail.target !== flash) flash.innerHTML = "";
      }
    });
  });
})();
