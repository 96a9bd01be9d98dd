// What the model trains on: a preview (GET /api/jobs/{id}/preview or POST /api/jobs/preview) as tokens.
// Every token is a span (boundaries visible); tokens that carry loss are highlighted. Text only, never HTML.
import { h } from "./dom.js";

function stats(s, p) {
  const hist = h("div", { class: "hist", "data-testid": "histogram" });
  const top = Math.max(1, ...s.histogram.map((b) => b.count));
  for (const b of s.histogram) {
    const label = b.over ? `> ${p.max_seq_len}` : `${b.from}–${b.to}`;
    hist.append(h("div", { class: "bar" + (b.over ? " over" : ""), title: `${label} tokens: ${b.count}` },
      h("div", { style: { height: `${(60 * b.count) / top}px` } }),
      h("span", { text: label }),
      h("span", { text: String(b.count) })));
  }
  return h("div", {},
    h("dl", { class: "kv" },
      h("dt", { text: "examples" }), h("dd", { text: `${s.n_examples} (${s.measured} measured)` }),
      h("dt", { text: "cut by max_seq_len" }),
      h("dd", { "data-testid": "cut", text: `${s.cut} (max_seq_len ${p.max_seq_len})` }),
      h("dt", { text: "split (packing)" }), h("dd", { text: String(s.split) }),
      h("dt", { text: "dropped (no answer token)" }),
      h("dd", { "data-testid": "dropped", text: String(s.dropped) }),
      h("dt", { text: "tokens: mean / max" }), h("dd", { text: `${s.mean_length} / ${s.max_length}` })),
    (s.dropped_reasons || []).map((r) => h("div", { class: "muted", text: r })),
    h("div", { class: "muted", text: "length histogram (tokens before the cut)" }), hist);
}

function tokens(ex) {
  return h("div", { class: "pre tokens", "data-testid": `tokens-${ex.line}-${ex.chunk}` },
    ex.tokens.map((t) => h("span", {
      class: t.loss ? "tok loss" : "tok",
      title: `token ${t.id}${t.loss ? " (loss)" : ""}`,
      text: t.text,
    })));
}

function rows(p) {
  if (!p.packing) return null;
  const part = (e) => `line ${e.line}${e.chunk ? `#${e.chunk}` : ""} (${e.tokens})`;
  return h("div", {}, h("h3", { text: "Packed rows (one row per batch)" }),
    h("ol", { "data-testid": "rows" }, p.rows.map((r) => h("li", {
      class: "mono",
      text: `batch ${r.batch}: ${r.examples.map(part).join(" + ")}`
        + ` = ${r.tokens} tokens, ${r.padding} padding`,
    }))));
}

export function renderPreview(p) {
  return h("div", { class: "preview", "data-testid": "preview" },
    h("p", {
      class: "muted",
      text: `${p.base_model} · max_seq_len ${p.max_seq_len} · batch ${p.batch_size}`
        + `${p.packing ? " · packing" : ""}. Highlighted tokens carry loss;`
        + " examples in dataset order (training shuffles them).",
    }),
    stats(p.stats, p), rows(p),
    p.examples.map((ex) => h("div", { class: "example" },
      h("div", {
        class: "muted",
        text: `line ${ex.line}${ex.chunk ? ` (chunk ${ex.chunk})` : ""}: `
          + `${ex.n_tokens} tokens, ${ex.n_loss_tokens} with loss`,
      }),
      tokens(ex))));
}
