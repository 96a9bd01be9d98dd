// The live feed: one EventSource shared by every page; listeners filter by event type and job.
const listeners = new Set();
let source = null;
let lastId = null;

function connect() {
  const url = lastId ? `/api/events/stream?since=${encodeURIComponent(lastId)}` : "/api/events/stream";
  source = new EventSource(url);
  source.onmessage = () => {};
  const handle = (ev) => {
    lastId = ev.lastEventId || lastId;
    let data; try { data = JSON.parse(ev.data); } catch { return; }
    for (const fn of listeners) fn(data);
  };
  for (const t of ["metrics.logged", "job.queued", "job.started", "job.paused", "job.resumed", "job.stopped",
    "job.skipped", "job.completed", "job.failed", "job.cancelled", "job.reprioritised", "job.preempted",
    "job.control_requested", "checkpoint.saved", "version.stored", "version.upload_progress", "alias.moved",
    "version.protected", "version.trashed", "version.restored", "version.replicated", "snapshot.captured",
    "snapshot.failed", "deployment.requested", "deployment.pushed", "deployment.verified",
    "deployment.failed", "deployment.rolled_back", "dataset.rejected", "dataset.stored"]) {
    source.addEventListener(t, handle);
  }
  source.onerror = () => {
    // EventSource reconnects by itself and sends Last-Event-ID; a closed source is reopened here.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
}

export function onEvent(fn) {
  if (!source) connect();
  listeners.add(fn);
  return () => listeners.delete(fn);
}
