// The page's Sweeps card: each sweep of the home with its trials, their states and values,
// and the best so far. Polls /api/sweeps every few seconds; the card stays hidden while the
// home has no sweep.
import { h } from "/static/dom.js";

const POLL_MS = 4000;
const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(2)}%`);
const fmt = (v) => (typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(4) : String(v));

function card() {
  let el = document.getElementById("sweeps-card");
  if (el) return el;
  el = h("section", { class: "card", id: "sweeps-card", hidden: true },
    h("h2", { id: "sweeps-title", text: "Sweeps" }),
    h("div", { id: "sweeps" }));
  el.setAttribute("aria-labelledby", "sweeps-title");
  document.getElementById("main").append(el);
  return el;
}

function bestLine(points) {
  // The best validation return after each finished trial, as a small inline SVG line.
  if (points.length < 2) return null;
  const w = 240, ht = 40;
  const xs = points.map((p) => p.number), ys = points.map((p) => p.best);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => ((x - x0) / (x1 - x0 || 1)) * (w - 4) + 2;
  const sy = (y) => ht - 2 - ((y - y0) / (y1 - y0 || 1)) * (ht - 4);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${ht}`);
  svg.setAttribute("width", w);
  svg.setAttribute("height", ht);
  svg.setAttribute("class", "sweep-best");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  path.setAttribute("points", points.map((p) => `${sx(p.number)},${sy(p.best)}`).join(" "));
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "2");
  svg.append(path);
  return svg;
}

function sweepView(s) {
  if (s.problem) return h("div", { class: "sweep", "data-sweep": s.sweep }, h("h3", { text: s.sweep }),
    h("p", { class: "problem", text: s.problem }));
  const counts = Object.entries(s.counts).map(([k, n]) => `${n} ${k}`).join(", ") || "no trials";
  const best = s.best
    ? `best so far: trial ${s.best.number}, ${pct(s.best.value)} (${s.best.run})`
    : "best so far: none yet";
  const rows = s.trials.map((t) => h("tr", { "data-state": t.state },
    h("td", { text: String(t.number) }),
    h("td", { class: "state", text: t.state }),
    h("td", { class: "num", text: pct(t.value ?? t.last_report?.value) }),
    h("td", { class: "num", text: t.steps === null || t.steps === undefined ? "–" : t.steps.toLocaleString() }),
    h("td", { text: t.host || "–" }),
    h("td", { class: "params", text: Object.entries(t.params).map(([k, v]) => `${k}=${fmt(v)}`).join(", ") })));
  // A study outside the home (a database) is the snapshot its sweep process last wrote.
  const asOf = s.as_of
    ? h("p", { class: "muted as-of", text: `${s.storage}: as of ${new Date(s.as_of).toLocaleTimeString()}, written by this home's sweep while it runs` })
    : null;
  return h("div", { class: "sweep", "data-sweep": s.sweep },
    h("h3", { text: `${s.sweep}` }),
    h("p", { class: "muted", text: `${counts}; ${s.objective}; ${best}` }),
    asOf,
    bestLine(s.best_so_far),
    h("table", { class: "trials" },
      h("thead", {}, h("tr", {}, ...["#", "state", "value", "steps", "machine", "params"].map((c) => h("th", { text: c })))),
      h("tbody", {}, ...rows)));
}

async function refresh() {
  try {
    const r = await fetch("/api/sweeps", { cache: "no-store" });
    if (!r.ok) return;
    const { sweeps } = await r.json();
    const el = card();
    el.hidden = sweeps.length === 0;
    document.getElementById("sweeps").replaceChildren(...sweeps.map(sweepView));
  } catch {
    // The connection badge already says when the server is gone.
  }
}

refresh();
setInterval(refresh, POLL_MS);
