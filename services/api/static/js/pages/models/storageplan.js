// The bucket budget on the Models page: the plan's sentence, then what would go and why
// (GET /api/storage/plan).
import { maybe } from "../../api.js";
import { bytes, h, table } from "../../dom.js";

export async function storagePlanView() {
  const plan = await maybe("/api/storage/plan", null);
  if (!plan) return h("p", { class: "muted", text: "The storage plan is not available." });
  const gone = plan.decisions.filter((d) => d.remove);
  const head = h("p", { "data-testid": "storage-plan-summary", text: plan.summary });
  if (!gone.length) return h("div", {}, head);
  return h("div", { "data-testid": "storage-plan" }, head,
    h("p", { class: "muted",
      text: "`trainyard storage apply` removes these (each keeps a verified replica copy):" }),
    table([
      { label: "version", value: (d) => h("span", { class: "mono", text: d.version_id }) },
      { label: "job / step", value: (d) => `${d.job_id || ""}${d.step != null ? ` @${d.step}` : ""}` },
      { label: "size", value: (d) => bytes(d.size) },
      { label: "why", value: (d) => d.reasons.join("; ") },
    ], gone));
}
