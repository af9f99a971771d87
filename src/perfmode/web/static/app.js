// The perfmode page: renders what the server pushes (Server-Sent Events) and sends the three
// controls: the mode, starting a run, stopping one.
import { clearMetrics, onMetrics, rebuild, renderLegend, resize, showRun } from "./charts.js";
import { $, clock, fillWhen, h, now, num, pill, post, setMsg, setModeColors, setServerTime, title, when, modeColor } from "./dom.js";

let state = null;
let modeDirty = false;
let selectedRun = null;
let userPicked = false;
let firstRender = true;
const runEls = new Map();
const stopArmed = new Map();

// -- the mode --------------------------------------------------------------------

let modesKey = "";
function renderMode(s) {
  const st = s.status;
  const requested = st ? st.requested_mode : null;
  const req = $("requested-mode");
  req.replaceWith(Object.assign(pill(requested), { id: "requested-mode" }));
  const by = $("requested-by");
  by.replaceChildren();
  if (st && st.changed_by) by.append(`set by ${st.changed_by}, `, when(st.changed_at));
  else if (st) by.append("never set: quiet is the default");

  const problem = $("settings-problem");
  problem.hidden = !st || st.settings_ok;
  if (st && !st.settings_ok) problem.textContent = `settings.json: ${st.settings_problem}`;
  $("settings-file").textContent = st ? st.settings_file : "";

  const key = s.modes.map((m) => m.value).join(",");
  if (key !== modesKey) {
    modesKey = key;
    const box = $("mode-choices");
    box.querySelectorAll(".choice").forEach((el) => el.remove());
    for (const m of s.modes) {
      const input = h("input", { type: "radio", name: "mode", value: m.value, id: `mode-${m.value}` });
      const label = h(
        "label",
        { class: "choice", htmlFor: `mode-${m.value}`, "data-mode": m.value },
        input,
        h("span", { class: "title", text: title(m.value) }),
        m.help ? h("span", { class: "help", text: m.help }) : null,
      );
      label.style.setProperty("--mode-color", modeColor(m.value));
      box.append(label);
    }
  }
  const picked = document.querySelector("input[name=mode]:checked");
  if (!modeDirty && requested) {
    const input = $(`mode-${requested}`);
    if (input) input.checked = true;
  }
  updateSave(picked ? picked.value : requested);
}

function updateSave() {
  const picked = document.querySelector("input[name=mode]:checked");
  const requested = state && state.status ? state.status.requested_mode : null;
  modeDirty = !!picked && picked.value !== requested;
  $("save").disabled = !modeDirty;
}

$("mode-choices").addEventListener("change", () => {
  updateSave();
  setMsg($("mode-msg"), modeDirty ? "Not saved yet" : "");
});

$("mode-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const picked = document.querySelector("input[name=mode]:checked");
  if (!picked) return;
  const msg = $("mode-msg");
  $("save").disabled = true;
  setMsg(msg, "Saving…");
  try {
    const r = await post("/api/mode", { mode: picked.value });
    modeDirty = false;
    setMsg(msg, `Saved: ${r.mode}. Running trainers apply it within a second.`, "ok");
  } catch (err) {
    setMsg(msg, err.message, "bad");
    updateSave();
  }
});

// -- the schedule ----------------------------------------------------------------

function renderSchedule(s) {
  const box = $("schedule");
  box.replaceChildren();
  const sch = s.status ? s.status.schedule : null;
  if (!sch) {
    box.append(
      h("p", { class: "muted", text: "No timetable: the mode changes only when you change it." }),
      h("p", { class: "muted" }, "Set one with ", h("code", { text: "perfmode schedule --night 18:00 --day 08:00" })),
    );
    return;
  }
  const dl = h("dl", { class: "facts" });
  const row = (k, ...v) => dl.append(h("dt", { text: k }), h("dd", {}, ...v));
  if (sch.night && sch.day) {
    row("Timetable", pill("performance"), ` from ${sch.night}, `, pill("quiet"), ` from ${sch.day}`);
    row("Weekends", sch.weekends || "schedule");
  }
  if (sch.tz) row("Time zone", sch.tz);
  if (sch.rules && sch.rules.length) {
    row("Rules", h("ul", { class: "rules" }, ...sch.rules.map((r) => h("li", {}, h("code", { text: r })))));
  }
  row(
    "Daemon",
    sch.daemon_pid
      ? h("span", { class: "good", text: `running (pid ${sch.daemon_pid})` })
      : h("span", { class: "warn", text: "not running" }),
  );
  if (sch.scheduled_mode) row("Scheduled now", pill(sch.scheduled_mode), " since ", when(sch.scheduled_since));
  const next = sch.next_switch;
  if (next) {
    const dd = [pill(next.mode), ` at ${clock(Date.parse(next.at), sch.tz)} `, "(", when(next.at, "in"), ")"];
    if (!sch.daemon_pid) {
      dd.push(
        h("div", { class: "warn" }, "Will not happen: no schedule daemon runs. Start it with ", h("code", { text: "perfmode schedule" })),
      );
    }
    row("Next switch", ...dd);
  }
  if (sch.problem) row("Problem", h("span", { class: "warn", text: sch.problem }));
  box.append(dl);
}

