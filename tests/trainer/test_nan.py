"""A non-finite loss pauses the job with a reason (callback and outcome on real Redis, no training run)."""

from __future__ import annotations

import redis
from transformers import TrainerControl, TrainerState, TrainingArguments

from services.trainer import jobstore, outcomes
from services.trainer.callback import JobContext, TrainyardCallback
from services.trainer.states import Action, JobState
from shared import streams
from shared.bus import read_all


def test_nan_loss_pauses_without_saving(r: redis.Redis, tmp_path) -> None:
    jobstore.create(r, "job-nan", spec={}, dataset={}, priority="default", name="nan")
    jobstore.transition(r, "job-nan", [JobState.queued], JobState.running)
    cb = TrainyardCallback(r, JobContext("job-nan", {}, "/m", "0" * 64, None))
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    state.global_step, state.max_steps = 3, 10
    cb.on_log(args, state, control, logs={"loss": 1.5, "grad_norm": 0.3})
    assert not control.should_training_stop and cb.outcome.action is None
    state.global_step = 4
    cb.on_log(args, state, control, logs={"loss": float("nan"), "grad_norm": 0.3})
    assert control.should_training_stop and not control.should_save
    assert cb.outcome.action == Action.pause
    assert cb.outcome.reason.startswith("loss is not finite at step 4 (loss=nan")
    assert outcomes.finish(r, "job-nan", cb.outcome, state, 1.0) == JobState.paused.value
    rec = jobstore.load(r, "job-nan")
    assert rec["state"] == "paused" and rec["step"] == 4
    metrics = [e.payload for _, e in read_all(r, streams.METRICS)]
    assert [m.get("loss") for m in metrics] == [1.5, None]  # the bad value is not stored as a number
    (paused,) = [e for _, e in read_all(r, streams.JOBS) if e.type == "job.paused"]
    assert paused.payload["reason"] == cb.outcome.reason and paused.payload["step"] == 4
