// The playground on the Models page: the same prompt to two versions (or a version and the base), both
// streamed at once from /api/playground/{target}/v1/chat/completions (OpenAI SSE) with the user's API token.
// Greedy by default. Model output is appended as text, never parsed as HTML.
import { maybe, token } from "./api.js";
import { clear, h } from "./dom.js";

async function stream(target, model, messages, temperature, out) {
  out.textContent = "";
  const res = await fetch(`/api/playground/${encodeURIComponent(target)}/v1/chat/completions`, {
    method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${token()}` },
    body: JSON.stringify({ model, messages, stream: true, temperature, max_tokens: 128 }),
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new Error(body.detail || `${res.status} ${res.statusText}`);
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    const events = buf.split("\n\n");
    buf = events.pop();
    for (const ev of events) {
      const data = ev.replace(/^data: ?/, "").trim();
      if (!data || data === "[DONE]") continue;
      const delta = ((JSON.parse(data).choices || [])[0] || {}).delta || {};
      if (delta.content) out.textContent += delta.content;
    }
  }
}

export function playgroundPanel(versions) {
  const adapters = versions.filter((v) => v.kind === "adapter" && v.status !== "trashed");
  const versionLabel = (v) => `${v.version_id}${v.job_id ? ` (${v.job_id} @${v.step})` : ""}`;
  const options = () => [h("option", { value: "base", text: "base model" }),
    ...adapters.map((v) => h("option", { value: v.version_id, text: versionLabel(v) }))];
  const target = h("select", { "aria-label": "target" });
  const left = h("select", { "aria-label": "model A" }, options());
  const right = h("select", { "aria-label": "model B" }, options());
  const temp = h("input", {
    type: "number", min: 0, max: 2, step: 0.1, value: 0, size: 4, "aria-label": "temperature",
  });
  const prompt = h("textarea", { rows: 3, cols: 60, "aria-label": "prompt", placeholder: "Ask something" });
  const tracked = h("select", { "aria-label": "tracked prompts" },
    h("option", { value: "", text: "tracked examples' prompts…" }));
  tracked.addEventListener("change", () => { if (tracked.value) prompt.value = tracked.value; });
  const outs = [
    h("div", { class: "pre", "data-testid": "answer-a" }),
    h("div", { class: "pre", "data-testid": "answer-b" }),
  ];
  const errs = [
    h("div", { class: "error", "data-testid": "error-a" }),
    h("div", { class: "error", "data-testid": "error-b" }),
  ];
  const send = h("button", { "data-testid": "send" }, "send to both");
  send.addEventListener("click", () => {
    const messages = [{ role: "user", content: prompt.value }];
    [left, right].forEach((sel, i) => {
      errs[i].textContent = "";
      stream(target.value, sel.value, messages, Number(temp.value) || 0, outs[i])
        .catch((e) => { errs[i].textContent = e.message; });
    });
  });
  async function loadTracked(versionId) {
    const v = adapters.find((x) => x.version_id === versionId);
    if (!v || !v.job_id) return;
    const page = await maybe(`/api/evolution/${encodeURIComponent(v.job_id)}/examples?limit=50`, null);
    clear(tracked).append(h("option", { value: "", text: "tracked examples' prompts…" }),
      ...((page && page.data) || []).map((e) => h("option", {
        value: e.question,
        text: `${e.id ?? e.idx}: ${String(e.question).slice(0, 60)}`,
      })));
  }
  left.addEventListener("change", () => loadTracked(left.value));
  maybe("/api/targets", []).then((ts) => {
    clear(target).append(...ts.map((t) => h("option", { value: t.name, text: t.name })));
    if (!ts.length) errs[0].textContent = "No inference target is configured (TRAINYARD_TARGETS).";
  });
  const el = h("section", { "data-testid": "playground" }, h("h2", { text: "Try it" }),
    h("div", { class: "toolbar" }, "target ", target, "A ", left, "B ", right, "temperature ", temp),
    h("div", { class: "toolbar" }, prompt, tracked, send),
    h("div", { class: "row" },
      [0, 1].map((i) => h("div", {}, h("strong", { text: i ? "B" : "A" }), outs[i], errs[i]))));
  return {
    el,
    tryVersion(versionId) {
      left.value = versionId; right.value = "base";
      loadTracked(versionId);
      el.scrollIntoView();
      prompt.focus();
    },
  };
}
