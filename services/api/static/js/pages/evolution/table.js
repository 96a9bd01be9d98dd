// Evolution panel: the example browser: search, filters, sort, a page of examples, previous / next.
// Clicking a row calls ``onOpen(idx)``; ``select(idx)`` marks the open example's row.
import { api } from "../../api.js";
import { clear, fmt, h, table } from "../../dom.js";

const PAGE = 50;
const FILTERS = {
  state: [["", "any state"], ["learned", "learned"], ["forgotten", "forgotten"],
    ["never_learned", "never learned"]],
  region: [["", "any region"], ["easy-to-learn", "easy-to-learn"], ["ambiguous", "ambiguous"],
    ["hard-to-learn", "hard-to-learn"]],
  split: [["", "train + held-out"], ["train", "train"], ["heldout", "held-out"]],
  sort: [["idx", "by index"], ["learned_at", "by learned-at"], ["-loss", "by loss (high first)"],
    ["loss", "by loss (low first)"], ["-forgetting", "by forgetting"]],
};
const COLUMNS = [
  { label: "#", value: (e) => e.idx },
  { label: "id", value: (e) => h("span", { class: "mono", text: e.id || "" }) },
  { label: "split", value: (e) => e.split },
  { label: "question", value: (e) => clip(e.question, 60) },
  { label: "latest prediction", value: (e) => h("span", {},
    h("span", { class: "mono", text: clip(e.prediction, 50) }), limitBadge(e)) },
  { label: "state", value: (e) => e.state },
  { label: "region", value: (e) => e.region || "" },
  { label: "learned at", value: (e) => e.learned_at ?? "" },
  { label: "loss", value: (e) => fmt(e.loss, 3) },
];

export function examplesTable(base, { onOpen }) {
  const f = { q: "", state: "", region: "", split: "", sort: "idx" };
  let offset = 0;
  let selected = null;
  const browser = h("div", { "data-testid": "examples" });

  function filters() {
    const q = h("input", {
      type: "search", placeholder: "search text", "aria-label": "search", "data-testid": "example-search",
    });
    let t = null;
    q.addEventListener("input", () => {
      clearTimeout(t);
      t = setTimeout(() => { f.q = q.value; offset = 0; load(); }, 250);
    });
    const sel = (name) => {
      const options = FILTERS[name].map(([v, label]) => h("option", { value: v, text: label }));
      const s = h("select", { "aria-label": name, "data-testid": `filter-${name}` }, options);
      s.addEventListener("change", () => { f[name] = s.value; offset = 0; load(); });
      return s;
    };
    return h("div", { class: "toolbar" }, q, sel("state"), sel("region"), sel("split"), sel("sort"));
  }

  async function load() {
    const params = new URLSearchParams({ sort: f.sort, offset, limit: PAGE });
    for (const k of ["q", "state", "region", "split"]) if (f[k]) params.set(k, f[k]);
    const page = await api(`${base}/examples?${params}`);
    const shown = `${page.count ? offset + 1 : 0}–${offset + page.data.length} of ${page.count}`;
    clear(browser).append(
      table(COLUMNS, page.data, { onRow: (e) => onOpen(e.idx), selected: (e) => e.idx === selected }),
      h("div", { class: "pager" },
        h("button", { disabled: offset === 0, onclick: () => { offset -= PAGE; load(); } }, "previous"),
        h("span", { class: "muted", "data-testid": "example-count", text: shown }),
        h("button", { disabled: offset + PAGE >= page.count, onclick: () => { offset += PAGE; load(); } },
          "next")));
  }

  function select(idx) {
    selected = idx;
    for (const tr of browser.querySelectorAll("tbody tr")) {
      tr.classList.toggle("selected", tr.firstChild.textContent === String(idx));
    }
  }

  return { el: h("section", {}, h("h2", { text: "Examples" }), filters(), browser), load, select };
}

function clip(text, n) { const s = String(text ?? ""); return s.length > n ? `${s.slice(0, n - 1)}…` : s; }

// Rows whose latest prediction stopped at the hard token limit (flag at_limit): never an exact match.
function limitBadge(e) {
  if (!(e.flags || []).includes("at_limit")) return "";
  return h("span", { class: "badge-warn", "data-testid": "at-limit-badge", text: " ⚠ token limit",
    title: "stopped at the token limit (TRAINYARD_MAX_NEW_TOKENS): cannot match a longer target" });
}
