"""Response schemas of the evolution routes: the shapes ``services.evaluator.queries`` returns.

Every model allows extra keys (the evaluator may add fields) and makes optional whatever a row can lack, so
a real answer never fails validation; the typed fields document what a client can rely on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from services.api.schemas import Open


class EvolutionJobPublic(Open):
    job_id: str
    n_snapshots: int | None = None
    last_step: int | None = None
    n_examples: int | None = None
    failed: int | None = Field(default=None, description="snapshots that failed")
    last_captured_at: str | None = None
    base_model: str | None = None


class EvolutionJobList(Open):
    data: list[EvolutionJobPublic]
    count: int


class SplitAggregates(Open):
    """Means over one split (``train``, ``heldout``) or ``all`` examples at one step."""

    n: int | None = None
    exact: float | None = None
    loss: float | None = None
    confidence: float | None = None
    f1: float | None = None
    edit_sim: float | None = None
    semantic: float | None = None
    pred_len: float | None = None
    flags: dict[str, int] | None = None


class LearnCounts(Open):
    learned: int | None = None
    forgotten: int | None = None
    never_learned: int | None = None


class CurvePointPublic(Open):
    """One step of the curve: aggregates per split and learned / forgotten / never-learned counts."""

    step: int
    version_id: str | None = None
    key: str | None = Field(default=None, description="the snapshot document's key in the bucket")
    captured_at: str | None = None
    aggregates: dict[str, SplitAggregates] = Field(default_factory=dict)
    counts: LearnCounts | None = None


class Metrics(Open):
    """Per-example metrics at one step (model output: escape ``prediction`` wherever it is shown)."""

    prediction: str | None = None
    loss: float | None = None
    confidence: float | None = None
    exact: bool | None = None
    f1: float | None = None
    edit_sim: float | None = None
    semantic: float | None = None
    pred_len: int | None = None
    flags: list[str] | None = None


class ExampleRowPublic(Metrics):
    """A tracked example: identity, its latest step's metrics and the statistics derived over all steps."""

    idx: int
    id: str | None = None
    split: str | None = None
    question: str | None = None
    target: str | None = None
    step: int | None = Field(default=None, description="the step of the latest metrics")
    learned_at: int | None = None
    forgetting_events: list[int] | None = None
    n_forgetting: int | None = None
    n_snapshots: int | None = None
    confidence_mean: float | None = None
    confidence_std: float | None = None
    correctness: float | None = None
    region: str | None = Field(default=None, description="easy-to-learn | ambiguous | hard-to-learn")
    state: str | None = Field(default=None, description="learned | forgotten | never_learned")


class ExamplePage(Open):
    data: list[ExampleRowPublic]
    count: int = Field(description="examples matching the filters (all pages)")
    offset: int = 0
    limit: int = 50


class DiffOp(Open):
    op: Literal["equal", "replace", "delete", "insert"]
    prediction: str
    target: str


class HistoryStepPublic(Metrics):
    step: int
    diff: list[DiffOp] = Field(default_factory=list, description="word-level diff of prediction against target")


class ExampleHistoryPublic(Open):
    example: ExampleRowPublic
    history: list[HistoryStepPublic]


class StepRowPublic(Metrics):
    idx: int
    id: str | None = None
    split: str | None = None
    target: str | None = None


class StepSnapshotPublic(CurvePointPublic):
    examples: list[StepRowPublic]


class ExportedExample(ExampleRowPublic):
    history: list[dict[str, Any]] = Field(default_factory=list)


class EvolutionExport(Open):
    """``?fmt=json``; ``?fmt=csv`` answers text/csv, one row per step and example."""

    job_id: str
    curve: list[CurvePointPublic]
    examples: list[ExportedExample]


class CompareRun(Open):
    """One run's side of a shared example: its state, learned-at step and final metrics."""

    job_id: str
    idx: int
    state: str | None = None
    learned_at: int | None = None
    forgetting_events: int = 0
    step: int | None = None
    prediction: str | None = Field(default=None, description="model output: render as text")


class CompareExample(Open):
    id: str | None = None
    question: str = ""
    target: str = ""
    matched_by: Literal["id", "text"]
    runs: list[CompareRun]
    deltas: list[dict[str, float | None]] = Field(description="each later run minus the first (A)")
    change: str = Field(description='e.g. "learned in B; never learned in A"')
    score: float = Field(description="the sort key: a different state first, then the largest metric change")


class CompareCurve(Open):
    job_id: str
    last_step: int
    points: list[dict[str, Any]] = Field(description="x (a step, or a fraction of training), step, metrics, counts")


class CompareJob(Open):
    job_id: str
    letter: str
    base_model: str | None = None
    n_examples: int
    last_step: int


class ComparePublic(BaseModel):
    jobs: list[CompareJob]
    axis: Literal["step", "fraction"]
    curves: list[CompareCurve]
    warnings: list[str]
    count: int
    changed: int = Field(description="shared examples whose state differs between the runs")
    examples: list[CompareExample]
