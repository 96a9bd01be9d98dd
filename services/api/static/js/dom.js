// DOM helpers. Every piece of data is inserted with textContent (never innerHTML): model output and
// dataset text may contain markup and must show as text.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k === "value") el.value = v;
    else if (k === "checked" || k === "disabled" || k === "selected") el[k] = Boolean(v);
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

export function table(columns, rows, { onRow, selected } = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { text: c.label })));
  const body = rows.map((row) => {
    const tr = h("tr", { class: onRow ? "clickable" + (selected && selected(row) ? " selected" : "") : "" },
      columns.map((c) => h("td", {}, cell(c.value(row)))));
    if (onRow) {
      tr.addEventListener("click", (ev) => { if (!ev.target.closest("button,select,input,a")) onRow(row); });
    }
    return tr;
  });
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}

function cell(v) { return v instanceof Node ? v : (v === null || v === undefined ? "" : String(v)); }

export function fmt(x, digits = 4) {
  if (x === null || x === undefined || x === "") return "";
  if (typeof x === "number") return Number.isInteger(x) ? String(x) : x.toPrecision(digits);
  return String(x);
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0; let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function stateBadge(state) {
  return h("span", { class: `state state-${state || "unknown"}`, text: state || "?" });
}

export function progress(step, max) {
  const pct = max ? Math.min(100, (100 * (step || 0)) / max) : 0;
  return h("span", {}, h("span", { class: "progress", title: `${step || 0}/${max || "?"}` },
    h("div", { style: { width: `${pct}%` } })), ` ${step || 0}/${max || "?"}`);
}

export function toast(message, error = false) {
  const box = document.getElementById("toast");
  const item = h("div", { class: error ? "error" : "", text: message });
  box.appendChild(item);
  setTimeout(() => item.remove(), error ? 8000 : 3000);
}
