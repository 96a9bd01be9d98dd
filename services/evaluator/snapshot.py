"""The snapshot document: tracked examples in, one row per example and per-split aggregates out (no I/O)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.evaluator import metrics
from services.evaluator.engine import Generated, Scored
from services.evaluator.exceptions import SnapshotInputError

SPLITS = ("train", "heldout")
METRIC_KEYS = ("loss", "confidence", "f1", "edit_sim", "semantic", "pred_len")


@dataclass(frozen=True)
class TrackedExample:
    idx: int
    id: str
    split: str
    messages: list[dict[str, str]]

    @property
    def question(self) -> str:
        """The last user turn (what the UI shows and the text search looks at)."""
        users = [m.get("content", "") for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else ""


def parse_tracked(doc: Any, job_id: str) -> list[TrackedExample]:
    """Validate a ``tracked/<job_id>.json`` document; raise SnapshotInputError naming the first problem."""
    if not isinstance(doc, dict) or not isinstance(doc.get("examples"), list):
        raise SnapshotInputError(f"tracked examples of job {job_id} have no 'examples' list")
    out = []
    for n, ex in enumerate(doc["examples"]):
        if not isinstance(ex, dict):
            raise SnapshotInputError(f"tracked example #{n} of job {job_id} is not an object")
        msgs = ex.get("messages")
        if (not isinstance(msgs, list) or not msgs
                or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs)
                or msgs[-1].get("role") != "assistant"):
            raise SnapshotInputError(
                f"tracked example #{n} of job {job_id} needs messages ending with the assistant's answer")
        split = ex.get("split", "train")
        out.append(TrackedExample(idx=int(ex.get("idx", n)), id=str(ex.get("id", n)),
                                  split=split if split in SPLITS else "train", messages=msgs))
    if len({e.idx for e in out}) != len(out):
        raise SnapshotInputError(f"tracked examples of job {job_id} repeat an idx")
    return out


def example_row(
    ex: TrackedExample, target: str, scored: Scored, gen: Generated, semantic: float | None, question: str | None = None
) -> dict[str, Any]:
    """One snapshot row; ``question`` defaults to the last user turn (a plain text's is its prompt part)."""
    loss = scored.loss if math.isfinite(scored.loss) else None
    return {
        "idx": ex.idx,
        "id": ex.id,
        "split": ex.split,
        "question": ex.question if question is None else question,
        "prediction": gen.text,
        "target": target,
        "loss": _r(loss),
        "confidence": _r(scored.confidence if math.isfinite(scored.confidence) else None),
        "exact": metrics.exact_match(gen.text, target),
        "f1": _r(metrics.token_f1(gen.text, target)),
        "edit_sim": _r(metrics.edit_similarity(gen.text, target)),
        "semantic": _r(semantic),
        "pred_len": gen.n_tokens,
        "flags": metrics.flags(gen.text, hit_limit=gen.hit_limit,
                               input_truncated=scored.input_truncated or gen.input_truncated,
                               loss=scored.loss),
    }


def aggregates(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean of each metric per split and over all rows (None where no row has a value)."""
    groups = {"all": list(rows), **{s: [r for r in rows if r["split"] == s] for s in SPLITS}}
    out: dict[str, dict[str, Any]] = {}
    for name, group in groups.items():
        agg: dict[str, Any] = {"n": len(group), "exact": _mean([float(r["exact"]) for r in group])}
        for key in METRIC_KEYS:
            agg[key] = _mean([r[key] for r in group if r.get(key) is not None])
        flag_counts: dict[str, int] = {}
        for r in group:
            for f in r["flags"]:
                flag_counts[f] = flag_counts.get(f, 0) + 1
        agg["flags"] = flag_counts
        out[name] = agg
    return out


def build_doc(
    *, job_id: str, version_id: str | None, step: int, max_new_tokens: int, rows: list[dict[str, Any]],
    answer_room: int | None = None,
    base_model: str, tracked_sha256: str | None, semantic_note: str | None, reruns: int = 0,
    timing: dict[str, float] | None = None,
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "version_id": version_id,
        "step": step,
        "captured_at": datetime.now(UTC).isoformat(),
        "max_new_tokens": max_new_tokens,
        "answer_room": answer_room,  # generation stops this many tokens past each target's length
        "base_model": base_model,
        "tracked_sha256": tracked_sha256,
        "semantic": semantic_note or "all-MiniLM-L6-v2 cosine",
        "tie_reruns": reruns,
        "timing": timing or {},  # seconds: model/adapter load, loss + generation, MiniLM
        "examples": rows,
        "aggregates": aggregates(rows),
    }


def dataset_label(tracked: dict[str, Any], spec: dict[str, Any] | None, job_id: str) -> str:
    """The directory name of the old export layout ``data/evolution_snapshots/<dataset>/``: the dataset's name
    (the stem of the submitted file, recorded in the tracked document by the trainer); for documents written
    before it was recorded, the job's name; the dataset hash only when neither is known."""
    spec = spec or {}
    raw = (tracked.get("dataset_name") or tracked.get("dataset") or spec.get("dataset_name") or spec.get("name")
           or tracked.get("dataset_sha256", "")[:12] or job_id)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(raw).rsplit("/", 1)[-1]).strip("._") or job_id
    return name.removesuffix(".jsonl")


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return round(sum(finite) / len(finite), 6) if finite else None


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)
