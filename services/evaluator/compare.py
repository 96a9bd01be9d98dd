"""Compare runs example by example: the tracked examples two or more jobs share, and their curves.

Examples are matched to the first job's (the reference, "A") by the dataset's own ``id`` when it has one,
else by the same prompt and target text (case and surrounding spaces ignored): ``line-N`` ids are positions,
not identities, so they never match by id. Per shared example: the state in each run (learned at a step,
forgotten, never learned), the final metrics, and the difference from the reference. The table is sorted by
the largest change: a different state first (learned vs never learned weighs most), then the largest metric
difference.

Curves share one step axis when every run's last snapshot is at the same step, else a "fraction of
training" axis (step / the run's last snapshot step).

    compare(r, ["job-a", "job-b"])   # InvalidQueryError (422) when they share no example
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import redis

from services.evaluator.exceptions import InvalidQueryError, UnknownJobError
from services.evaluator.queries import csv_cell
from shared.projection import LIVE, View

VIEW_NAME = "evolution"
METRICS = ("exact", "loss", "confidence", "f1", "edit_sim", "semantic")
DELTAS = ("loss", "confidence", "f1", "exact")
STATE_RANK = {"learned": 2, "forgotten": 1, "never_learned": 0}
MAX_JOBS = 8
RUN_KEYS = ("state", "learned_at", "forgetting_events", "step", "prediction", *METRICS)  # a table row's fields
# a compact row (one list per example, so that a job's rows parse fast): these, then the values of RUN_KEYS
IDX, ID, SPLIT, QUESTION, TARGET, OWN_ID, RUN_AT = range(7)
STATE_AT = RUN_AT
DELTA_AT = tuple(RUN_AT + RUN_KEYS.index(k) for k in DELTAS)


def _text_key(question: object, target: object) -> str:
    return "\x00".join(" ".join(str(x or "").split()).casefold() for x in (question, target))


def _own_id(entry: dict[str, Any]) -> str | None:
    ex_id = entry.get("id")
    return None if ex_id is None or str(ex_id).startswith("line-") else str(ex_id)


def compact(entry: dict[str, Any]) -> list[Any]:
    """What compare reads of one example (the projection keeps these per job, by idx, under ``cmp:<job>``):
    idx, id, split, question, target, the id it matches by (None for ``line-N``), then its row of the table."""
    summary, latest = entry.get("summary") or {}, entry.get("latest") or {}
    return [entry["idx"], entry.get("id"), entry.get("split"), entry.get("question", ""), entry.get("target", ""),
            _own_id(entry), summary.get("state"), summary.get("learned_at"),
            len(summary.get("forgetting_events") or []), *(latest.get(k) for k in ("step", "prediction", *METRICS))]


def curve_point(step_entry: dict[str, Any]) -> dict[str, Any]:
    """One step of a run's curve in compare (the projection keeps a job's, by step, under ``points:<job>``)."""
    agg = (step_entry.get("aggregates") or {}).get("all") or {}
    return {"step": step_entry["step"], **{k: agg.get(k) for k in METRICS}, **(step_entry.get("counts") or {})}


def _load(r: redis.Redis, job_ids: list[str], ns: str) -> list[dict[str, Any]]:
    """Per job: the compact rows (one GET), its step curve and its meta."""
    view = View(r, VIEW_NAME, ns)
    pipe = r.pipeline(transaction=False)
    for job in job_ids:
        pipe.get(view.key("cmp", job))
        pipe.get(view.key("points", job))
        pipe.hget(view.key("jobs"), job)
    got = pipe.execute()
    runs = []
    for i, job in enumerate(job_ids):
        cmp, points, meta = got[3 * i:3 * i + 3]
        # a view built before ``cmp`` and ``points`` existed: derive the same rows from the full entries
        examples = json.loads(cmp) if cmp else sorted((compact(json.loads(v)) for v in r.hvals(view.key("ex", job))),
                                                      key=lambda e: e[IDX])
        if not examples:
            raise UnknownJobError(f"no snapshots for job {job}")
        if points is None:
            points = sorted((curve_point(json.loads(v)) for v in r.hvals(view.key("steps", job))),
                            key=lambda p: p["step"])
        runs.append({"job_id": job, "examples": examples,
                     "points": json.loads(points) if isinstance(points, bytes | str) else points,
                     "meta": json.loads(meta) if meta else {}})
    return runs


def _match(runs: list[dict[str, Any]]) -> list[tuple[str, list[list[Any]]]]:
    """(matched_by, one compact row per run) for each reference example present in every run."""
    lookups = [({e[OWN_ID]: e for e in run["examples"] if e[OWN_ID] is not None}, run["examples"]) for run in runs[1:]]
    by_texts: dict[int, dict[str, list[Any]]] = {}  # built only when an id does not match
    shared = []
    for ref in runs[0]["examples"]:
        own, found, how = ref[OWN_ID], [ref], "id"
        for n, (by_id, examples) in enumerate(lookups):
            hit = by_id.get(own) if own is not None else None
            if hit is None:
                if n not in by_texts:
                    by_texts[n] = {_text_key(e[QUESTION], e[TARGET]): e for e in examples}
                hit, how = by_texts[n].get(_text_key(ref[QUESTION], ref[TARGET])), "text"
            if hit is None:
                break
            found.append(hit)
        else:
            shared.append((how, found))
    return shared


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and x == x else None


def change_label(states: list[str | None], letters: list[str]) -> str:
    if states.count(states[0]) == len(states):
        return f"{(states[0] or 'unknown').replace('_', ' ')} in all"
    ref = states[0]
    parts = [f"{(s or 'unknown').replace('_', ' ')} in {letter}" for s, letter in zip(states, letters, strict=True)
             if s != ref]
    return ", ".join(parts) + f"; {(ref or 'unknown').replace('_', ' ')} in A"


def _example(how: str, entries: list[list[Any]], job_ids: list[str], letters: list[str]) -> dict[str, Any]:
    rows = [dict(zip(RUN_KEYS, e[RUN_AT:], strict=True), job_id=j, idx=e[IDX])
            for j, e in zip(job_ids, entries, strict=True)]
    e0 = entries[0]
    ref = [_num(e0[i]) for i in DELTA_AT]
    deltas, metric_gap = [], 0.0
    for e in entries[1:]:
        d = {}
        for k, i, a in zip(DELTAS, DELTA_AT, ref, strict=True):
            b = _num(e[i])
            d[k] = v = None if a is None or b is None else round(b - a, 6)
            if v is not None and k != "exact" and abs(v) > metric_gap:
                metric_gap = abs(v)
        deltas.append(d)
    states = [e[STATE_AT] for e in entries]
    ref_rank = STATE_RANK.get(states[0] or "", 0)
    state_gap = max(abs(STATE_RANK.get(s or "", 0) - ref_rank) for s in states)
    return {"id": e0[ID], "question": e0[QUESTION], "target": e0[TARGET], "split": e0[SPLIT],
            "matched_by": how, "runs": rows, "deltas": deltas,
            "change": change_label(states, letters), "score": round(state_gap * 1000 + metric_gap, 6)}


def _curves(runs: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    lasts = [run["points"][-1]["step"] if run["points"] else 0 for run in runs]
    axis = "step" if len(set(lasts)) == 1 else "fraction"
    out = []
    for run, last in zip(runs, lasts, strict=True):
        points = [{"x": p["step"] if axis == "step" else round(p["step"] / last, 6) if last else 0.0, **p}
                  for p in run["points"]]
        out.append({"job_id": run["job_id"], "last_step": last, "points": points})
    return axis, out


def compare(r: redis.Redis, job_ids: list[str], ns: str = LIVE) -> dict[str, Any]:
    """The shared tracked examples of ``job_ids`` (the first is the reference) and their curves."""
    if len(job_ids) < 2 or len(set(job_ids)) != len(job_ids):
        raise InvalidQueryError("compare needs two or more different jobs")
    if len(job_ids) > MAX_JOBS:
        raise InvalidQueryError(f"compare takes at most {MAX_JOBS} jobs")
    runs = _load(r, job_ids, ns)
    shared = _match(runs)
    if not shared:
        raise InvalidQueryError(f"jobs {', '.join(job_ids)} share no tracked example (by id or by the same "
                                "prompt and target)")
    letters = [chr(ord("A") + i) for i in range(len(job_ids))]
    rows = sorted((_example(how, e, job_ids, letters) for how, e in shared), key=lambda x: -x["score"])
    bases = {run["meta"].get("base_model") for run in runs}
    warnings = [f"the jobs are of different base models ({', '.join(sorted(str(b) for b in bases))})"] \
        if len(bases) > 1 else []
    axis, curves = _curves(runs)
    jobs = [{"job_id": run["job_id"], "letter": letter, "base_model": run["meta"].get("base_model"),
             "n_examples": len(run["examples"]), "last_step": curve["last_step"]}
            for run, letter, curve in zip(runs, letters, curves, strict=True)]
    changed = sum(1 for x in rows if len({run["state"] for run in x["runs"]}) > 1)
    return {"jobs": jobs, "axis": axis, "curves": curves, "warnings": warnings, "count": len(rows),
            "changed": changed, "examples": rows}


def compare_csv(result: dict[str, Any]) -> str:
    """One row per shared example: id, change, then per run (A, B, ...) state, learned_at and final metrics."""
    letters = [j["letter"] for j in result["jobs"]]
    per_run = ("state", "learned_at", "loss", "f1", "exact", "prediction")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "matched_by", "change", "target", *(f"{k}_{x}" for x in letters for k in per_run)])
    for ex in result["examples"]:
        cells = [csv_cell(run.get(k)) for run in ex["runs"] for k in per_run]
        writer.writerow([csv_cell(ex["id"]), ex["matched_by"], ex["change"], csv_cell(ex["target"]), *cells])
    return buf.getvalue()
