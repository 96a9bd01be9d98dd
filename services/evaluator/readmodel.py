"""The ``evolution`` projection (built from ``snapshot.*`` events and the snapshot documents in S3); its read
functions are in ``queries`` (others reach both through ``services.evaluator.api``).

Redis layout, under the projection's view namespace (``ty:view:<ns>:evolution:``):
  jobs                   hash job_id -> {job_id, n_snapshots, last_step, n_examples, failed, ...}
  steps:<job>            hash step -> {step, version_id, key, captured_at, aggregates, counts}
  ex:<job>               hash idx -> {idx, id, split, question, target, latest, state, summary}
  hist:<job>:<idx>       hash step -> the example's row at that step (prediction and metrics)
  at:<job>:<step>        string: every example's row at that step (one GET for a whole step)
  order:<job>:<field>    string {asc, desc, missing}: idx lists per sort field (idx, learned_at, loss, ...)
  groups:<job>           string {"state:learned": [idx...], "region:ambiguous": [...], "split:train": [...]}
  text:<job>             string {idx: case-folded id + question + target + latest prediction} (text search)
  cmp:<job>              string [per example by idx: id, texts, state, learned_at, latest metrics] (compare)
  points:<job>           string [per step: step, aggregate metrics of all examples, counts] (compare's curves)
  failed:<job>           hash step -> {version_id, reason}
  missing:<job>          hash step -> snapshot key whose document was gone at replay time

Snapshots usually arrive in step order: each example's derived statistics (``derived.ExampleState``) are
folded in one step at a time. A step that arrives late or twice makes the job's derived data be recomputed
from the stored histories, so the view is the same whatever the arrival order.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from typing import Any

from services.evaluator.compare import compact, curve_point
from services.evaluator.derived import ExampleState, LearnState, Point
from services.evaluator.queries import SORT_FIELDS, VIEW_NAME
from services.registry.api import RegistryClient
from shared import events as ev
from shared import streams
from shared.events import Event
from shared.projection import View

log = logging.getLogger(__name__)

NAME = VIEW_NAME
ROW_KEYS = ("prediction", "loss", "confidence", "exact", "f1", "edit_sim", "semantic", "pred_len", "flags")


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def history_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in ROW_KEYS}


class EvolutionProjection:
    name = NAME
    streams = (streams.EVOLUTION,)

    def __init__(self, registry: RegistryClient) -> None:
        self.registry = registry

    def apply(self, view: View, event: Event) -> None:
        change = {"snapshot.captured": self._captured, "snapshot.failed": self._failed}.get(event.type)
        if change is not None:
            change(view, event, event.typed())

    # -- snapshot.failed ----------------------------------------------------------------------------
    def _failed(self, view: View, event: Event, p: ev.SnapshotFailed) -> None:
        job_id = event.job_id
        if not job_id:
            return
        view.pipe.hset(view.key("failed", job_id), str(p.step),
                       dumps({"version_id": p.version_id, "reason": p.reason, "step": p.step}))
        job = _load(view.hget("jobs", job_id)) or _new_job(job_id)
        job["failed"] = int(view.r.hlen(view.key("failed", job_id))) + (
            0 if view.r.hexists(view.key("failed", job_id), str(p.step)) else 1)
        view.pipe.hset(view.key("jobs"), job_id, dumps(job))

    # -- snapshot.captured --------------------------------------------------------------------------
    def _captured(self, view: View, event: Event, p: ev.SnapshotCaptured) -> None:
        doc = self.registry.get_json(p.key)
        job_id = event.job_id or (doc or {}).get("job_id")
        if not job_id:
            return
        step = int(p.step)
        if doc is None:
            log.warning("snapshot document %s is missing; step %d of %s left out", p.key, step, job_id)
            view.pipe.hset(view.key("missing", job_id), str(step), p.key)
            return
        known = {int(s) for s in view.r.hkeys(view.key("steps", job_id))}
        step_entry = {"step": step, "version_id": doc.get("version_id"), "key": p.key,
                      "captured_at": doc.get("captured_at"), "aggregates": doc.get("aggregates", {})}
        if step in known or (known and step < max(known)):
            self._recompute(view, job_id, doc, step_entry, known)
        else:
            self._fold(view, job_id, doc, step_entry)
        job = _load(view.hget("jobs", job_id)) or _new_job(job_id)
        steps = known | {step}
        job.update(n_snapshots=len(steps), last_step=max(steps), n_examples=len(doc["examples"]),
                   base_model=doc.get("base_model"))
        if step == max(steps):
            job["last_captured_at"] = doc.get("captured_at")
        view.pipe.hset(view.key("jobs"), job_id, dumps(job))

    def _fold(self, view: View, job_id: str, doc: dict[str, Any], step_entry: dict[str, Any]) -> None:
        """The common case: a step after every known one; update each example's state by one point."""
        step = step_entry["step"]
        current = {int(k): json.loads(v) for k, v in view.r.hgetall(view.key("ex", job_id)).items()}
        counts: Counter[str] = Counter()
        for row in doc["examples"]:
            idx = int(row["idx"])
            entry = current.get(idx) or _new_example(row)
            state = ExampleState.from_dict(entry["state"])
            state.update(Point(step, bool(row["exact"]), row.get("confidence")))
            entry.update(target=row.get("target", entry.get("target")), state=state.to_dict(),
                         summary=state.summary(), latest={**history_row(row), "step": step})
            counts[state.state.value] += 1
            current[idx] = entry
            view.pipe.hset(view.key("hist", job_id, str(idx)), str(step), dumps(history_row(row)))
        step_entry["counts"] = _counts(counts)
        view.pipe.hset(view.key("steps", job_id), str(step), dumps(step_entry))
        steps = {int(k): json.loads(v) for k, v in view.r.hgetall(view.key("steps", job_id)).items()}
        write_points(view, job_id, {**steps, step: step_entry})
        write_indexes(view, job_id, current)
        write_step_rows(view, job_id, step, doc["examples"])

    def _recompute(self, view: View, job_id: str, doc: dict[str, Any], step_entry: dict[str, Any],
                   known: set[int]) -> None:
        """A late or repeated step: rebuild every example's state and every step's counts from histories."""
        step = step_entry["step"]
        current = {int(k): json.loads(v) for k, v in view.r.hgetall(view.key("ex", job_id)).items()}
        new_rows = {int(row["idx"]): row for row in doc["examples"]}
        idxs = sorted(set(current) | set(new_rows))
        pipe = view.r.pipeline(transaction=False)
        for idx in idxs:
            pipe.hgetall(view.key("hist", job_id, str(idx)))
        histories = {idx: {int(s): json.loads(v) for s, v in h.items()} for idx, h in zip(idxs, pipe.execute(),
                                                                                           strict=True)}
        per_step: dict[int, Counter[str]] = {s: Counter() for s in known | {step}}
        for idx in idxs:
            hist = histories[idx]
            if idx in new_rows:
                hist[step] = history_row(new_rows[idx])
                view.pipe.hset(view.key("hist", job_id, str(idx)), str(step), dumps(hist[step]))
            entry = current.get(idx) or _new_example(new_rows[idx])
            if idx in new_rows:
                entry["target"] = new_rows[idx].get("target", entry.get("target"))
            state = ExampleState()
            for s in sorted(hist):
                state.update(Point(s, bool(hist[s]["exact"]), hist[s].get("confidence")))
                per_step.setdefault(s, Counter())[state.state.value] += 1
            last = max(hist)
            entry.update(state=state.to_dict(), summary=state.summary(), latest={**hist[last], "step": last})
            current[idx] = entry
        old_steps, steps = view.r.hgetall(view.key("steps", job_id)), {}
        for s, counts in per_step.items():
            entry = step_entry if s == step else _load(old_steps.get(str(s).encode()))
            if entry is None:
                continue
            entry["counts"] = _counts(counts)
            steps[s] = entry
            view.pipe.hset(view.key("steps", job_id), str(s), dumps(entry))
        write_points(view, job_id, steps)
        write_indexes(view, job_id, current)
        write_step_rows(view, job_id, step, doc["examples"])


