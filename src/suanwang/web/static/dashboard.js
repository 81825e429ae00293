// suanwang dashboard: draws the page's charts from the JSON specs the server renders next to them,
// and refreshes the job form's live quote. Plain JavaScript, no build step.
"use strict";

(function () {
  const palette = ["#1d4ed8", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#84cc16", "#f97316"];

  // A spec: {kind: bar|line|area|pie|heatmap, categories, series: [{name, data}], stack, percent,
  //          x, y, unit, drill: {url, by: category|series|cell, param, keys}}.
  function option(spec) {
    const unit = spec.unit ? " " + spec.unit : "";
    const fmt = (v) => (spec.percent ? (v == null ? "—" : v + "%") : v == null ? "—" : Number(v).toLocaleString() + unit);
    if (spec.kind === "pie") {
      return {
        color: palette,
        tooltip: { trigger: "item", valueFormatter: fmt },
        legend: { bottom: 0, type: "scroll" },
        series: [{ type: "pie", radius: ["35%", "65%"], data: spec.series[0].data, label: { formatter: "{b}: {d}%" } }],
      };
    }
    if (spec.kind === "heatmap") {
      const max = Math.max(1, ...spec.series[0].data.map((cell) => cell[2]));
      return {
        tooltip: { position: "top" },
        grid: { left: 140, right: 20, top: 20, bottom: 70 },
        xAxis: { type: "category", data: spec.x, splitArea: { show: true } },
        yAxis: { type: "category", data: spec.y, splitArea: { show: true } },
        visualMap: { min: 0, max: max, calculable: true, orient: "horizontal", left: "center", bottom: 0 },
        series: [{ name: spec.series[0].name, type: "heatmap", data: spec.series[0].data, label: { show: true } }],
      };
    }
    const line = spec.kind === "line" || spec.kind === "area";
    return {
      color: palette,
      tooltip: { trigger: "axis", valueFormatter: fmt },
      legend: { bottom: 0, type: "scroll" },
      grid: { left: 60, right: 20, top: 30, bottom: 60 },
      xAxis: { type: "category", data: spec.categories, axisLabel: { hideOverlap: true } },
      yAxis: { type: "value", name: spec.percent ? "%" : spec.unit || "", max: spec.percent ? 100 : null },
      series: spec.series.map((s) => ({
        name: s.name,
        type: line ? "line" : "bar",
        data: s.data,
        stack: spec.stack ? "all" : undefined,
        areaStyle: spec.kind === "area" ? {} : undefined,
        yAxisIndex: 0,
        emphasis: { focus: "series" },
      })),
    };
  }

  function drillUrl(drill, params) {
    let key;
    if (drill.by === "series") key = drill.keys[params.seriesIndex];
    else if (drill.by === "cell") key = drill.keys[params.data[1]] && drill.keys[params.data[1]][params.data[0]];
    else key = drill.keys[params.dataIndex];
    if (key == null) return null;
    const url = new URL(drill.url, window.location.href);
    const pairs = typeof key === "object" ? key : { [drill.param]: key };
    for (const [name, value] of Object.entries(pairs)) url.searchParams.set(name, value);
    return url.toString();
  }

  function draw(el) {
    const source = document.getElementById(el.dataset.chart);
    if (!source || typeof echarts === "undefined") return;
    const spec = JSON.parse(source.textContent);
    const chart = echarts.init(el, null, { renderer: "canvas" });
    chart.on("finished", () => { el.dataset.rendered = "1"; });
    chart.setOption(option(spec));
    el.dataset.series = String(spec.series.length);
    if (spec.drill) {
      el.style.cursor = "pointer";
      chart.on("click", (params) => {
        const target = drillUrl(spec.drill, params);
        if (target) window.location.assign(target);
      });
    }
    window.addEventListener("resize", () => chart.resize());
  }

  // The job form: ask the server for the ranked pools whenever the request changes.
  function liveQuote(form) {
    const target = document.getElementById(form.dataset.quote);
    let timer = null;
    let seq = 0;
    const refresh = () => {
      const mine = ++seq;
      fetch(form.dataset.quoteUrl, { method: "POST", body: new FormData(form), credentials: "same-origin" })
        .then((r) => r.text())
        .then((html) => { if (mine === seq) target.innerHTML = html; })
        .catch(() => {});
    };
    form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 300); });
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-chart]").forEach(draw);
    document.querySelectorAll("form[data-quote]").forEach(liveQuote);
  });
})();
