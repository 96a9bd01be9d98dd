// Evolution panel: one example: its state, its curve, the question, the target, the prediction at the shown
// step diffed against the target, and its prediction at every step. Clicking a step calls ``onStep(step)``.
import { api } from "../../api.js";
import { lineChart, sparkline } from "../../charts.js";
import { renderDiff } from "../../diff.js";
import { clear, fmt, h, table } from "../../dom.js";

const SERIES = ["loss", "confidence", "f1"];
const STEPS = [
  { label: "step", value: (p) => p.step },
  { label: "prediction", value: (p) => h("span", { class: "mono", text: p.prediction }) },
  { label: "exact", value: (p) => (p.exact ? "✓" : "") },
  { label: "f1", value: (p) => fmt(p.f1, 3) },
  { label: "loss", value: (p) => fmt(p.loss, 3) },
  { label: "flags", value: (p) => (p.flags || []).join(", ") },
];

export function examplePanel(base, { onStep }) {
  let history = null;
  let chart = null;
  const detail = h("div", { "data-testid": "example-detail" },
    h("p", { class: "muted", text: "Pick an example to see its curve and predictions." }));

  async function open(idx, step) {
    history = await api(`${base}/examples/${idx}`);
    if (chart) chart.destroy();
    chart = lineChart("this example", SERIES, { width: 420, height: 180 });
    const xs = history.history.map((p) => p.step);
    chart.set(xs, Object.fromEntries(SERIES.map((k) => [k, history.history.map((p) => p[k] ?? null)])));
    draw(step);
  }

  function draw(step) {
    if (!history) return;
    const ex = history.example;
    const points = history.history;
    const at = points.filter((p) => p.step <= step).pop() || points[0];
    const learned = ex.learned_at != null ? `, learned at step ${ex.learned_at}` : "";
    const state = `${ex.state}${learned}${ex.region ? `, ${ex.region}` : ""}`;
    const trend = sparkline(points.map((p) => p.loss));
    clear(detail).append(
      h("dl", { class: "kv" },
        h("dt", { text: "example" }),
        h("dd", { class: "mono", text: `#${ex.idx} ${ex.id || ""} (${ex.split})` }),
        h("dt", { text: "state" }), h("dd", { text: state }),
        h("dt", { text: "loss trend" }), h("dd", { class: "mono", text: trend })),
      h("h3", { text: "question" }), h("div", { class: "pre", "data-testid": "question", text: ex.question }),
      h("h3", { text: "target" }), h("div", { class: "pre", "data-testid": "target", text: ex.target }),
      h("h3", {}, `prediction at step ${at ? at.step : "–"}`, at && at.exact ? " ✓ exact" : ""),
      h("div", { class: "pre", "data-testid": "prediction", text: at ? at.prediction : "" }),
      atLimit(at),
      h("h3", { text: "diff against the target" }), renderDiff(at ? at.diff : []),
      chart.el,
      h("h3", { text: "every step" }),
      table(STEPS, points, { onRow: (p) => onStep(p.step), selected: (p) => at && p.step === at.step }));
  }

  return { el: h("section", {}, h("h2", { text: "Example" }), detail), open, draw };
}

// A prediction cut at the hard token limit (flag at_limit) before its target's length plus the answer room:
// it can never count as learned, so say so next to it.
function atLimit(at) {
  if (!at || !(at.flags || []).includes("at_limit")) return "";
  return h("p", { class: "warning", "data-testid": "at-limit", text:
    `⚠ This prediction stopped at the token limit (${at.pred_len} tokens; TRAINYARD_MAX_NEW_TOKENS) `
    + "before the target's length plus the answer room: the answer is longer than a prediction may be, "
    + "so it cannot count as learned." });
}