// -- runs ------------------------------------------------------------------------

function renderConfigs(configs) {
  const sel = $("start-config");
  const key = configs.join("\n");
  if (sel.dataset.key === key) return;
  const keep = sel.value;
  sel.replaceChildren(...configs.map((c) => h("option", { value: c, text: c })));
  if (configs.includes(keep)) sel.value = keep;
  sel.dataset.key = key;
}

function runState(st, launch) {
  // Its process lives and holds the run, but it is stopped (SIGSTOP) or hangs.
  if (st && st.alive && !st.running) return "not responding";
  // Accepted, not started: the home's budget has no room for another trainer yet.
  if (launch && launch.queued) return "queued";
  const launchRunning = launch && launch.running;
  if (launchRunning && !(st && st.running && st.pid === launch.pid)) return "starting";
  if (st && st.running) return st.state || "training";
  // A trainer started here that exited with an error, whether or not it wrote a status.
  const ours = launch && (!st || st.pid === launch.pid || String(launch.started_at) > String(st.heartbeat || ""));
  if (ours && !launch.running && launch.exit_code !== 0) return "failed";
  if (!st) return "not running";
  return st.state === "training" ? "not running" : st.state || "not running";
}

function runList(s) {
  const statuses = (s.status && s.status.runs) || [];
  const launches = s.launches || {};
  const names = statuses.map((r) => r.run);
  for (const run of Object.keys(launches)) if (!names.includes(run)) names.push(run);
  const byRun = new Map(statuses.map((r) => [r.run, r]));
  const items = names.map((run) => {
    const st = byRun.get(run) || null;
    const launch = launches[run] || null;
    return { run, st, launch, state: runState(st, launch) };
  });
  const active = (i) => (["training", "starting", "waiting", "paused", "queued"].includes(i.state) ? 0 : 1);
  return items.sort((a, b) => active(a) - active(b)); // stable: newest heartbeat next
}

function renderRuns(s) {
  const box = $("runs");
  const items = runList(s);
  const seen = new Set();
  let prev = null;
  for (const item of items) {
    seen.add(item.run);
    let el = runEls.get(item.run);
    if (!el) {
      el = makeRun(item.run);
      runEls.set(item.run, el);
    }
    fillRun(el, item, s);
    if (prev ? prev.nextSibling !== el : box.firstChild !== el) {
      if (prev) prev.after(el);
      else box.prepend(el);
    }
    prev = el;
  }
  for (const [run, el] of runEls) {
    if (!seen.has(run)) {
      el.remove();
      runEls.delete(run);
    }
  }
  let none = box.querySelector(".none");
  if (!items.length && !none) {
    none = h("p", { class: "none" }, "No runs yet. Start one here, or run ", h("code", { text: "perfmode train" }), ".");
    box.append(none);
  } else if (items.length && none) none.remove();
  if (!userPicked || !items.some((i) => i.run === selectedRun)) {
    const pick = items.length ? items[0].run : null;
    if (pick !== selectedRun) selectRun(pick, false);
  }
  for (const [run, el] of runEls) el.classList.toggle("selected", run === selectedRun);
}

function makeRun(run) {
  const el = h("article", { class: "run", "data-run": run, tabIndex: 0 });
  const stop = h("button", { type: "button", class: "danger stop", text: "Stop" });
  stop.addEventListener("click", (e) => {
    e.stopPropagation();
    onStop(run, stop, el);
  });
  el.append(
    h(
      "div",
      { class: "run-head" },
      h("span", { class: "run-name", text: run }),
      h("span", { class: "badge" }),
      h("span", { class: "muted meta" }),
      h("span", { class: "spacer" }),
      stop,
    ),
    h("div", { class: "progress" }, h("div", { class: "bar" }, h("span")), h("span", { class: "num" })),
    h("div", { class: "run-facts" }),
    h("div", { class: "applied" }),
    h("div", { class: "notes" }),
  );
  el.addEventListener("click", () => selectRun(run, true));
  el.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target === el) selectRun(run, true);
  });
  return el;
}