def write_indexes(view: View, job_id: str, entries: dict[int, dict[str, Any]]) -> None:
    """Rows by idx, and the precomputed orders, filter groups and search texts (one string each, so a query
    reads a few bulk values instead of thousands of small replies)."""
    pipe = view.pipe
    pipe.hset(view.key("ex", job_id), mapping={str(i): dumps(e) for i, e in entries.items()})
    for field in SORT_FIELDS:
        scores = [(_score(e, field), i) for i, e in entries.items()]
        present = [(sc, i) for sc, i in scores if sc != math.inf]
        order = {"asc": [i for _, i in sorted(present)],
                 "desc": [i for _, i in sorted(present, key=lambda it: (-it[0], it[1]))],
                 "missing": sorted(i for sc, i in scores if sc == math.inf)}
        pipe.set(view.key("order", job_id, field), dumps(order))
    groups: dict[str, list[int]] = {}
    for i in sorted(entries):
        e = entries[i]
        summary = e.get("summary") or {}
        for kind, value in (("state", summary.get("state")), ("region", summary.get("region")),
                            ("split", e.get("split"))):
            groups.setdefault(f"{kind}:{value}", []).append(i)
    pipe.set(view.key("groups", job_id), dumps(groups))
    pipe.set(view.key("text", job_id), dumps({str(i): search_text(e) for i, e in entries.items()}))
    pipe.set(view.key("cmp", job_id), dumps([compact(entries[i]) for i in sorted(entries)]))


