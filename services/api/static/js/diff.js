// Render the evaluator's structured diff ops (prediction vs target) as text spans, never as HTML.
import { h } from "./dom.js";

const DEL = "in the prediction, not the target";
const INS = "in the target, missing from the prediction";

export function renderDiff(ops) {
  const box = h("div", { class: "pre diff", "data-testid": "diff" });
  for (const op of ops || []) {
    if (op.op === "equal") box.append(h("span", { class: "eq", text: op.prediction }));
    else {
      if (op.prediction) box.append(h("span", { class: "del", title: DEL, text: op.prediction }));
      if (op.target) box.append(h("span", { class: "ins", title: INS, text: op.target }));
    }
  }
  return box;
}
