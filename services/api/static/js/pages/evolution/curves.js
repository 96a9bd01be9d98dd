// Evolution panel: the step slider and the aggregate curves (loss, a chosen metric, learned / forgotten /
// never counts) across snapshots. ``onStep(step)`` is called whenever the shown step changes.
import { api } from "../../api.js";
import { lineChart } from "../../charts.js";
import { fmt, h } from "../../dom.js";

const METRICS = ["exact", "f1", "edit_sim", "semantic", "confidence"];

export function curvesPanel(base, { onStep }) {
  let curve = [];
  let step = null;
  let metric = "f1";
  const slider = h("input", {
    type: "range", min: 0, max: 0, step: 1, value: 0, "aria-label": "step", "data-testid": "step-slider",
  });
  const stepLabel = h("strong", { "data-testid": "step-label" });
  const stepInfo = h("div", { class: "muted" });
  const metricSel = h("select", { "aria-label": "metric" },
    METRICS.map((m) => h("option", { value: m, selected: m === metric, text: m })));
  const lossChart = lineChart("loss", ["train", "heldout"]);
  const metricChart = lineChart("metric", ["train", "heldout"]);
  const countChart = lineChart("learned / forgotten / never", ["learned", "forgotten", "never_learned"]);

  function draw() {
    const xs = curve.map((s) => s.step);
    const agg = (split, key) => curve.map((s) => ((s.aggregates || {})[split] || {})[key] ?? null);
    lossChart.set(xs, { train: agg("train", "loss"), heldout: agg("heldout", "loss") });
    metricChart.set(xs, { train: agg("train", metric), heldout: agg("heldout", metric) });
    const cnt = (k) => curve.map((s) => (s.counts || {})[k] ?? null);
    countChart.set(xs, {
      learned: cnt("learned"), forgotten: cnt("forgotten"), never_learned: cnt("never_learned"),
    });
    slider.max = String(Math.max(0, xs.length - 1));
    if (step === null || !xs.includes(step)) step = xs[xs.length - 1];
    slider.value = String(xs.indexOf(step));
    show();
  }

  function show() {
    const s = curve.find((c) => c.step === step) || {};
    stepLabel.textContent = `step ${step ?? "–"}`;
    const tr = (s.aggregates || {}).train || {};
    const c = s.counts || {};
    stepInfo.textContent = ` train loss ${fmt(tr.loss)} · exact ${fmt(tr.exact)}`
      + ` · learned ${c.learned ?? "–"} · forgotten ${c.forgotten ?? "–"} · never ${c.never_learned ?? "–"}`;
    onStep(step);
  }

  slider.addEventListener("input", () => { step = curve[Number(slider.value)].step; show(); });
  metricSel.addEventListener("change", () => { metric = metricSel.value; draw(); });

  const el = [
    h("section", {}, h("div", { class: "toolbar" }, "step ", slider, stepLabel, stepInfo)),
    h("section", {},
      h("div", { class: "toolbar" }, h("h2", { text: "Aggregate curves" }), "metric ", metricSel),
      h("div", { class: "row" }, lossChart.el, metricChart.el, countChart.el)),
  ];
  return {
    el,
    step: () => step,
    async load() { curve = await api(`${base}/curve`); draw(); },
    // Show ``s`` (a step of the curve), as if picked on the slider.
    goTo(s) { step = s; slider.value = String(curve.findIndex((c) => c.step === s)); show(); },
    // At the latest step now? Then the next load shows the newest step.
    followLatest() { if (step === (curve[curve.length - 1] || {}).step) step = null; },
  };
}
