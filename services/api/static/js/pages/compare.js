// Evolution compare view (#/evolution/compare/A,B): overlaid curves of the runs, the shared tracked examples
// sorted by the largest change, and one example's final predictions side by side, diffed against the target.
import { api, ApiError } from "../api.js";
import { lineChart } from "../charts.js";
import { renderDiff } from "../diff.js";
import { clear, fmt, h, table } from "../dom.js";

function overlay(title, res, key) {
  const labels = res.jobs.map((j) => `${j.letter} ${j.job_id}`);
  const chart = lineChart(title, labels, { xLabel: res.axis === "step" ? "step" : "fraction of training" });
  const xs = [...new Set(res.curves.flatMap((c) => c.points.map((p) => p.x)))].sort((a, b) => a - b);
  const series = {};
  res.curves.forEach((c, i) => {
    const at = new Map(c.points.map((p) => [p.x, p[key] ?? null]));
    series[labels[i]] = xs.map((x) => (at.has(x) ? at.get(x) : null));
  });
  chart.set(xs, series);
  return chart;
}

function state(run) {
  return `${(run.state || "?").replace("_", " ")}${run.learned_at != null ? ` @${run.learned_at}` : ""}`;
}

async function sideBySide(box, res, ex) {
  clear(box).append(h("p", { class: "muted", text: "loading predictions…" }));
  const hists = await Promise.all(ex.runs.map((run) =>
    api(`/api/evolution/${encodeURIComponent(run.job_id)}/examples/${run.idx}`)));
  clear(box).append(
    h("div", { class: "muted", text: `example ${ex.id ?? ""} (matched by ${ex.matched_by}): ${ex.change}` }),
    h("div", {}, h("strong", { text: "question: " }), h("span", { class: "pre", text: ex.question })),
    h("div", {}, h("strong", { text: "target: " }), h("span", { class: "pre", text: ex.target })),
    h("div", { class: "row" }, ex.runs.map((run, i) => {
      const last = hists[i].history[hists[i].history.length - 1] || {};
      return h("div", { "data-testid": "compare-side" },
        h("h3", { text: `${res.jobs[i].letter} ${run.job_id}: ${state(run)}` }),
        h("div", {
          class: "muted",
          text: `step ${last.step ?? "–"} · loss ${fmt(last.loss)} · f1 ${fmt(last.f1)}`,
        }),
        h("div", { class: "pre", text: last.prediction ?? "" }), renderDiff(last.diff));
    })));
}

export async function render(main, ids) {
  const section = h("section", {}, h("h2", { text: `Compare ${ids.join(" vs ")}` }));
  main.append(section);
  let res;
  try {
    res = await api(`/api/evolution/compare?jobs=${encodeURIComponent(ids.join(","))}`, { quiet: true });
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    section.append(h("p", { class: "error", "data-testid": "compare-error", text: e.message }));
    return null;
  }
  const detail = h("div", { "data-testid": "compare-detail" },
    h("p", { class: "muted", text: "Pick an example to see each run's prediction." }));
  const charts = [
    overlay("loss", res, "loss"), overlay("exact", res, "exact"), overlay("learned", res, "learned"),
  ];
  const runsLine = res.jobs
    .map((j) => `${j.letter} = ${j.job_id} (${j.n_examples} tracked, last step ${j.last_step})`)
    .join(" · ");
  const axis = res.axis === "step" ? "step" : "fraction of training";
  section.append(
    ...res.warnings.map((w) => h("p", { class: "warn", text: `warning: ${w}` })),
    h("p", {
      class: "muted",
      text: runsLine + ` · ${res.count} shared, ${res.changed} changed state · x axis: ${axis}`,
    }),
    h("div", { class: "row", "data-testid": "compare-chart" }, charts.map((c) => c.el)));
  const letters = res.jobs.map((j) => j.letter);
  const rows = table([
    { label: "id", value: (x) => h("span", { class: "mono", text: x.id ?? "" }) },
    { label: "change", value: (x) => x.change },
    ...letters.map((l, i) => ({ label: l, value: (x) => state(x.runs[i]) })),
    ...letters.slice(1).map((l, i) => ({ label: `Δloss ${l}-A`, value: (x) => fmt(x.deltas[i].loss) })),
    ...letters.slice(1).map((l, i) => ({ label: `Δf1 ${l}-A`, value: (x) => fmt(x.deltas[i].f1) })),
  ], res.examples, { onRow: (x) => sideBySide(detail, res, x) });
  rows.setAttribute("data-testid", "compare-table");
  main.append(h("div", { class: "row" },
    h("section", {}, h("h2", { text: "Examples, largest change first" }), rows),
    h("section", {}, h("h2", { text: "Side by side" }), detail)));
  return () => charts.forEach((c) => c.destroy());
}
