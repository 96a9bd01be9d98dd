// Models: versions with lineage graph, aliases and protection, trash and restore, replicas, storage used.
import { act, api, maybe } from "../api.js";
import { onEvent } from "../feed.js";
import { append, bytes, clear, fmt, h, table } from "../dom.js";
import { playgroundPanel } from "../playground.js";
import { storagePlanView } from "./models/storageplan.js";

const KINDS = ["", "adapter", "full", "base", "merged", "dataset"];

export async function render(main) {
  const kind = h("select", { "aria-label": "kind" },
    KINDS.map((k) => h("option", { value: k, text: k || "all kinds" })));
  const trashed = h("input", { type: "checkbox", "aria-label": "include trashed" });
  const list = h("div");
  const uploads = h("div", { "data-testid": "uploads" });
  const uploading = new Map(); // version id -> its latest version.upload_progress payload
  const side = h("div", {}, h("p", { class: "muted", text: "Pick a version to see its lineage." }));
  const storage = h("div");
  const plan = h("div");
  const backup = h("div");
  const bestBox = h("div", { "data-testid": "best" });
  main.append(
    h("section", {},
      h("div", { class: "toolbar" },
        h("h2", { text: "Versions" }), kind, h("label", {}, trashed, " include trash")),
      uploads, list),
    h("div", { class: "row" }, h("section", {}, h("h2", { text: "Lineage" }), side),
      h("section", {}, h("h2", { text: "Storage and backup" }), bestBox, storage, plan, backup)));
  let selected = null;
  const all = await maybe("/api/versions?limit=500", null);
  const play = playgroundPanel(all ? all.data : []);
  main.append(play.el);

  async function refresh() {
    const params = new URLSearchParams({ limit: 500 });
    if (kind.value) params.set("kind", kind.value);
    if (trashed.checked) params.set("include_trashed", "true");
    const page = await maybe(`/api/versions?${params}`, null);
    clear(list).append(page ? versionsTable(page.data)
      : h("p", { class: "muted", text: "The registry is not available." }));
    const used = await maybe("/api/versions/storage", null);
    clear(storage).append(used ? h("dl", { class: "kv" },
      h("dt", { text: "versions" }), h("dd", { text: used.versions }),
      h("dt", { text: "stored (unique blobs)" }),
      h("dd", { "data-testid": "storage-unique", text: bytes(used.unique_bytes) }),
      h("dt", { text: "logical (all versions)" }), h("dd", { text: bytes(used.logical_bytes) }),
      ...Object.entries(used.by_kind).flatMap(([k, v]) => [
        h("dt", { text: k }), h("dd", { text: bytes(v) })])) : "");
    clear(plan).append(await storagePlanView());
    const b = await maybe("/api/registry/backup", null);
    clear(backup).append(b ? backupView(b) : "");
    const best = await maybe("/api/registry/best", null);
    clear(bestBox).append(best ? bestView(best) : "");
  }

  function versionsTable(items) {
    if (!items.length) return h("p", { class: "muted", text: "No versions yet." });
    return table([
      { label: "version", value: (v) => h("span", { class: "mono", text: v.version_id }) },
      { label: "kind", value: (v) => v.kind },
      { label: "name", value: (v) => v.name || "" },
      { label: "job / step", value: (v) => `${v.job_id || ""}${v.step != null ? ` @${v.step}` : ""}` },
      { label: "aliases", value: (v) => (v.aliases || []).join(", ") },
      { label: "protected", value: (v) => h("span", {
        title: (v.protected_by || []).join("; "), text: v.protected ? "yes" : "" }) },
      { label: "replicas", value: (v) => (v.replicas || []).join(", ") || "not yet" },
      { label: "size", value: (v) => bytes(v.size ?? sumSizes(v.files || [])) },
      { label: "status", value: (v) => v.status || "" },
      { label: "", value: (v) => actions(v) },
    ], items, {
      onRow: (v) => { selected = v.version_id; showLineage(v.version_id); },
      selected: (v) => v.version_id === selected,
    });
  }

  function actions(v) {
    const id = encodeURIComponent(v.version_id);
    const alias = h("input", { placeholder: "alias", size: 8, "aria-label": "alias" });
    const run = (path, body, msg) => act(`/api/versions/${id}/${path}`, body, msg)
      .finally(() => setTimeout(refresh, 300));
    const setAlias = () => alias.value
      && run("aliases", { alias: alias.value }, `alias ${alias.value} moved`);
    const trash = () => run("trash", {}, "moved to trash");
    const tryIt = v.kind === "adapter" || v.kind === "base"
      ? h("button", { "data-try": v.version_id, disabled: v.status === "trashed",
        onclick: () => play.tryVersion(v.kind === "base" ? "base" : v.version_id) }, "try it") : null;
    return h("span", {}, tryIt,
      v.pinned ? h("button", { onclick: () => run("unprotect", {}, "unpinned") }, "unpin")
        : h("button", { onclick: () => run("protect", { reason: "pinned from the UI" }, "pinned") }, "pin"),
      v.status === "trashed" ? h("button", { onclick: () => run("restore", {}, "restored") }, "restore")
        : h("button", {
          disabled: v.protected, title: v.protected ? "protected" : "", onclick: trash }, "trash"),
      alias, h("button", { onclick: setAlias }, "set alias"),
      h("button", { onclick: () => downloadLinks(v.version_id) }, "download"));
  }

  async function downloadLinks(vid) {
    const res = await api(`/api/versions/${encodeURIComponent(vid)}/download`);
    clear(side).append(h("h3", { text: `files of ${vid}` }),
      h("ul", {}, res.files.map((f) => h("li", {},
        h("a", { href: f.url, text: f.path }), ` ${bytes(f.size)} `,
        h("span", { class: "mono muted", text: f.sha256.slice(0, 12) })))));
  }

  async function showLineage(vid) {
    const g = await api(`/api/versions/${encodeURIComponent(vid)}/lineage`);
    clear(side).append(lineageSvg(g, vid));
  }

  kind.addEventListener("change", refresh);
  trashed.addEventListener("change", refresh);
  await refresh();
  // A large version uploading: a bar per version until its version.stored (no refresh per progress event).
  function showUploads() {
    append(clear(uploads), [...uploading.values()].map((p) => h("p", { class: "muted" },
      "uploading ", h("span", { class: "mono", text: p.version_id }), " ",
      h("progress", { max: p.bytes_total, value: p.bytes_done }),
      ` ${bytes(p.bytes_done)} of ${bytes(p.bytes_total)}`)));
  }
  const off = onEvent((ev) => {
    if (ev.type === "version.upload_progress") {
      uploading.set(ev.payload.version_id, ev.payload);
      showUploads();
      return;
    }
    if (ev.type === "version.stored" && uploading.delete(ev.payload?.version_id)) showUploads();
    if (ev.type && (ev.type.startsWith("version.") || ev.type === "alias.moved")) setTimeout(refresh, 300);
  });
  return off;
}

