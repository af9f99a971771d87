// Small helpers shared by the page's modules: building elements, formatting, talking to the server.
// Everything shown comes from files, so text goes in with textContent, never as HTML.

export const $ = (id) => document.getElementById(id);
const FALLBACK_COLORS = ["#0891b2", "#be185d", "#4d7c0f", "#a16207", "#6d28d9"];

let offsetMs = 0; // server clock minus this page's clock
export function setServerTime(iso) {
  offsetMs = Date.parse(iso) - Date.now() || 0;
}

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("data-")) el.setAttribute(k, v);
    else el[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

export const now = () => Date.now() + offsetMs;
export const num = (v, digits = 0) =>
  v === null || v === undefined || Number.isNaN(v)
    ? "–"
    : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
export const compact = (v) => {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toFixed(2)}B`;
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
};

export function span(seconds) {
  const s = Math.abs(seconds);
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 2 * 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}

export function clock(t, timeZone) {
  const d = new Date(t);
  const opts = { hour: "2-digit", minute: "2-digit" };
  const today = new Date(now()).toDateString() === d.toDateString();
  if (!today) Object.assign(opts, { weekday: "short", day: "numeric", month: "short" });
  if (timeZone) opts.timeZone = timeZone;
  try {
    return d.toLocaleString([], opts);
  } catch {
    delete opts.timeZone;
    return d.toLocaleString([], opts);
  }
}

// A time shown as "21:04, 3 s ago" (or "in 2.0 h"): refreshed every second by the ticker.
export function when(iso, kind = "ago") {
  const t = Date.parse(iso);
  if (!iso || Number.isNaN(t)) return h("span", { text: "at an unknown time" });
  const el = h("span", { "data-t": String(t), "data-kind": kind, title: new Date(t).toString() });
  fillWhen(el);
  return el;
}
export function fillWhen(el) {
  const t = Number(el.dataset.t);
  const secs = (now() - t) / 1000;
  if (el.dataset.kind === "in") el.textContent = secs < 0 ? `in ${span(secs)}` : "due now";
  else el.textContent = `${clock(t)}, ${span(secs)} ago`;
}

// Each mode's colour comes from the server's mode table; the dark theme mixes in white so
// the pills' dark text stays readable on it.
const DARK = window.matchMedia("(prefers-color-scheme: dark)");
const HEX = /^#[0-9a-f]{6}$/i;
export function setModeColors(modes) {
  const root = document.documentElement.style;
  for (const m of modes || []) {
    if (typeof m.value !== "string" || !HEX.test(m.colour || "")) continue;
    root.setProperty(`--mode-${m.value}`, DARK.matches ? lighten(m.colour, 0.4) : m.colour);
  }
}
function lighten(hex, share) {
  const channel = (i) => Math.round(parseInt(hex.slice(i, i + 2), 16) * (1 - share) + 255 * share);
  return `#${[1, 3, 5].map((i) => channel(i).toString(16).padStart(2, "0")).join("")}`;
}

export function modeColor(mode) {
  const css = getComputedStyle(document.documentElement).getPropertyValue(`--mode-${mode}`).trim();
  if (css) return css;
  let hash = 0;
  for (const c of String(mode)) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return FALLBACK_COLORS[hash % FALLBACK_COLORS.length];
}
export function pill(mode) {
  const el = h("span", { class: "pill", text: mode || "–" });
  if (mode) el.style.setProperty("--mode-color", modeColor(mode));
  return el;
}
export const title = (s) => s.charAt(0).toUpperCase() + s.slice(1);

export async function post(url, body) {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  let data = {};
  try {
    data = await r.json();
  } catch {
    /* a body that is not JSON: the status line says enough */
  }
  if (!r.ok) throw new Error(data.error || `${r.status} ${r.statusText}`);
  return data;
}

export function setMsg(el, text, kind) {
  el.textContent = text;
  el.className = `msg${kind ? ` ${kind}` : ""}`;
}
