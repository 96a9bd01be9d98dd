// Jobs: the queue with priorities, state and progress; control buttons; submit by dropping a dataset file
// (.jsonl, .json array, .csv, .parquet); the submit box then says which format was detected.
import { act, api, maybe } from "../api.js";
import { onEvent } from "../feed.js";
import { clear, fmt, h, progress, stateBadge, table, toast } from "../dom.js";
import { renderPreview } from "../preview.js";

const ACTIONS = {
  pause: ["running", "queued"], resume: ["paused", "stopped", "preempted", "failed"],
  stop: ["running", "queued", "paused", "preempted"], skip: ["running"],
  cancel: ["queued", "paused", "preempted", "stopped", "failed"],
};

export async function render(main) {
  const jobsBox = h("div");
  const queueBox = h("div");
  const previewTitle = h("h2", { text: "What the model trains on" });
  const previewBody = h("div");
  const previewBox = h("section", { "data-testid": "preview-panel", hidden: true },
    previewTitle, previewBody);
  async function showPreview(title, load) {
    previewBox.hidden = false;
    previewTitle.textContent = title;
    clear(previewBody).append(h("p", { class: "muted", text: "rendering with the job's tokenizer…" }));
    try {
      clear(previewBody).append(renderPreview(await load()));
    } catch (e) {
      clear(previewBody).append(h("p", { class: "error", text: e.message }));
    }
  }
  main.append(
    h("section", {}, h("h2", { text: "Jobs" }), jobsBox),
    h("div", { class: "row" },
      h("section", {}, h("h2", { text: "Queue order" }), queueBox),
      h("section", {}, h("h2", { text: "Submit a job" }), submitForm(() => refresh(), showPreview))),
    previewBox,
  );
  const previewJob = (id) => showPreview(`What job ${id} trains on`,
    () => api(`/api/jobs/${encodeURIComponent(id)}/preview?n=8`));

  async function refresh() {
    const [jobs, queue] = await Promise.all([
      maybe("/api/jobs?limit=200", null), maybe("/api/queue?limit=200", null),
    ]);
    clear(jobsBox).append(jobs
      ? jobsTable(jobs.data, refresh, previewJob)
      : h("p", { class: "muted", text: "The trainer is not available." }));
    clear(queueBox).append(queue
      ? queueTable(queue.data)
      : h("p", { class: "muted", text: "No queue information." }));
  }
  await refresh();
  let pending = null;
  const off = onEvent((ev) => {
    if (!ev.type || !(ev.type.startsWith("job.") || ev.type === "metrics.logged")) return;
    if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 300);
  });
  const timer = setInterval(refresh, 10000);
  return () => { off(); clearInterval(timer); };
}

function jobsTable(jobs, refresh, previewJob) {
  if (!jobs.length) return h("p", { class: "muted", text: "No jobs yet: drop a dataset below." });
  return table([
    {
      label: "job",
      value: (j) => h("a", { href: `#/live/${encodeURIComponent(j.id)}`, class: "mono", text: j.id }),
    },
    { label: "name", value: (j) => j.name || (j.dataset && j.dataset.name) || "" },
    { label: "state", value: (j) => h("span", { "data-testid": `state-${j.id}` }, stateBadge(j.state)) },
    { label: "priority", value: (j) => prioritySelect(j, refresh) },
    { label: "progress", value: (j) => progress(j.step, j.max_steps) },
    { label: "loss", value: (j) => fmt(j.loss) },
    { label: "", value: (j) => controls(j, refresh) },
    {
      label: "",
      value: (j) => h("a", { href: `#/evolution/${encodeURIComponent(j.id)}`, text: "evolution" }),
    },
    {
      label: "",
      value: (j) => h("button", { "data-preview": j.id, onclick: () => previewJob(j.id) }, "preview"),
    },
  ], jobs);
}

function controls(job, refresh) {
  return h("span", {}, Object.entries(ACTIONS).map(([action, states]) => h("button", {
    "data-action": action, "data-job": job.id, disabled: !states.includes(job.state),
    onclick: async () => {
      try {
        await act(`/api/jobs/${encodeURIComponent(job.id)}/${action}`, {},
          `${action} requested for ${job.id}`);
      } finally { refresh(); }
    },
  }, action)));
}

