// Evolution panel: the dataset cartography scatter of every example; a click on a point calls
// ``onPick(point)``.
import { api } from "../../api.js";
import { scatter } from "../../charts.js";
import { clear, h } from "../../dom.js";

const ABOUT = "confidence (mean of gold-token probability) vs variability (its std across snapshots); "
  + "colour: fraction of snapshots correct (red never, green always). Click a point to open the example.";

export function cartographyPanel(base, { onPick }) {
  const carto = h("div");
  async function load() {
    const all = await api(`${base}/examples?limit=1000&sort=idx`);
    const pts = all.data.map((e) => ({
      x: e.confidence_std, y: e.confidence_mean, c: e.correctness, idx: e.idx,
    }));
    clear(carto).append(scatter(pts, { onPick }));
  }
  const el = h("section", {},
    h("h2", { text: "Cartography" }), h("p", { class: "muted", text: ABOUT }), carto);
  return { el, load };
}
