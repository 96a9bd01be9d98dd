// Evolution: aggregate curves (train vs held-out), learned/forgotten/never counts, the example browser with
// each example's curve and its prediction at every step diffed against the target, a step slider and the
// cartography scatter. All dataset text and model output goes in as text. One component per panel, in
// ./evolution/: curves.js (slider and curves), table.js (examples), example.js (one example),
// cartography.js; this module picks the job and wires the panels together.
import { maybe } from "../api.js";
import { onEvent } from "../feed.js";
import { append, h } from "../dom.js";
import * as compare from "./compare.js";
import { cartographyPanel } from "./evolution/cartography.js";
import { curvesPanel } from "./evolution/curves.js";
import { examplePanel } from "./evolution/example.js";
import { examplesTable } from "./evolution/table.js";

export async function render(main, [jobId, idxParam]) {
  if (jobId === "compare") return compare.render(main, (idxParam || "").split(",").filter(Boolean));
  const jobs = (await maybe("/api/evolution", { data: [] })).data;
  if (!jobId && jobs.length) jobId = jobs[0].job_id;
  const title = h("h2", { text: "Evolution" });
  const others = jobs.filter((j) => j.job_id !== jobId);
  const other = h("select", { "aria-label": "compare with" },
    others.map((j) => h("option", { value: j.job_id, text: j.job_id })));
  const go = h("button", {
    "data-testid": "compare-go",
    disabled: jobs.length < 2,
    onclick: () => {
      location.hash = `#/evolution/compare/${encodeURIComponent(`${jobId},${other.value}`)}`;
    },
  }, "compare");
  main.append(h("section", {},
    h("div", { class: "toolbar" }, title, jobPicker(jobs, jobId), "compare with ", other, go)));
  if (!jobId) {
    const text = "No snapshots yet: they appear as checkpoints are evaluated.";
    main.append(h("p", { class: "muted", text }));
    return null;
  }
  const enc = encodeURIComponent(jobId);
  const base = `/api/evolution/${enc}`;
  const curves = curvesPanel(base, { onStep: (step) => example.draw(step) });
  const example = examplePanel(base, { onStep: (step) => curves.goTo(step) });
  const table = examplesTable(base, { onOpen: openExample });
  const carto = cartographyPanel(base, { onPick: (p) => openExample(p.idx) });

  async function openExample(idx) {
    table.select(idx);
    history.replaceState(null, "", `#/evolution/${enc}/${idx}`);
    await example.open(idx, curves.step());
  }

  append(main, [curves.el, h("div", { class: "row" }, table.el, example.el), carto.el]);
  if (idxParam != null) table.select(Number(idxParam));
  await Promise.all([curves.load(), table.load()]);
  if (idxParam != null) await openExample(Number(idxParam));
  carto.load();
  const off = onEvent((ev) => {
    if (ev.job_id === jobId && ev.type === "snapshot.captured") {
      curves.followLatest();
      // let the projection catch up
      setTimeout(() => { curves.load(); table.load(); carto.load(); }, 500);
    }
  });
  return () => { off(); };
}

function jobPicker(jobs, jobId) {
  const options = jobs.map((j) => h("option", {
    value: j.job_id, selected: j.job_id === jobId,
    text: `${j.job_id} (${j.n_snapshots} snapshots, ${j.n_examples} examples)`,
  }));
  const pick = h("select", { "aria-label": "job" }, options);
  pick.addEventListener("change", () => { location.hash = `#/evolution/${encodeURIComponent(pick.value)}`; });
  return pick;
}
