"""The evaluator's public face: the evolution read model and its queries, and the evaluator's exceptions.

Snapshots are made by the evaluator's own consumer (``handlers.py``); others only read them here
(docs/contracts.md). Everything else in ``services.evaluator`` is private to it (import-linter, ``make lint``).
"""

from __future__ import annotations

from services.evaluator.compare import compare, compare_csv
from services.evaluator.exceptions import (
    EvaluatorError,
    InvalidQueryError,
    SnapshotInputError,
    UnknownJobError,
)
from services.evaluator.queries import (
    curve,
    example_history,
    examples,
    export,
    failures,
    list_jobs,
    step_snapshot,
)
from services.evaluator.readmodel import EvolutionProjection

__all__ = [
    "EvaluatorError", "EvolutionProjection", "InvalidQueryError", "SnapshotInputError", "UnknownJobError",
    "compare", "compare_csv", "curve", "example_history", "examples", "export", "failures", "list_jobs", "step_snapshot",
]
