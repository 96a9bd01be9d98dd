// REST client: the bearer token from the login field (localStorage), or the dev token in dev mode.
import { toast } from "./dom.js";

const KEY = "trainyard.token";

export function token() {
  return localStorage.getItem(KEY) || (window.TRAINYARD && window.TRAINYARD.devToken) || "";
}
export function setToken(t) { if (t) localStorage.setItem(KEY, t); else localStorage.removeItem(KEY); }

export class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

export async function api(path, { method = "GET", body, form, quiet = false } = {}) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const res = await fetch(path, { method, headers, body: payload });
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    const detail = (data && data.detail) || `${res.status} ${res.statusText}`;
    if (!quiet) toast(`${method} ${path}: ${detail}`, true);
    throw new ApiError(res.status, detail);
  }
  return data;
}

// Optional reads: a back end that is not deployed (503) or an unknown id (404) gives the fallback.
export async function maybe(path, fallback = null) {
  try { return await api(path, { quiet: true }); } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 503)) return fallback;
    throw e;
  }
}

export function act(path, body, okMessage) {
  return api(path, { method: "POST", body: body || {} })
    .then((r) => { if (okMessage) toast(okMessage); return r; });
}
