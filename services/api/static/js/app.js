// The single-page app: hash routes (#/jobs, #/live/<job>, #/evolution/<job>/<idx>, #/models, #/deployments).
import { setToken, token } from "./api.js";
import { clear, toast } from "./dom.js";
import * as jobs from "./pages/jobs.js";
import * as live from "./pages/live.js";
import * as evolution from "./pages/evolution.js";
import * as models from "./pages/models.js";
import * as deployments from "./pages/deployments.js";

const pages = { jobs, live, evolution, models, deployments };
let cleanup = null;

function loginState() {
  const el = document.getElementById("login-state");
  const stored = localStorage.getItem("trainyard.token");
  const dev = window.TRAINYARD && window.TRAINYARD.devToken;
  el.textContent = stored ? "token set" : (dev ? "dev token" : "read only");
}

async function route() {
  const [name, ...params] = (location.hash.replace(/^#\/?/, "") || "jobs").split("/").map(decodeURIComponent);
  const page = pages[name] || jobs;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  if (cleanup) { try { cleanup(); } catch { /* page already gone */ } cleanup = null; }
  const main = clear(document.getElementById("main"));
  document.body.dataset.page = name;
  document.body.dataset.ready = "0";
  try {
    cleanup = (await page.render(main, params)) || null;
  } catch (e) {
    toast(`could not load ${name}: ${e.message}`, true);
  }
  document.body.dataset.ready = "1";
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = document.getElementById("token");
  setToken(input.value.trim());
  input.value = "";
  loginState();
  toast(token() ? "token saved in this browser" : "token cleared");
});
window.addEventListener("hashchange", route);
loginState();
route();
