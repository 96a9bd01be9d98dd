// Live: loss, learning rate, grad norm and tokens/s of one job, updated through the SSE feed; ETA, memory.
import { api, maybe } from "../api.js";
import { lineChart } from "../charts.js";
import { onEvent } from "../feed.js";
import { clear, fmt, h, progress, stateBadge } from "../dom.js";

const SERIES = [
  ["loss", "loss"], ["learning_rate", "learning rate"], ["grad_norm", "grad norm"],
  ["tokens_per_s", "tokens/s"],
];

const MARKER_TYPES = "job.paused,job.resumed,job.preempted,job.started";

// A run event as a chart marker at its step: pause, resume, restart (a later attempt) and preemption.
function marker(ev) {
  const p = ev.payload || {};
  if (ev.type === "job.paused") return { kind: "paused", x: p.step, note: p.reason };
  if (ev.type === "job.preempted") {
    return { kind: "preempted", x: p.step, note: p.by_job_id ? `by ${p.by_job_id}` : "" };
  }
  if (ev.type === "job.resumed") return { kind: "resumed", x: p.from_step ?? 0 };
  if (ev.type === "job.started" && (p.attempt || 1) > 1) {
    return { kind: "restarted", x: p.resumed_from_step ?? 0, note: `attempt ${p.attempt}` };
  }
  return null;
}

export async function render(main, [jobId]) {
  const jobs = await maybe("/api/jobs?limit=200", { data: [] });
  const pick = h("select", { "aria-label": "job" }, h("option", { value: "", text: "choose a job" }),
    jobs.data.map((j) => h("option", {
      value: j.id, selected: j.id === jobId, text: `${j.id} ${j.name || ""} (${j.state})`,
    })));
  pick.addEventListener("change", () => { location.hash = `#/live/${encodeURIComponent(pick.value)}`; });
  const running = jobs.data.find((j) => j.state === "running");
  if (!jobId && running) jobId = running.id;
  const head = h("div");
  const charts = SERIES.map(([, label]) => lineChart(label, [label]));
  main.append(h("section", {}, h("div", { class: "toolbar" }, h("h2", { text: "Live" }), pick), head),
    h("section", {}, h("div", { class: "row" }, charts.map((c) => c.el))));
  if (!jobId) { head.append(h("p", { class: "muted", text: "No job selected." })); return null; }

  const points = new Map();
  const times = [];
  let job = await api(`/api/jobs/${encodeURIComponent(jobId)}`);
  const hist = await maybe(`/api/jobs/${encodeURIComponent(jobId)}/metrics`, { data: [] });
  for (const p of hist.data) points.set(p.step, p);
  const eventsUrl = `/api/events?job_id=${encodeURIComponent(jobId)}&types=${MARKER_TYPES}&limit=1000`;
  const runEvents = await maybe(eventsUrl, { data: [] });
  const markers = runEvents.data.map(marker).filter(Boolean);
  const legend = h("p", { class: "muted", "data-testid": "run-markers" });
  main.append(legend);
  function drawMarkers() {
    charts.forEach((c) => c.mark(markers));
    const said = (m) => `${m.kind} at step ${m.x}${m.note ? ` (${m.note})` : ""}`;
    legend.textContent = markers.length ? `marked on the charts: ${markers.map(said).join(", ")}` : "";
  }
  drawMarkers();
  function draw() {
    const steps = [...points.keys()].sort((a, b) => a - b);
    SERIES.forEach(([key, label], i) => {
      charts[i].set(steps, { [label]: steps.map((s) => points.get(s)[key] ?? null) });
    });
    const last = points.get(steps[steps.length - 1]) || {};
    const max = job.max_steps || last.max_steps;
    let eta = "";
    if (times.length >= 2 && max) {
      const [t0, s0] = times[0]; const [t1, s1] = times[times.length - 1];
      const rate = (s1 - s0) / ((t1 - t0) / 1000);
      if (rate > 0) eta = `${Math.round((max - s1) / rate)} s`;
    }
    clear(head).append(h("dl", { class: "kv" },
      h("dt", { text: "state" }), h("dd", {}, stateBadge(job.state)),
      h("dt", { text: "progress" }), h("dd", {}, progress(last.step ?? job.step, max)),
      h("dt", { text: "loss" }), h("dd", { text: fmt(last.loss ?? job.loss) }),
      h("dt", { text: "tokens/s" }), h("dd", { text: fmt(last.tokens_per_s) }),
      h("dt", { text: "memory" }),
      h("dd", { text: last.memory_mb != null ? `${fmt(last.memory_mb)} MB` : "" }),
      h("dt", { text: "ETA" }), h("dd", { "data-testid": "eta", text: eta || "–" })));
  }
  draw();
  const off = onEvent(async (ev) => {
    if (ev.job_id !== jobId) return;
    if (ev.type === "metrics.logged") {
      points.set(ev.payload.step, ev.payload);
      times.push([Date.now(), ev.payload.step]); if (times.length > 20) times.shift();
      draw();
    } else if (ev.type.startsWith("job.")) {
      const m = marker(ev);
      if (m) { markers.push(m); drawMarkers(); }
      job = await api(`/api/jobs/${encodeURIComponent(jobId)}`); draw();
    }
  });
  return () => { off(); charts.forEach((c) => c.destroy()); };
}