function sumSizes(files) { return files.reduce((a, f) => a + (f.size || 0), 0); }

// The replica's state as a sentence, its warnings (nothing replicated, a replica on the primary's own server)
// and a table of versions; all from GET /api/registry/backup (the same summary the CLI prints).
function backupView(b) {
  const onReplica = (r) => h("span", {
    class: r.replicated ? "ok" : "bad", text: r.replicated ? "yes" : "not yet" });
  return h("div", { "data-testid": "backup" },
    h("h3", { text: "replica" }),
    h("p", { "data-testid": "backup-summary", text: b.summary }),
    (b.warnings || []).map((w) => h("p", {
      class: "warning", role: "alert", "data-testid": "backup-warning", text: `⚠ ${w}` })),
    (b.rows || []).length ? table([
      { label: "version", value: (r) => h("span", { class: "mono", text: r.version_id }) },
      { label: "kind", value: (r) => r.kind || "" },
      { label: "name", value: (r) => r.name || "" },
      { label: "size", value: (r) => bytes(r.size) },
      { label: "on the replica", value: onReplica },
    ], b.rows) : "");
}

// What `best` names and the rule it follows (GET /api/registry/best).
function bestView(b) {
  const now = b.version_id
    ? `best is ${b.version_id}: ${b.metric} = ${fmt(b.value)}`
    : "best is not set yet: it moves once the evaluator has scored a checkpoint.";
  return h("div", {}, h("h3", { text: "best" }), h("p", { "data-testid": "best-now", text: now }),
    h("p", { class: "muted", "data-testid": "best-rule", text: b.rule }));
}

// Lineage as columns: datasets and base models on the left, then the job's checkpoints in step order.
function lineageSvg(graph, focus) {
  const NS = "http://www.w3.org/2000/svg";
  const order = (n) => (n.kind === "dataset" ? 0 : n.kind === "base" ? 1 : 2);
  const nodes = [...graph.nodes].sort((a, b) => order(a) - order(b) || (a.step ?? 0) - (b.step ?? 0));
  const cols = new Map(); const pos = new Map();
  for (const n of nodes) {
    const c = order(n); const row = cols.get(c) || 0;
    cols.set(c, row + 1); pos.set(n.version_id, [20 + c * 190, 20 + row * 44]);
  }
  const height = 40 + Math.max(...cols.values(), 1) * 44;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", "600"); svg.setAttribute("height", String(height));
  svg.setAttribute("data-testid", "lineage");
  const mk = (tag, attrs) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  };
  for (const e of graph.edges) {
    const a = pos.get(e.from); const b = pos.get(e.to);
    if (a && b) {
      svg.appendChild(mk("line", {
        x1: a[0] + 160, y1: a[1] + 14, x2: b[0], y2: b[1] + 14, stroke: "#94a3b8" }));
    }
  }
  for (const n of nodes) {
    const [x, y] = pos.get(n.version_id);
    svg.appendChild(mk("rect", {
      x, y, width: 160, height: 30, rx: 4,
      fill: n.version_id === focus ? "#dbeafe" : "#f8fafc", stroke: n.missing ? "#dc2626" : "#64748b",
    }));
    const t = mk("text", { x: x + 6, y: y + 19 });
    const step = n.step != null ? `@${n.step} ` : "";
    t.textContent = `${n.kind || "?"} ${step}${(n.name || n.version_id).slice(0, 18)}`;
    svg.appendChild(t);
  }
  return svg;
}
