// Evolution: aggregate curves (train vs held-out), learned/forgotten/never counts, the example browser with
// each example's curve and its prediction at every step diffed against the target, a step slider and the
// cartography scatter. All dataset text and model output goes in as text.
import { api, maybe } from "../api.js";
import { lineChart, scatter, sparkline } from "../charts.js";
import { renderDiff } from "../diff.js";
import { onEvent } from "../feed.js";
import { clear, fmt, h, table } from "../dom.js";
import * as compare from "./compare.js";

const METRICS = ["exact", "f1", "edit_sim", "semantic", "confidence"];
const PAGE = 50;

export async function render(main, [jobId, idxParam]) {
  if (jobId === "compare") return compare.render(main, (idxParam || "").split(",").filter(Boolean));
  const jobs = (await maybe("/api/evolution", { data: [] })).data;
  if (!jobId && jobs.length) jobId = jobs[0].job_id;
  const pick = h("select", { "aria-label": "job" }, jobs.map((j) => h("option", {
    value: j.job_id, selected: j.job_id === jobId, text: `${j.job_id} (${j.n_snapshots} snapshots, ${j.n_examples} examples)` })));
  pick.addEventListener("change", () => { location.hash = `#/evolution/${encodeURIComponent(pick.value)}`; });
  const other = h("select", { "aria-label": "compare with" }, jobs.filter((j) => j.job_id !== jobId).map((j) => h("option", { value: j.job_id, text: j.job_id })));
  const go = h("button", { "data-testid": "compare-go", disabled: jobs.length < 2,
    onclick: () => { location.hash = `#/evolution/compare/${encodeURIComponent(`${jobId},${other.value}`)}`; } }, "compare");
  main.append(h("section", {}, h("div", { class: "toolbar" }, h("h2", { text: "Evolution" }), pick, "compare with ", other, go)));
  if (!jobId) { main.append(h("p", { class: "muted", text: "No snapshots yet: they appear as checkpoints are evaluated." })); return null; }
  const enc = encodeURIComponent(jobId);
  const st = { curve: [], step: null, idx: idxParam != null ? Number(idxParam) : null, history: null,
    filters: { q: "", state: "", region: "", split: "", sort: "idx" }, offset: 0, metric: "f1" };

  // --- layout --------------------------------------------------------------------------------------------
  const slider = h("input", { type: "range", min: 0, max: 0, step: 1, value: 0, "aria-label": "step", "data-testid": "step-slider" });
  const stepLabel = h("strong", { "data-testid": "step-label" });
  const stepInfo = h("div", { class: "muted" });
  const metricSel = h("select", { "aria-label": "metric" }, METRICS.map((m) => h("option", { value: m, selected: m === st.metric, text: m })));
  const lossChart = lineChart("loss", ["train", "heldout"]);
  const metricChart = lineChart("metric", ["train", "heldout"]);
  const countChart = lineChart("learned / forgotten / never", ["learned", "forgotten", "never_learned"]);
  const browser = h("div", { "data-testid": "examples" });
  const detail = h("div", { "data-testid": "example-detail" }, h("p", { class: "muted", text: "Pick an example to see its curve and predictions." }));
  const carto = h("div");
  main.append(
    h("section", {}, h("div", { class: "toolbar" }, "step ", slider, stepLabel, stepInfo)),
    h("section", {}, h("div", { class: "toolbar" }, h("h2", { text: "Aggregate curves" }), "metric ", metricSel),
      h("div", { class: "row" }, lossChart.el, metricChart.el, countChart.el)),
    h("div", { class: "row" }, h("section", {}, h("h2", { text: "Examples" }), filters(), browser),
      h("section", {}, h("h2", { text: "Example" }), detail)),
    h("section", {}, h("h2", { text: "Cartography" }), h("p", { class: "muted", text: "confidence (mean of gold-token probability) vs variability (its std across snapshots); colour: fraction of snapshots correct (red never, green always). Click a point to open the example." }), carto));

  // --- curves and slider ----------------------------------------------------------------------------------
  function drawCurves() {
    const xs = st.curve.map((s) => s.step);
    const agg = (split, key) => st.curve.map((s) => ((s.aggregates || {})[split] || {})[key] ?? null);
    lossChart.set(xs, { train: agg("train", "loss"), heldout: agg("heldout", "loss") });
    metricChart.set(xs, { train: agg("train", st.metric), heldout: agg("heldout", st.metric) });
    const cnt = (k) => st.curve.map((s) => (s.counts || {})[k] ?? null);
    countChart.set(xs, { learned: cnt("learned"), forgotten: cnt("forgotten"), never_learned: cnt("never_learned") });
    slider.max = String(Math.max(0, xs.length - 1));
    if (st.step === null || !xs.includes(st.step)) st.step = xs[xs.length - 1];
    slider.value = String(xs.indexOf(st.step));
    showStep();
  }
  function showStep() {
    const s = st.curve.find((c) => c.step === st.step) || {};
    stepLabel.textContent = `step ${st.step ?? "–"}`;
    const tr = (s.aggregates || {}).train || {}; const c = s.counts || {};
    stepInfo.textContent = ` train loss ${fmt(tr.loss)} · exact ${fmt(tr.exact)} · learned ${c.learned ?? "–"} · forgotten ${c.forgotten ?? "–"} · never ${c.never_learned ?? "–"}`;
    drawDetail();
  }
  slider.addEventListener("input", () => { st.step = st.curve[Number(slider.value)].step; showStep(); });
  metricSel.addEventListener("change", () => { st.metric = metricSel.value; drawCurves(); });

  // --- example browser ------------------------------------------------------------------------------------
  function filters() {
    const f = st.filters;
    const q = h("input", { type: "search", placeholder: "search text", "aria-label": "search", "data-testid": "example-search" });
    let t = null;
    q.addEventListener("input", () => { clearTimeout(t); t = setTimeout(() => { f.q = q.value; st.offset = 0; loadExamples(); }, 250); });
    const sel = (name, opts) => {
      const s = h("select", { "aria-label": name, "data-testid": `filter-${name}` }, opts.map(([v, label]) => h("option", { value: v, text: label })));
      s.addEventListener("change", () => { f[name] = s.value; st.offset = 0; loadExamples(); });
      return s;
    };
    return h("div", { class: "toolbar" }, q,
      sel("state", [["", "any state"], ["learned", "learned"], ["forgotten", "forgotten"], ["never_learned", "never learned"]]),
      sel("region", [["", "any region"], ["easy-to-learn", "easy-to-learn"], ["ambiguous", "ambiguous"], ["hard-to-learn", "hard-to-learn"]]),
      sel("split", [["", "train + held-out"], ["train", "train"], ["heldout", "held-out"]]),
      sel("sort", [["idx", "by index"], ["learned_at", "by learned-at"], ["-loss", "by loss (high first)"], ["loss", "by loss (low first)"], ["-forgetting", "by forgetting"]]));
  }
  async function loadExamples() {
    const f = st.filters;
    const params = new URLSearchParams({ sort: f.sort, offset: st.offset, limit: PAGE });
    for (const k of ["q", "state", "region", "split"]) if (f[k]) params.set(k, f[k]);
    const page = await api(`/api/evolution/${enc}/examples?${params}`);
    clear(browser).append(
      table([
        { label: "#", value: (e) => e.idx },
        { label: "id", value: (e) => h("span", { class: "mono", text: e.id || "" }) },
        { label: "split", value: (e) => e.split },
        { label: "question", value: (e) => clip(e.question, 60) },
        { label: "latest prediction", value: (e) => h("span", { class: "mono", text: clip(e.prediction, 50) }) },
        { label: "state", value: (e) => e.state },
        { label: "region", value: (e) => e.region || "" },
        { label: "learned at", value: (e) => e.learned_at ?? "" },
        { label: "loss", value: (e) => fmt(e.loss, 3) },
      ], page.data, { onRow: (e) => openExample(e.idx), selected: (e) => e.idx === st.idx }),
      h("div", { class: "pager" },
        h("button", { disabled: st.offset === 0, onclick: () => { st.offset -= PAGE; loadExamples(); } }, "previous"),
        h("span", { class: "muted", "data-testid": "example-count", text: `${page.count ? st.offset + 1 : 0}–${st.offset + page.data.length} of ${page.count}` }),
        h("button", { disabled: st.offset + PAGE >= page.count, onclick: () => { st.offset += PAGE; loadExamples(); } }, "next")));
  }

  // --- one example ----------------------------------------------------------------------------------------
  async function openExample(idx) {
    st.idx = idx;
    history.replaceState(null, "", `#/evolution/${enc}/${idx}`);
    st.history = await api(`/api/evolution/${enc}/examples/${idx}`);
    if (st.exChart) st.exChart.destroy();
    st.exChart = lineChart("this example", ["loss", "confidence", "f1"], { width: 420, height: 180 });
    const xs = st.history.history.map((p) => p.step);
    st.exChart.set(xs, Object.fromEntries(["loss", "confidence", "f1"].map((k) => [k, st.history.history.map((p) => p[k] ?? null)])));
    drawDetail();
    for (const tr of browser.querySelectorAll("tbody tr")) tr.classList.toggle("selected", tr.firstChild.textContent === String(idx));
  }
  function drawDetail() {
    if (!st.history) return;
    const ex = st.history.example;
    const points = st.history.history;
    const at = points.filter((p) => p.step <= st.step).pop() || points[0];
    clear(detail).append(
      h("dl", { class: "kv" },
        h("dt", { text: "example" }), h("dd", { class: "mono", text: `#${ex.idx} ${ex.id || ""} (${ex.split})` }),
        h("dt", { text: "state" }), h("dd", { text: `${ex.state}${ex.learned_at != null ? `, learned at step ${ex.learned_at}` : ""}${ex.region ? `, ${ex.region}` : ""}` }),
        h("dt", { text: "loss trend" }), h("dd", { class: "mono", text: sparkline(points.map((p) => p.loss)) })),
      h("h3", { text: "question" }), h("div", { class: "pre", "data-testid": "question", text: ex.question }),
      h("h3", { text: "target" }), h("div", { class: "pre", "data-testid": "target", text: ex.target }),
      h("h3", {}, `prediction at step ${at ? at.step : "–"}`, at && at.exact ? " ✓ exact" : ""),
      h("div", { class: "pre", "data-testid": "prediction", text: at ? at.prediction : "" }),
      h("h3", { text: "diff against the target" }), renderDiff(at ? at.diff : []),
      st.exChart.el,
      h("h3", { text: "every step" }),
      table([
        { label: "step", value: (p) => p.step },
        { label: "prediction", value: (p) => h("span", { class: "mono", text: p.prediction }) },
        { label: "exact", value: (p) => (p.exact ? "✓" : "") },
        { label: "f1", value: (p) => fmt(p.f1, 3) },
        { label: "loss", value: (p) => fmt(p.loss, 3) },
        { label: "flags", value: (p) => (p.flags || []).join(", ") },
      ], points, { onRow: (p) => { st.step = p.step; slider.value = String(st.curve.findIndex((c) => c.step === p.step)); showStep(); },
        selected: (p) => at && p.step === at.step }));
  }

  async function drawCartography() {
    const all = await api(`/api/evolution/${enc}/examples?limit=1000&sort=idx`);
    const pts = all.data.map((e) => ({ x: e.confidence_std, y: e.confidence_mean, c: e.correctness, idx: e.idx }));
    clear(carto).append(scatter(pts, { onPick: (p) => openExample(p.idx) }));
  }

  async function loadAll() {
    st.curve = await api(`/api/evolution/${enc}/curve`);
    drawCurves();
  }
  await Promise.all([loadAll(), loadExamples()]);
  if (st.idx !== null) await openExample(st.idx);
  drawCartography();
  const off = onEvent((ev) => {
    if (ev.job_id === jobId && ev.type === "snapshot.captured") {
      const atEnd = st.step === (st.curve[st.curve.length - 1] || {}).step;
      if (atEnd) st.step = null;
      setTimeout(() => { loadAll(); loadExamples(); drawCartography(); }, 500); // let the projection catch up
    }
  });
  return () => { off(); };
}

function clip(text, n) { const s = String(text ?? ""); return s.length > n ? `${s.slice(0, n - 1)}…` : s; }
