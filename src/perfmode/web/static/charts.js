// The charts of one run from its metrics.csv rows (uPlot, served from the package), with the
// stretches of each mode shaded so the effect of a switch is visible at a glance.
/* global uPlot */
import { $, clock, compact, h, modeColor, num, pill } from "./dom.js";

const metrics = new Map(); // run -> {steps, time, mode, fps, cpu_cores, ep_rew_mean}
let shown = null;

const CHARTS = [
  { id: "chart-fps", col: "fps", label: "steps/s", fmt: (v) => num(v), axis: compact, zero: true },
  { id: "chart-cpu", col: "cpu_cores", label: "cores", fmt: (v) => num(v, 2), axis: (v) => v.toFixed(1), zero: true },
  { id: "chart-rew", col: "ep_rew_mean", label: "reward", fmt: (v) => num(v, 3), axis: (v) => +v.toFixed(3) },
];
let plots = [];
let zoomed = false;
let syncing = false;
let drawQueued = false;

function stretches(d) {
  const out = [];
  const n = d.steps.length;
  for (let i = 0; i < n; i++) {
    const x0 = i > 0 ? d.steps[i - 1] : d.steps[0] - (n > 1 ? d.steps[1] - d.steps[0] : 0);
    const last = out[out.length - 1];
    if (last && last.mode === d.mode[i]) last.x1 = d.steps[i];
    else out.push({ mode: d.mode[i], x0, x1: d.steps[i] });
  }
  return out.filter((s) => s.mode);
}

function shadePlugin() {
  return {
    hooks: {
      drawClear: (u) => {
        const d = metrics.get(shown);
        if (!d) return;
        const { left, top, width, height } = u.bbox;
        const alpha = parseFloat(getComputedStyle(document.documentElement).getPropertyValue("--shade-alpha")) || 0.1;
        const ctx = u.ctx;
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, top, width, height);
        ctx.clip();
        ctx.globalAlpha = alpha;
        for (const s of stretches(d)) {
          const a = u.valToPos(s.x0, "x", true);
          const b = u.valToPos(s.x1, "x", true);
          if (b < left || a > left + width) continue;
          ctx.fillStyle = modeColor(s.mode);
          ctx.fillRect(a, top, Math.max(b - a, 1), height);
        }
        ctx.restore();
      },
    },
  };
}

function chartData(spec) {
  const d = metrics.get(shown);
  return d ? [d.steps, d[spec.col]] : [[], []];
}

function buildCharts() {
  for (const p of plots) p.destroy();
  plots = [];
  if (typeof uPlot === "undefined") return;
  const css = getComputedStyle(document.documentElement);
  const muted = css.getPropertyValue("--muted").trim();
  const line = css.getPropertyValue("--line").trim();
  const series = css.getPropertyValue("--series").trim();
  for (const spec of CHARTS) {
    const box = $(spec.id);
    box.querySelectorAll(".uplot").forEach((el) => el.remove());
    const axis = { stroke: muted, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
    const opts = {
      width: Math.max(box.clientWidth, 200),
      height: 170,
      cursor: { sync: { key: "perfmode" }, drag: { x: true, y: false } },
      // Speed and CPU from zero, so a halving looks like one; reward fits its range.
      scales: { x: { time: false }, y: spec.zero ? { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } : {} },
      legend: { show: false },
      series: [{}, { label: spec.label, stroke: series, width: 1.5, points: { show: false } }],
      axes: [
        { ...axis, values: (u, vals) => vals.map((v) => (v === null ? "" : compact(v))) },
        { ...axis, size: 56, values: (u, vals) => vals.map((v) => (v === null ? "" : spec.axis(v))) },
      ],
      hooks: {
        setCursor: [(u) => showReadout(u.cursor.idx)],
        setScale: [
          (u, key) => {
            if (key !== "x" || syncing) return;
            const xs = u.data[0];
            zoomed = xs.length > 0 && (u.scales.x.min > xs[0] || u.scales.x.max < xs[xs.length - 1]);
            syncing = true;
            for (const p of plots) if (p !== u) p.setScale("x", { min: u.scales.x.min, max: u.scales.x.max });
            syncing = false;
          },
        ],
      },
      plugins: [shadePlugin()],
    };
    plots.push(new uPlot(opts, chartData(spec), box));
  }
}

const HINT = "Hover for values · drag to zoom · double-click to zoom out";
function showReadout(idx) {
  const box = $("readout");
  const d = metrics.get(shown);
  if (!d || idx === null || idx === undefined || idx >= d.steps.length) {
    box.replaceChildren(HINT);
    return;
  }
  box.replaceChildren(
    h("b", { text: `${num(d.steps[idx])} steps` }),
    " ",
    pill(d.mode[idx] || "?"),
    ` ${d.time[idx] ? clock(Date.parse(d.time[idx])) : ""} · `,
    ...CHARTS.map((c, i) => `${i ? " · " : ""}${c.fmt(d[c.col][idx])} ${c.label}`),
  );
}

function redrawCharts() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    const d = metrics.get(shown);
    const n = d ? d.steps.length : 0;
    $("charts-empty").hidden = n > 0;
    for (const id of ["chart-fps", "chart-cpu", "chart-rew"]) $(id).hidden = n === 0;
    $("chart-count").textContent = n ? `· ${num(n)} updates` : "";
    $("readout").hidden = n === 0;
    if (n && !plots.length) {
      buildCharts();
      showReadout(null);
    }
    plots.forEach((p, i) => p.setData(chartData(CHARTS[i]), !zoomed));
  });
}

export function renderLegend(modes) {
  const box = $("mode-legend");
  const key = modes.map((m) => m.value).join(",");
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren(
    ...modes.map((m) => {
      const i = h("i");
      i.style.setProperty("--mode-color", modeColor(m.value));
      return h("span", {}, i, m.value);
    }),
  );
}

export function showRun(run) {
  if (run === shown) return;
  shown = run;
  zoomed = false;
  $("chart-run").textContent = run || "–";
  redrawCharts();
}

export function onMetrics(m) {
  if (m.reset || !metrics.has(m.run)) metrics.set(m.run, m.cols);
  else {
    const d = metrics.get(m.run);
    for (const [k, v] of Object.entries(m.cols)) d[k].push(...v);
  }
  if (m.run === shown) redrawCharts();
}

// A new stream sends every run's rows again.
export function clearMetrics() {
  metrics.clear();
}

// Colours come from CSS variables: rebuild when the page switches light/dark.
export function rebuild() {
  buildCharts();
  redrawCharts();
}

export function resize() {
  for (const p of plots) p.setSize({ width: Math.max(p.root.parentElement.clientWidth, 200), height: 170 });
}