def write_points(view: View, job_id: str, steps: dict[int, dict[str, Any]]) -> None:
    """Every step's point of the job's curve as one document (what compare draws)."""
    view.pipe.set(view.key("points", job_id), dumps([curve_point(steps[s]) for s in sorted(steps)]))


def write_step_rows(view: View, job_id: str, step: int, rows: list[dict[str, Any]]) -> None:
    """The step's rows as one document, so that reading a whole step is one GET and one parse."""
    out = [{"idx": int(r["idx"]), "id": r.get("id"), "split": r.get("split", "train"), "target": r.get("target", ""),
            **history_row(r)} for r in sorted(rows, key=lambda r: int(r["idx"]))]
    view.pipe.set(view.key("at", job_id, str(step)), dumps(out))


def search_text(entry: dict[str, Any]) -> str:
    latest = entry.get("latest") or {}
    parts = (entry.get("id"), entry.get("question"), entry.get("target"), latest.get("prediction"))
    return "\n".join(str(p) for p in parts if p).casefold()


def _score(entry: dict[str, Any], field: str) -> float:
    if field == "idx":
        return float(entry["idx"])
    summary, latest = entry.get("summary") or {}, entry.get("latest") or {}
    if field == "forgetting":
        return float(len(summary.get("forgetting_events") or []))
    value = summary.get(field) if field == "learned_at" else latest.get(field)
    return float(value) if value is not None else math.inf


def _counts(counts: Counter[str]) -> dict[str, int]:
    return {s.value: counts.get(s.value, 0) for s in LearnState}


def _new_job(job_id: str) -> dict[str, Any]:
    return {"job_id": job_id, "n_snapshots": 0, "last_step": None, "n_examples": 0, "failed": 0,
            "last_captured_at": None, "base_model": None}


def _new_example(row: dict[str, Any]) -> dict[str, Any]:
    return {"idx": int(row["idx"]), "id": row.get("id"), "split": row.get("split", "train"),
            "question": row.get("question", ""), "target": row.get("target", ""),
            "state": ExampleState().to_dict(), "summary": ExampleState().summary(), "latest": None}


def _load(raw: bytes | str | None) -> dict[str, Any] | None:
    return json.loads(raw) if raw else None


__all__ = ["EvolutionProjection"]