function fillRun(el, { run, st, launch, state: rstate }, s) {
  const q = (sel) => el.querySelector(sel);
  const badge = q(".badge");
  badge.textContent = rstate;
  badge.dataset.state = rstate;
  const running = ["training", "starting", "waiting", "paused", "queued"].includes(rstate);
  const pid = st && st.running ? st.pid : launch && launch.running ? launch.pid : null;
  q(".meta").textContent = [pid ? `pid ${pid}` : null, st && st.device].filter(Boolean).join(" · ");
  const stop = q(".stop");
  stop.hidden = !running;
  if (!running) disarm(run, stop);

  const done = st ? st.timesteps || 0 : 0;
  const total = st ? st.total_timesteps || 0 : 0;
  const frac = total ? Math.min(1, done / total) : 0;
  q(".bar > span").style.width = `${(frac * 100).toFixed(2)}%`;
  q(".num").textContent = st ? `${num(done)} / ${num(total)} steps · ${(frac * 100).toFixed(1)}%` : "no progress yet";

  const facts = q(".run-facts");
  facts.replaceChildren();
  const fact = (k, ...v) => facts.append(h("span", {}, h("span", { class: "k", text: k }), ...v));
  if (st && st.running) {
    fact("steps/s", h("b", { text: num(st.fps) }));
    if (st.fps > 0 && total > done) {
      const eta = new Date(now() + ((total - done) / st.fps) * 1000).toISOString();
      fact("ETA", when(eta, "in"), ` (${clock(Date.parse(eta))})`);
    }
  } else if (st && st.heartbeat) fact("last seen", when(st.heartbeat));
  if (st && st.running && typeof st.foreign_cpu === "number") {
    // The home's other runs are listed on the page themselves: count them apart.
    const runs = typeof st.other_trainers_cpu === "number" ? st.other_trainers_cpu : 0;
    fact("other programs", `${num(Math.max(0, st.foreign_cpu - runs), 1)} cores`);
    if (runs >= 0.05) fact("other runs", `${num(runs, 1)} cores`);
  }
  if (st && st.last_checkpoint) {
    const name = String(st.last_checkpoint).split(/[\\/]/).pop();
    fact("checkpoint", `${num(st.last_checkpoint_timesteps)} steps `, h("span", { class: "muted", text: `(${name})` }));
  } else if (st) fact("checkpoint", "none yet");

  const applied = q(".applied");
  applied.replaceChildren();
  if (st && st.applied_mode) {
    // A waiting run sleeps: it gets no CPU, whatever share its profile would give it.
    const waiting = st.state === "waiting" || (st.budget && st.budget.state === "waiting");
    const share = typeof st.cpu_share === "number" ? `${Math.round(st.cpu_share * 100)}%` : "?";
    // A run that rests to pay back its start-up trains at its share once it has.
    const owed = typeof st.payback_s === "number" && st.payback_s >= 1 ? ` (paying back its start-up: resting ${Math.round(st.payback_s)} s)` : "";
    const cpu = waiting ? "0% (waiting)" : share + owed;
    const t = st.threads || {};
    const how = t.choice === "trying" ? " (trying)" : t.choice === "measured" ? " (measured)" : "";
    applied.append(
      h("span", { class: "k muted", text: st.running ? "Applied" : "Last applied" }),
      pill(st.applied_mode),
      h("span", { text: `batch ${st.batch_size} · epochs ${st.n_epochs} · threads ${st.torch_threads}${how} · CPU ${cpu}` }),
      h("span", { class: "muted" }, "since ", when(st.applied_at)),
    );
  }

  const notes = q(".notes");
  notes.replaceChildren();
  const note = (text, bad) => notes.append(h("p", { class: `note${bad ? " bad" : " muted"}`, text }));
  const requested = s.status ? s.status.requested_mode : null;
  if (st && st.running && requested && st.applied_mode !== requested && !st.settings_problem) {
    note(`Switching to ${requested}: threads and CPU share at once, batch and epochs at the next update…`);
  }
  if (st && st.running && st.budget && typeof st.budget.reason === "string") {
    // The home's budget: this run's share, its place in line, and why it waits.
    note(`Home budget: ${st.budget.reason}`);
  }
  if (st && st.running && st.settings_problem) note(`Trainer sees: ${st.settings_problem}`, true);
  if (st && st.running && threadReason(st)) note(`Threads: ${threadReason(st)}`);
  if (st && st.running) for (const line of st.gpu_lines || []) note(line, line.startsWith("GPU guard"));
  if (st && st.oom_events && st.oom_events.length) {
    note(`CUDA ran out of memory ${st.oom_events.length}×; batch capped at ${st.batch_cap}`, true);
  }
  if (rstate === "not responding") {
    const since = st.not_responding_since ? clock(Date.parse(st.not_responding_since)) : "?";
    note(st.suspended
      ? `Not responding since ${since}: the process is stopped (SIGSTOP or Ctrl-Z); \`kill -CONT ${st.pid}\` resumes it.`
      : `Not responding since ${since}: no heartbeat since; if it hangs, \`kill ${st.pid}\` stops it.`, true);
  }
  if (rstate === "not running" && st && st.state === "training") {
    note("The trainer stopped without saying so (killed, or it crashed); start it again to resume from the last checkpoint.", true);
  }
  if (rstate === "queued") note("Queued: it starts when the home's budget has room for another run (none waits, none is loading)");
  if (launch && rstate === "starting") note(`Started from this page with ${launch.config}; loading…`);
  // How the trainer started here ended, unless another one has taken the run since.
  if (launch && !launch.running && launch.message && !(st && st.running && st.pid !== launch.pid)) {
    const failed = launch.exit_code !== 0;
    note(`${failed ? `Trainer exited with status ${launch.exit_code}` : "Trainer exited"}: ${launch.message}`, failed);
  }
  const msg = el.querySelector(".stop-msg");
  if (msg) notes.append(msg);
}