function prioritySelect(job, refresh) {
  const movable = ["queued", "paused", "preempted"].includes(job.state);
  const sel = h("select", { "aria-label": "priority", disabled: !movable },
    ["high", "default", "low"].map((p) => h("option", { value: p, selected: p === job.priority }, p)));
  sel.addEventListener("change", async () => {
    try {
      await act(`/api/jobs/${encodeURIComponent(job.id)}/priority`, { priority: sel.value },
        `priority ${sel.value}`);
    } finally { refresh(); }
  });
  return sel;
}

function queueTable(items) {
  if (!items.length) return h("p", { class: "muted", text: "The queue is empty." });
  return table([
    { label: "#", value: (_j) => String(items.indexOf(_j) + 1) },
    { label: "job", value: (j) => h("span", { class: "mono", text: j.id || j.job_id }) },
    { label: "priority", value: (j) => j.priority },
    { label: "state", value: (j) => stateBadge(j.state) },
  ], items);
}

function submitForm(done, showPreview) {
  const spec = h("textarea", {
    rows: 3, cols: 40, placeholder: '{"max_steps": 200, "lr": 0.003}', "aria-label": "spec",
  });
  const prio = h("select", { "aria-label": "priority" },
    ["default", "high", "low"].map((p) => h("option", { value: p }, p)));
  const method = h("select", { "aria-label": "method" },
    [["lora", "LoRA adapter"], ["full", "full fine-tune"]].map(([v, t]) => h("option", { value: v }, t)));
  const initFrom = h("input", {
    type: "text", size: 24, placeholder: "version id or alias", "aria-label": "init from",
  });
  function specJson() {  // the form's fields, unless the JSON overrides already name them
    let obj;
    // not JSON: send it as typed; the API names the error
    try { obj = JSON.parse(spec.value.trim() || "{}"); } catch { return spec.value; }
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return spec.value;
    if (!("method" in obj)) obj.method = method.value;
    if (initFrom.value.trim() && !("init_from" in obj)) obj.init_from = initFrom.value.trim();
    return JSON.stringify(obj);
  }
  const file = h("input", { type: "file", accept: ".jsonl,.json,.csv,.parquet,application/json,text/csv" });
  const drop = h("div", { class: "drop" },
    "Drop a dataset (.jsonl, .json array, .csv, .parquet) here, or ", file);
  const status = h("div", { class: "muted" });
  const first = h("input", { type: "checkbox", "aria-label": "preview first" });
  function formOf(f) {
    const form = new FormData();
    form.append("file", f);
    form.append("spec", specJson());
    return form;
  }
  function pick(f) {
    if (!first.checked) return submit(f);
    const go = h("button", {
      "data-testid": "submit-previewed",
      onclick: () => { go.remove(); submit(f); },
    }, `submit ${f.name}`);
    clear(status).append(`previewed ${f.name}, not submitted yet `, go);
    showPreview(`What ${f.name} would train on`,
      () => api("/api/jobs/preview", { method: "POST", form: formOf(f) }));
  }
  const detected = h("div", { class: "muted", "data-testid": "detected" });
  async function submit(f) {
    const form = new FormData();
    form.append("file", f);
    form.append("spec", specJson());
    form.append("priority", prio.value);
    form.append("source", "ui");
    status.textContent = `uploading ${f.name} (${f.size} bytes)…`;
    detected.textContent = "";
    try {
      const res = await api("/api/jobs/upload", { method: "POST", form });
      status.textContent = `queued job ${res.job_id}`;
      if (res.detected) detected.textContent = `detected: ${res.detected}`;
      toast(`queued job ${res.job_id}`);
      done();
    } catch (e) { status.textContent = e.message; }
  }
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault(); drop.classList.remove("over");
    if (ev.dataTransfer.files.length) pick(ev.dataTransfer.files[0]);
  });
  file.addEventListener("change", () => { if (file.files.length) pick(file.files[0]); });
  return h("div", {}, drop,
    h("div", { class: "toolbar" }, h("label", {}, "method "), method,
      h("label", {}, "continue from "), initFrom, h("label", {}, "spec overrides "), spec,
      h("label", {}, "priority "), prio, h("label", {}, first, " preview before submitting")),
    status, detected);
}
