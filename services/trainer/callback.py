"""The one thin TrainerCallback: control checks every step, metrics and checkpoint events.

* ``on_step_end``: one pipelined round trip reads the control hash entry of this job and refreshes the
  heartbeat; a request stops training at this step boundary (with a checkpoint, except ``skip``).

Every Redis call here is retried with backoff while Redis is down (``services.trainer.resilient``): the step
waits for Redis to come back, and each event is published exactly once, in order.
* ``on_log``: publishes ``metrics.logged``; a NaN/inf loss stops training without saving the bad state.
* ``on_save``: writes ``trainyard_job.json`` into the checkpoint, hashes every file and publishes
  ``checkpoint.saved``.
"""

from __future__ import annotations

import json
import math
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from services.trainer import checkpoints, jobstore, resilient
from services.trainer.emit import emit
from services.trainer.states import Action
from shared import streams
from shared.events import CheckpointSaved, MetricsLogged


@dataclass
class TokenCounter:
    """Counts the non-padding input tokens the collator hands out."""

    inner: Any
    tokens: int = 0

    def __call__(self, batch: list[dict[str, list[int]]]) -> Any:
        self.tokens += sum(len(b["input_ids"]) for b in batch)
        return self.inner(batch)


@dataclass
class JobContext:
    job_id: str
    spec: dict[str, Any]
    base_model: str
    dataset_sha256: str
    tracked_key: str | None


@dataclass
class Outcome:
    """What ended training early: a control action, or a NaN loss."""

    action: Action | None = None
    by_job_id: str | None = None  # for preemption
    reason: str = ""
    last_checkpoint: Path | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)


def _memory_mb() -> float:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
    except Exception:  # noqa: BLE001 - memory is a nice-to-have metric
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TrainyardCallback(TrainerCallback):
    def __init__(self, r: redis.Redis, ctx: JobContext, counter: TokenCounter | None = None) -> None:
        self.r = r
        self.ctx = ctx
        self.counter = counter
        self.outcome = Outcome()
        self._t_log = time.perf_counter()
        self._tokens_log = 0

    # -- control -------------------------------------------------------------------------------------
    def _control_and_heartbeat(self, step: int) -> bytes | None:
        """One round trip: this job's control request, and the heartbeat refreshed (both idempotent)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hget(streams.CONTROL_KEY, self.ctx.job_id)
        pipe.set(jobstore.heartbeat_key(self.ctx.job_id), step, ex=jobstore.HEARTBEAT_TTL_S)
        raw, _ = pipe.execute()
        return raw

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> TrainerControl:
        raw = resilient.call(self._control_and_heartbeat, state.global_step, what="the step's control check")
        if raw and self.outcome.action is None:
            action, _, arg = raw.decode().partition(":")
            try:
                self.outcome.action = Action(action)
            except ValueError:
                resilient.call(self.r.hdel, streams.CONTROL_KEY, self.ctx.job_id, what="dropping a bad request")
                return control
            self.outcome.by_job_id = arg or None
            control.should_training_stop = True
            control.should_save = self.outcome.action != Action.skip
        return control

    # -- metrics -------------------------------------------------------------------------------------
    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> TrainerControl:
        logs = logs or {}
        if "loss" not in logs:
            return control
        now = time.perf_counter()
        tokens = self.counter.tokens if self.counter else 0
        dt = now - self._t_log
        tps = (tokens - self._tokens_log) / dt if dt > 0 and tokens else None
        self._t_log, self._tokens_log = now, tokens
        loss = float(logs["loss"])
        grad_norm = logs.get("grad_norm")
        finite = math.isfinite(loss) and (grad_norm is None or math.isfinite(float(grad_norm)))
        payload = MetricsLogged(
            step=state.global_step, loss=loss if math.isfinite(loss) else None,
            learning_rate=logs.get("learning_rate"),
            grad_norm=float(grad_norm) if grad_norm is not None and math.isfinite(float(grad_norm)) else None,
            tokens_per_s=tps, memory_mb=_memory_mb(), epoch=state.epoch, max_steps=state.max_steps,
        )
        self.outcome.last_metrics = {k: v for k, v in payload.model_dump().items() if v is not None}
        emit(self.r, "metrics.logged", payload, self.ctx.job_id)
        if not finite and self.outcome.reason == "":
            self.outcome.action = Action.pause
            self.outcome.reason = (f"loss is not finite at step {state.global_step} (loss={loss}, "
                                   f"grad_norm={grad_norm}); paused without saving this state")
            control.should_training_stop = True
            control.should_save = False
        return control

    # -- checkpoints ---------------------------------------------------------------------------------
    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> TrainerControl:
        ckpt = Path(args.output_dir) / f"{checkpoints.PREFIX}{state.global_step}"
        checkpoints.write_spec(ckpt, job_id=self.ctx.job_id, step=state.global_step, spec=self.ctx.spec)
        files = checkpoints.describe(ckpt)
        final = state.global_step >= state.max_steps and self.outcome.action is None
        event = emit(self.r, "checkpoint.saved", CheckpointSaved(
            step=state.global_step, checkpoint_dir=str(ckpt.resolve()), files=files,
            base_model=self.ctx.base_model, dataset_sha256=self.ctx.dataset_sha256, spec=self.ctx.spec,
            metrics=self.outcome.last_metrics, final=final, tracked_key=self.ctx.tracked_key,
        ), self.ctx.job_id)
        record = {"dir": str(ckpt.resolve()), "files": [f.model_dump() for f in files], "step": state.global_step}
        resilient.call(self.r.hset, streams.key("trainer", "checkpoints"), event.id, json.dumps(record),
                       what="recording the checkpoint")
        self.outcome.last_checkpoint = ckpt
        return control
