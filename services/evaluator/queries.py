"""Read functions of the ``evolution`` view (what the API serves). Each reads a handful of Redis keys.

Text fields (predictions, targets, questions) are model output or user data: returned raw in JSON for the
caller to escape; the history's diff is a list of ops ``{"op", "prediction", "target"}`` so a UI can render
each piece as escaped text; CSV cells that a spreadsheet would run as a formula are prefixed with ``'``.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
from typing import Any

import redis

from services.evaluator.derived import LearnState, Region
from services.evaluator.exceptions import InvalidQueryError, UnknownJobError
from shared.projection import LIVE, View

VIEW_NAME = "evolution"
SORT_FIELDS = ("idx", "learned_at", "loss", "confidence", "f1", "forgetting")
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
CSV_COLUMNS = ("step", "idx", "id", "split", "exact", "loss", "confidence", "f1", "edit_sim", "semantic",
               "pred_len", "flags", "prediction", "target")


def _view(r: redis.Redis, ns: str) -> View:
    return View(r, VIEW_NAME, ns)


def _examples_raw(view: View, job_id: str) -> dict[int, dict[str, Any]]:
    raw = view.r.hgetall(view.key("ex", job_id))
    if not raw:
        raise UnknownJobError(f"no snapshots for job {job_id}")
    return {int(k): json.loads(v) for k, v in raw.items()}


def list_jobs(r: redis.Redis, ns: str = LIVE) -> list[dict[str, Any]]:
    """Jobs with snapshots (or failed snapshots), most recently captured first."""
    view = _view(r, ns)
    jobs = [json.loads(v) for v in r.hvals(view.key("jobs"))]
    return sorted(jobs, key=lambda j: (j.get("last_captured_at") or "", j["job_id"]), reverse=True)


def curve(r: redis.Redis, job_id: str, ns: str = LIVE) -> list[dict[str, Any]]:
    """Per-step aggregates (per split) and learned / forgotten / never-learned counts, by step."""
    view = _view(r, ns)
    raw = r.hvals(view.key("steps", job_id))
    if not raw:
        raise UnknownJobError(f"no snapshots for job {job_id}")
    return sorted((json.loads(v) for v in raw), key=lambda s: s["step"])


def failures(r: redis.Redis, job_id: str, ns: str = LIVE) -> list[dict[str, Any]]:
    view = _view(r, ns)
    return sorted((json.loads(v) for v in r.hvals(view.key("failed", job_id))), key=lambda f: f.get("step") or 0)


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    latest = entry.get("latest") or {}
    summary = entry.get("summary") or {}
    return {
        "idx": entry["idx"], "id": entry.get("id"), "split": entry.get("split"),
        "question": entry.get("question", ""), "target": entry.get("target", ""),
        "step": latest.get("step"), **{k: latest.get(k) for k in
                                       ("prediction", "loss", "confidence", "exact", "f1", "edit_sim",
                                        "semantic", "pred_len", "flags")},
        **summary, "n_forgetting": len(summary.get("forgetting_events") or []),
    }


def examples(
    r: redis.Redis, job_id: str, *, state: str | None = None, region: str | None = None, q: str | None = None,
    split: str | None = None, sort: str = "idx", offset: int = 0, limit: int = 50, ns: str = LIVE,
) -> dict[str, Any]:
    """Tracked examples with their latest prediction and derived stats, filtered, sorted and paged.

    ``state``: learned | forgotten | never_learned; ``region``: easy-to-learn | ambiguous | hard-to-learn;
    ``split``: train | heldout; ``q``: case-insensitive text search in id, question, target and latest
    prediction; ``sort``: one of ``SORT_FIELDS`` (``-`` in front for descending; examples without a value
    come last either way, ties by idx).
    """
    desc = sort.startswith("-")
    field = sort.lstrip("-")
    if field not in SORT_FIELDS:
        raise InvalidQueryError(f"sort must be one of {', '.join(SORT_FIELDS)} (optionally prefixed with -), not {sort!r}")
    if state is not None and state not in {s.value for s in LearnState}:
        raise InvalidQueryError(f"state must be one of {', '.join(s.value for s in LearnState)}, not {state!r}")
    if region is not None and region not in {g.value for g in Region}:
        raise InvalidQueryError(f"region must be one of {', '.join(g.value for g in Region)}, not {region!r}")
    if offset < 0 or not 0 < limit <= 1000:
        raise InvalidQueryError("offset must be >= 0 and limit between 1 and 1000")
    view = _view(r, ns)
    filters = [f"{k}:{v}" for k, v in (("state", state), ("region", region), ("split", split)) if v is not None]
    keys = [view.key("order", job_id, field), view.key("groups", job_id)] + ([view.key("text", job_id)] if q else [])
    got = r.mget(keys)
    if got[0] is None:
        raise UnknownJobError(f"no snapshots for job {job_id}")
    order = json.loads(got[0])
    ordered: list[int] = order["desc" if desc else "asc"] + order["missing"]
    if filters:
        groups = json.loads(got[1])
        for name in filters:
            allowed = set(groups.get(name, []))
            ordered = [i for i in ordered if i in allowed]
    if q:
        needle, texts = q.casefold(), json.loads(got[2])
        ordered = [i for i in ordered if needle in texts.get(str(i), "")]
    page = ordered[offset:offset + limit]
    raw = r.hmget(view.key("ex", job_id), [str(i) for i in page]) if page else []
    rows = [_row(json.loads(x)) for x in raw if x is not None]
    return {"data": rows, "count": len(ordered), "offset": offset, "limit": limit}


def diff_ops(prediction: str, target: str) -> list[dict[str, str]]:
    """Word-level diff of prediction against target as ops: equal | replace | delete | insert."""
    a, b = _TOKEN.findall(prediction or ""), _TOKEN.findall(target or "")
    ops = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        ops.append({"op": tag, "prediction": "".join(a[i1:i2]), "target": "".join(b[j1:j2])})
    return ops


def example_history(r: redis.Redis, job_id: str, idx: int, ns: str = LIVE) -> dict[str, Any]:
    """One example: its latest row and derived stats, and its prediction, metrics and diff at every step."""
    view = _view(r, ns)
    raw = r.hget(view.key("ex", job_id), str(idx))
    if raw is None:
        if not r.exists(view.key("ex", job_id)):
            raise UnknownJobError(f"no snapshots for job {job_id}")
        raise InvalidQueryError(f"job {job_id} has no tracked example {idx}")
    entry = json.loads(raw)
    target = entry.get("target", "")
    hist = {int(s): json.loads(v) for s, v in r.hgetall(view.key("hist", job_id, str(idx))).items()}
    steps = [{"step": s, **hist[s], "diff": diff_ops(hist[s].get("prediction") or "", target)} for s in sorted(hist)]
    return {"example": _row(entry), "history": steps}


def step_snapshot(r: redis.Redis, job_id: str, step: int, ns: str = LIVE) -> dict[str, Any]:
    """One step: its aggregates and counts, and every tracked example's row at that step."""
    view = _view(r, ns)
    meta, rows = r.hget(view.key("steps", job_id), str(step)), r.get(view.key("at", job_id, str(step)))
    if meta is None or rows is None:
        if not r.exists(view.key("steps", job_id)):
            raise UnknownJobError(f"no snapshots for job {job_id}")
        raise InvalidQueryError(f"job {job_id} has no snapshot at step {step}")
    return {**json.loads(meta), "examples": json.loads(rows)}


