// Deployments: targets, the adapter each serves, history, deploy and roll back.
import { act, maybe } from "../api.js";
import { onEvent } from "../feed.js";
import { clear, h, stateBadge, table } from "../dom.js";

export async function render(main) {
  const targetsBox = h("div");
  const form = h("div");
  const historyBox = h("div");
  main.append(
    h("section", {}, h("h2", { text: "Targets" }), targetsBox),
    h("section", {}, h("h2", { text: "Deploy a version" }), form),
    h("section", {}, h("h2", { text: "History" }), historyBox));

  async function refresh() {
    const [targets, history, versions] = await Promise.all([
      maybe("/api/targets", []), maybe("/api/deployments?limit=200", { data: [] }),
      maybe("/api/versions?kind=adapter&limit=500", { data: [] })]);
    clear(targetsBox).append(targets.length ? table([
      { label: "target", value: (t) => t.name },
      { label: "url", value: (t) => h("span", { class: "mono", text: t.url }) },
      { label: "kind", value: (t) => t.kind },
      { label: "serving", value: (t) => h("span", {
        class: "mono", "data-testid": `current-${t.name}`, text: serving(t) }) },
      { label: "", value: (t) => h("button", {
        disabled: !t.current, onclick: () => rollback(t) }, "roll back") },
    ], targets) : h("p", { class: "muted", text: "No targets configured (TRAINYARD_TARGETS)." }));

    const vsel = h("select", { "aria-label": "version" },
      versions.data.slice().reverse()
        .map((v) => h("option", { value: v.version_id, text: versionLabel(v) })));
    const tsel = h("select", { "aria-label": "target" },
      targets.map((t) => h("option", { value: t.name, text: t.name })));
    const deploy = () => act("/api/deployments", { version_id: vsel.value, target: tsel.value },
      "deployment requested").finally(refresh);
    clear(form).append(h("div", { class: "toolbar" }, "version ", vsel, " to ", tsel,
      h("button", { disabled: !versions.data.length || !targets.length, onclick: deploy }, "deploy")));

    clear(historyBox).append(history.data.length ? table([
      { label: "deployment", value: (d) => h("span", { class: "mono", text: d.deployment_id }) },
      { label: "target", value: (d) => d.target },
      { label: "version", value: (d) => h("span", { class: "mono", text: d.version_id }) },
      { label: "status", value: (d) => stateBadge(d.status) },
      { label: "checked", value: (d) => (d.checked != null ? `${d.matched}/${d.checked}` : "") },
      { label: "reason / error", value: (d) => d.error || d.reason || "" },
      { label: "when", value: (d) => d.updated_at || d.requested_at || "" },
      { label: "", value: (d) => (d.status === "verified"
        ? h("button", { onclick: () => rollbackTo(d) }, "roll back to this") : "") },
    ], history.data) : h("p", { class: "muted", text: "No deployments yet." }));
  }

  function rollback(t) {
    return act(`/api/targets/${encodeURIComponent(t.name)}/rollback`, {}, `rollback of ${t.name} requested`)
      .finally(refresh);
  }
  function rollbackTo(d) {
    return act(`/api/targets/${encodeURIComponent(d.target)}/rollback`, { to_deployment_id: d.deployment_id },
      "rollback requested").finally(refresh);
  }

  await refresh();
  const off = onEvent((ev) => {
    if (ev.type && ev.type.startsWith("deployment.")) setTimeout(refresh, 300);
  });
  return off;
}

function serving(t) {
  return t.current ? `${t.current.version_id} (${t.current.adapter_name})` : "nothing deployed";
}

function versionLabel(v) {
  return `${v.version_id} ${v.job_id || ""} @${v.step ?? "?"} ${(v.aliases || []).join(",")}`;
}
