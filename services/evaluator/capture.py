"""Taking one snapshot: tracked examples + model version -> snapshot document in S3 -> ``snapshot.captured``.

Idempotent by (job, step): the ``snapshot.captured`` event is published in the same MULTI/EXEC that records
the (job, step) as done, so a redelivered ``version.stored`` after a crash publishes nothing twice. A document
already in S3 for that step and version (a crash between the upload and the publish) is published as is,
without recomputing it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from services.evaluator import budget
from services.evaluator import snapshot as snap
from services.evaluator.engine import Engine, Item
from services.evaluator.exceptions import SnapshotInputError
from services.evaluator.greedy import context_length
from services.evaluator.metrics import SemanticScorer
from services.evaluator.models import ADAPTER_FILES, ModelCache, check_adapter_files
from services.registry.client import IntegrityError, NotFoundError, RegistryClient
from shared import storage, streams
from shared.events import Event, SnapshotCaptured, SnapshotFailed
from shared.modeling import is_plain_text, render
from shared.settings import EvaluatorSettings

log = logging.getLogger(__name__)

CAPTURED_KEY = streams.key("evaluator", "captured")  # hash "<job>:<step>" -> snapshot.captured event id
FAILED_KEY = streams.key("evaluator", "failed")  # hash "<job>:<step>:<version>" -> snapshot.failed event id


@dataclass(frozen=True)
class Request:
    job_id: str
    step: int
    version_id: str | None  # None for the step-0 baseline of the base model
    base_model: str | None  # from the version's lineage / the job spec; None = look in the tracked doc
    spec: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None  # the version's manifest, when the caller has read it already


@dataclass
class Capturer:
    settings: EvaluatorSettings
    r: redis.Redis
    registry: RegistryClient
    models: ModelCache
    semantic: SemanticScorer
    # tracked examples are fixed at job start: read (and rendered) once per job, not once per snapshot
    _tracked: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict, repr=False)
    _rendered: OrderedDict[tuple[str, str], list[Any]] = field(default_factory=OrderedDict, repr=False)

    def is_done(self, job_id: str, step: int) -> bool:
        return bool(self.r.hexists(CAPTURED_KEY, f"{job_id}:{step}"))

    def handle(self, req: Request, cause: Event | None = None) -> Event | None:
        """Capture ``req`` unless already captured; publish captured/failed. Returns the published event."""
        if self.is_done(req.job_id, req.step):
            log.info("snapshot %s step %d already captured; skipping", req.job_id, req.step)
            return None
        key = storage.snapshot_key(req.job_id, req.step)
        try:
            doc = self.registry.get_json(key)
            if doc is None or doc.get("version_id") != req.version_id:
                doc = self.compute(req)
                self.registry.put_json(key, doc)
            else:
                log.info("snapshot %s already in S3 (crash before publish): publishing it", key)
            self.export_old_layout(req, doc)
        except (SnapshotInputError, NotFoundError, IntegrityError) as exc:
            return self.publish_failed(req, str(exc), cause)
        event = Event.create(
            "snapshot.captured",
            SnapshotCaptured(version_id=req.version_id, step=req.step, key=key, aggregates=doc["aggregates"]),
            job_id=req.job_id, cause=cause,
        )
        pipe = self.r.pipeline(transaction=True)
        pipe.xadd(streams.EVOLUTION, {"type": event.type, "event": event.to_json()})
        pipe.hset(CAPTURED_KEY, f"{req.job_id}:{req.step}", event.id)
        pipe.execute()
        log.info("snapshot.captured %s step %d (%d examples)", req.job_id, req.step, len(doc["examples"]))
        return event

    # -- computing ----------------------------------------------------------------------------------
    def compute(self, req: Request) -> dict[str, Any]:
        t0 = time.perf_counter()
        tracked = self.tracked(req.job_id)
        if tracked is None:
            raise SnapshotInputError(f"tracked examples {storage.tracked_key(req.job_id)} are missing")
        examples = snap.parse_tracked(tracked, req.job_id)
        base_model = req.base_model or tracked.get("base_model") or (tracked.get("spec") or {}).get("base_model")
        if not base_model:
            raise SnapshotInputError(f"no base model known for job {req.job_id}")
        if req.version_id is None:
            model, tokenizer = self.models.base(base_model)
            return self._run(req, model, tokenizer, examples, tracked, base_model, t0)
        manifest = req.manifest or self.registry.manifest(req.version_id)
        check_adapter_files([f["path"] for f in manifest.get("files", [])])
        with tempfile.TemporaryDirectory(dir=self._work_dir(), prefix="version-") as tmp:
            # the adapter alone: a checkpoint's optimizer and RNG state are not needed to evaluate it
            adapter_dir = self.registry.materialize(req.version_id, Path(tmp), only=ADAPTER_FILES, manifest=manifest)
            with self.models.adapted(base_model, adapter_dir) as (model, tokenizer):
                return self._run(req, model, tokenizer, examples, tracked, base_model, t0)

    def _run(self, req: Request, model: Any, tokenizer: Any, examples: list[snap.TrackedExample],
             tracked: dict[str, Any], base_model: str, t0: float) -> dict[str, Any]:
        t_load = time.perf_counter()
        rendered = self._render(req.job_id, base_model, tokenizer, examples)
        budgets = budget.row_budgets(
            budget.token_lengths(tokenizer, [x.target for x in rendered]),
            budget.token_lengths(tokenizer, [x.prompt for x in rendered]), hard_limit=self.settings.max_new_tokens,
            answer_room=self.settings.answer_room, context=context_length(model, tokenizer))
        # the engine's own limit is the longest row's (its batches and prompt room are sized by it); each row
        # stops at its own: target + answer room, at most the hard limit and what the context leaves
        engine = Engine(model, tokenizer, max_new_tokens=max((b.limit for b in budgets), default=1),
                        batch_size=self.settings.batch_size, memory_budget_mb=self.settings.gpu_memory_budget_mb,
                        answer_room=self.settings.answer_room)
        scored, generated = engine.evaluate([Item(x.prompt, x.target) for x in rendered])
        t_model = time.perf_counter()
        eos = tokenizer.eos_token or ""
        targets = [(x.target.split(eos)[0] if eos else x.target).strip() for x in rendered]
        sims = self.semantic.similarities([(g.text, t) for g, t in zip(generated, targets, strict=True)])
        t_semantic = time.perf_counter()
        # a plain text has no user turn: its question is the beginning of the text the model continues
        questions = [x.prompt if is_plain_text(ex.messages) else None for ex, x in zip(examples, rendered, strict=True)]
        rows = [snap.example_row(ex, t, s, g, sem, q)
                for ex, t, s, g, sem, q in zip(examples, targets, scored, generated, sims, questions, strict=True)]
        budget.flag_limits(rows, budgets)
        timing = {"load_s": t_load - t0, "model_s": t_model - t_load, "semantic_s": t_semantic - t_model}
        return snap.build_doc(
            job_id=req.job_id, version_id=req.version_id, step=req.step,
            max_new_tokens=self.settings.max_new_tokens, answer_room=self.settings.answer_room, rows=rows,
            base_model=base_model,
            tracked_sha256=tracked.get("sha256"), semantic_note=self.semantic.unavailable_reason,
            reruns=engine.stats.reruns, timing={k: round(v, 4) for k, v in timing.items()},
        )

    def tracked(self, job_id: str) -> dict[str, Any] | None:
        """The job's tracked-examples document (immutable once written at job start; kept for recent jobs)."""
        return _recall(self._tracked, job_id, lambda: self.registry.get_json(storage.tracked_key(job_id)))

    def _render(self, job_id: str, base_model: str, tokenizer: Any, examples: list[snap.TrackedExample]) -> list:
        def render_all() -> list:
            rendered = []
            for ex in examples:
                try:
                    rendered.append(render(tokenizer, ex.messages))
                except Exception as exc:  # noqa: BLE001 - a template error names the example
                    raise SnapshotInputError(f"tracked example {ex.id} does not render: {exc}") from exc
            return rendered

        return _recall(self._rendered, (job_id, base_model), render_all)

    # -- outputs ------------------------------------------------------------------------------------
    def export_old_layout(self, req: Request, doc: dict[str, Any]) -> Path:
        """Also write ``<state_dir>/data/evolution_snapshots/<dataset>/step_000010.json`` (atomic)."""
        tracked = self.tracked(req.job_id) or {}
        folder = (Path(self.settings.state_dir) / "data" / "evolution_snapshots"
                  / snap.dataset_label(tracked, req.spec, req.job_id))
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"step_{req.step:06d}.json"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
        os.replace(tmp, target)
        return target

    def publish_failed(self, req: Request, reason: str, cause: Event | None) -> Event | None:
        field = f"{req.job_id}:{req.step}:{req.version_id}"
        if self.r.hexists(FAILED_KEY, field):
            return None
        log.error("snapshot of %s step %s failed: %s", req.job_id, req.step, reason)
        event = Event.create("snapshot.failed", SnapshotFailed(version_id=req.version_id, step=req.step, reason=reason),
                             job_id=req.job_id, cause=cause)
        pipe = self.r.pipeline(transaction=True)
        pipe.xadd(streams.EVOLUTION, {"type": event.type, "event": event.to_json()})
        pipe.hset(FAILED_KEY, field, event.id)
        pipe.execute()
        return event

    def _work_dir(self) -> Path:
        path = Path(self.settings.state_dir) / "evaluator"
        path.mkdir(parents=True, exist_ok=True)
        return path


def _recall(cache: OrderedDict, key: Any, make: Callable[[], Any], size: int = 32) -> Any:
    """``cache[key]``, made with ``make()`` when absent (a None result is not kept); the least recent go first."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = make()
    if value is not None:
        cache[key] = value
        while len(cache) > size:
            cache.popitem(last=False)
    return value