def export(r: redis.Redis, job_id: str, fmt: str = "json", ns: str = LIVE) -> str:
    """The whole evolution of a job: JSON (curve + examples with full history) or CSV (one row per step × example)."""
    if fmt not in ("json", "csv"):
        raise InvalidQueryError(f"format must be json or csv, not {fmt!r}")
    view = _view(r, ns)
    meta = _examples_raw(view, job_id)
    idxs = sorted(meta)
    pipe = r.pipeline(transaction=False)
    for idx in idxs:
        pipe.hgetall(view.key("hist", job_id, str(idx)))
    histories = {idx: {int(s): json.loads(v) for s, v in h.items()} for idx, h in zip(idxs, pipe.execute(), strict=True)}
    if fmt == "json":
        return json.dumps({
            "job_id": job_id, "curve": curve(r, job_id, ns),
            "examples": [{**_row(meta[i]), "history": [{"step": s, **histories[i][s]} for s in sorted(histories[i])]}
                         for i in idxs],
        }, ensure_ascii=False)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for idx in idxs:
        e = meta[idx]
        for s in sorted(histories[idx]):
            h = histories[idx][s]
            writer.writerow([s, idx, csv_cell(e.get("id")), e.get("split"), h.get("exact"), h.get("loss"),
                             h.get("confidence"), h.get("f1"), h.get("edit_sim"), h.get("semantic"),
                             h.get("pred_len"), "|".join(h.get("flags") or []), csv_cell(h.get("prediction")),
                             csv_cell(e.get("target"))])
    return buf.getvalue()


def csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
