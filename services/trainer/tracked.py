"""The tracked examples document (``tracked/<job_id>.json``), fixed at job start (see docs/contracts.md)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from services.trainer.datasets import Example
from shared.storage import sha256_bytes


def select(examples: Sequence[Example], count: int, seed: int) -> list[Example]:
    """A seeded sample of ``count`` examples, in dataset order."""
    if count >= len(examples):
        return list(examples)
    picked = sorted(random.Random(seed).sample(range(len(examples)), count))
    return [examples[i] for i in picked]


def document(job_id: str, dataset_sha256: str, seed: int, train: Sequence[Example],
             heldout: Sequence[Example] = (), dataset_name: str | None = None) -> dict[str, Any]:
    """``dataset_name`` is the stem of the file the user submitted (it names the old-layout export folder)."""
    rows = [{"idx": i, "id": ex.id, "split": split, "messages": ex.messages}
            for i, (split, ex) in enumerate([("train", e) for e in train] + [("heldout", e) for e in heldout])]
    canonical = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return {"job_id": job_id, "dataset_sha256": dataset_sha256, "dataset_name": dataset_name,
            "sha256": sha256_bytes(canonical), "seed": seed, "examples": rows}