function threadReason(st) {
  const t = st.threads;
  return t && t.choice !== "profile" && t.reason ? t.reason : null;
}

function disarm(run, btn) {
  clearTimeout(stopArmed.get(run));
  stopArmed.delete(run);
  btn.textContent = "Stop";
}

async function onStop(run, btn, el) {
  if (!stopArmed.has(run)) {
    // Two clicks: a run of days is not stopped by a stray one (it would save, but still).
    btn.textContent = "Click again to stop";
    stopArmed.set(run, setTimeout(() => disarm(run, btn), 4000));
    return;
  }
  disarm(run, btn);
  btn.disabled = true;
  let msg = el.querySelector(".stop-msg");
  if (!msg) msg = h("p", { class: "note muted stop-msg" });
  el.querySelector(".notes").append(msg);
  try {
    const r = await post("/api/runs/stop", { run });
    msg.textContent = `Sent SIGTERM to pid ${r.pid}: it saves a checkpoint, then exits.`;
    msg.className = "note muted stop-msg";
  } catch (err) {
    msg.textContent = err.message;
    msg.className = "note bad stop-msg";
  } finally {
    btn.disabled = false;
    setTimeout(() => msg.remove(), 15000);
  }
}

$("start-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const run = $("start-run").value.trim();
  const config = $("start-config").value;
  const msg = $("start-msg");
  $("start").disabled = true;
  setMsg(msg, `Starting run ${run}…`);
  try {
    const r = await post("/api/runs/start", { run, config });
    setMsg(msg, `Started run ${r.run} (pid ${r.pid}) with ${r.config}.`, "ok");
    selectRun(run, true);
  } catch (err) {
    setMsg(msg, err.message, "bad");
  } finally {
    $("start").disabled = false;
  }
});

function selectRun(run, byUser) {
  if (byUser) userPicked = true;
  selectedRun = run;
  for (const [r, el] of runEls) el.classList.toggle("selected", r === selectedRun);
  showRun(run);
}

// -- the stream ------------------------------------------------------------------

function onState(s) {
  state = s;
  setModeColors(s.modes);
  setServerTime(s.server_time);
  $("home").textContent = s.home;
  const banner = $("banner");
  banner.hidden = !s.problem;
  banner.textContent = s.problem || "";
  renderMode(s);
  renderSchedule(s);
  renderConfigs(s.configs || []);
  renderRuns(s);
  renderLegend(s.modes);
  // The tab says it too: the mode, and the running trainer's progress.
  const t = s.status && s.status.trainer;
  const pct = t && t.total_timesteps ? ` · ${t.run} ${Math.floor((100 * t.timesteps) / t.total_timesteps)}%` : "";
  document.title = s.status ? `${s.status.requested_mode}${pct} — perfmode` : "perfmode";
  if (firstRender) {
    firstRender = false;
    performance.mark("perfmode-first-state");
    document.body.dataset.ready = "1";
  }
}

let lostTimer = null;
function setConn(kind, text) {
  $("conn").dataset.state = kind;
  $("conn-text").textContent = text;
  clearTimeout(lostTimer);
  if (kind === "live") $("main").classList.remove("stale");
  // A page that cannot hear the server must not look current.
  else lostTimer = setTimeout(() => $("main").classList.add("stale"), 3000);
}

function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("open", () => {
    clearMetrics();
    setConn("live", "Live");
  });
  es.addEventListener("state", (e) => onState(JSON.parse(e.data)));
  es.addEventListener("metrics", (e) => onMetrics(JSON.parse(e.data)));
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CLOSED) {
      setConn("lost", "Disconnected: is perfmode ui still running? Retrying…");
      setTimeout(connect, 2000);
    } else setConn("lost", "Reconnecting…");
  });
}

setInterval(() => document.querySelectorAll("[data-t]").forEach(fillWhen), 1000);
window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  // The modes' colours differ per theme: draw what holds one again.
  if (state) {
    modesKey = "";
    $("mode-legend").dataset.key = "";
    onState(state);
  }
  rebuild();
});
new ResizeObserver(resize).observe($("charts-card"));
connect();
