"""The training recipe, top to bottom: claim the job, fetch data, build model, train, record the outcome.

RQ runs ``run_job(job_id)`` inside the trainer worker (``python -m services.trainer.main``).
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import redis
from minio import Minio

from services.registry.client import RegistryClient
from services.trainer import checkpoints, diskfull, jobstore, outcomes
from services.trainer.callback import JobContext, TokenCounter, TrainyardCallback
from services.trainer.datasets import ValidatedDataset, load_stored
from services.trainer.emit import emit
from services.trainer.features import build_features, collator, use_packed_attention
from services.trainer.spec import JobSpec
from services.trainer.states import JobState
from services.trainer.tracked import document, select
from shared import storage
from shared.events import JobStarted
from shared.modeling import pick_device
from shared.settings import TrainerSettings, load

log = logging.getLogger(__name__)

TRAINING_HERE: set[str] = set()  # job ids this process is training now (its orphan reaper leaves them alone)


def run_job(job_id: str) -> str:
    """The RQ job function: settings from the environment, Redis from the RQ connection."""
    from rq import get_current_job

    settings = load(TrainerSettings)
    current = get_current_job()
    r = current.connection if current is not None else redis.Redis.from_url(settings.redis_url)
    return train(settings, r, storage.s3_client(settings), job_id)


def worker_name(settings: TrainerSettings) -> str:
    return settings.worker_name or f"{socket.gethostname()}-{os.getpid()}"


# -- builders -----------------------------------------------------------------------------------------
def fetch_dataset(settings: TrainerSettings, s3: Minio, sha256: str, fmt: str | None) -> ValidatedDataset:
    """The dataset blob by sha256 from S3 (cached under the state dir), validated again."""
    path = settings.state_dir / "trainer" / "datasets" / f"{sha256}.jsonl"
    if not (path.is_file() and storage.sha256_file(path) == sha256):
        RegistryClient(s3, settings.bucket).fetch_blob(sha256, path)
    return load_stored(path, fmt)


def build_model(spec: JobSpec, device: str) -> tuple[Any, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
    dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(spec.base_model, dtype=dtype, use_safetensors=True)
    lora = LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                      target_modules=spec.target_modules, task_type="CAUSAL_LM")
    set_seed(spec.seed)  # LoRA A matrices are random: the same spec must give the same start
    model = get_peft_model(model, lora)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    return model, tokenizer


def training_args(spec: JobSpec, output_dir: Path, device: str) -> Any:
    import torch
    from transformers import TrainingArguments

    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    return TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.grad_accum, learning_rate=spec.lr, lr_scheduler_type=spec.lr_scheduler,
        warmup_steps=spec.warmup_steps, weight_decay=spec.weight_decay, num_train_epochs=spec.epochs,
        max_steps=spec.max_steps or -1, max_grad_norm=spec.max_grad_norm, logging_steps=spec.log_every,
        save_strategy="steps", save_steps=spec.checkpoint_every, save_total_limit=None, seed=spec.seed,
        data_seed=spec.seed, report_to=[], remove_unused_columns=False, use_cpu=device == "cpu", bf16=bf16,
        dataloader_num_workers=0, disable_tqdm=True,
    )


def write_tracked(settings: TrainerSettings, s3: Minio, job_id: str, spec: JobSpec,
                  dataset: ValidatedDataset, dataset_name: str | None = None) -> str:
    """Write ``tracked/<job_id>.json`` once (a resumed job keeps the document of its first start)."""
    key = storage.tracked_key(job_id)
    registry = RegistryClient(s3, settings.bucket)
    if registry.get_json(key) is not None:
        return key
    heldout = []
    if spec.tracked.heldout_sha256:
        heldout = fetch_dataset(settings, s3, spec.tracked.heldout_sha256, None).examples
    train_ex = select(dataset.examples, spec.tracked.count, spec.tracked.seed)
    registry.put_json(key, document(job_id, dataset.sha256, spec.tracked.seed, train_ex, heldout,
                                     dataset_name=dataset_name or spec.name))
    return key


def _file_stem(ref: Any) -> str | None:
    """The stem of the submitted file named by the job's dataset ref (``{"path": ...}``), if any."""
    path = ref.get("path") if isinstance(ref, dict) else None
    return Path(str(path)).stem or None if path else None


# -- the job ------------------------------------------------------------------------------------------
def train(settings: TrainerSettings, r: redis.Redis, s3: Minio, job_id: str) -> str:
    """Train one attempt of ``job_id``; returns the state it ended in."""
    try:
        before = jobstore.transition(r, job_id, [JobState.queued], JobState.running, action="start")
    except Exception as exc:  # noqa: BLE001 - cancelled/paused while waiting, or deleted: nothing to run
        log.info("not starting %s: %s", job_id, exc)
        return "skipped-start"
    attempt = int(before.get("attempt", 0)) + 1
    name = worker_name(settings)
    jobstore.update(r, job_id, attempt=attempt, worker=name)
    r.hset(jobstore.RUNNING_KEY, job_id, name)
    r.set(jobstore.heartbeat_key(job_id), 0, ex=jobstore.HEARTBEAT_TTL_S * 6)  # model loading is slow
    spec = JobSpec.model_validate(before["spec"])
    output_dir = settings.checkpoints_dir / job_id
    trainer = model = None
    step = int(before.get("step", 0))
    TRAINING_HERE.add(job_id)
    try:
        device = pick_device(spec.device)
        checkpoints.remove_incomplete(output_dir)
        resume_from = checkpoints.latest(output_dir)
        step = checkpoints.step_of(resume_from) if resume_from else 0
        assert spec.dataset_sha256, "job spec has no dataset_sha256"
        fmt = spec.dataset_format.value if spec.dataset_format else None
        dataset = fetch_dataset(settings, s3, spec.dataset_sha256, fmt)
        tracked_key = write_tracked(settings, s3, job_id, spec, dataset, _file_stem(before.get("dataset")))
        model, tokenizer = build_model(spec, device)
        if spec.packing:
            use_packed_attention(model)  # per-example attention: cost follows the sum of squared lengths
        features = build_features(tokenizer, [e.messages for e in dataset.examples], spec.max_seq_len,
                                  spec.packing)
        counter = TokenCounter(collator(tokenizer, spec.packing))
        ctx = JobContext(job_id, spec.to_dict(), spec.base_model, dataset.sha256, tracked_key)
        callback = TrainyardCallback(r, ctx, counter)
        from transformers import Trainer

        trainer = Trainer(model=model, args=training_args(spec, output_dir, device), train_dataset=features,
                          data_collator=counter, callbacks=[callback])
        emit(r, "job.started", JobStarted(attempt=attempt, resumed_from_step=step, worker=name), job_id)
        t0 = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        step = trainer.state.global_step
        return outcomes.finish(r, job_id, callback.outcome, trainer.state, time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded state, never a lost job
        if trainer is not None:
            step = trainer.state.global_step
        return _failed(r, job_id, exc, step, output_dir)
    finally:
        TRAINING_HERE.discard(job_id)
        r.hdel(jobstore.RUNNING_KEY, job_id)
        r.delete(jobstore.heartbeat_key(job_id))
        del trainer, model
        _free_memory()


def _failed(r: redis.Redis, job_id: str, exc: Exception, step: int, output_dir: Path) -> str:
    """Out of memory and a full disk pause the job (resumable); anything else fails it."""
    last = checkpoints.latest(output_dir)
    resume_note = f"; resume continues from {last.name}" if last else ""
    if type(exc).__name__ == "OutOfMemoryError":
        return outcomes.pause_for(r, job_id, f"out of GPU memory at step {step}{resume_note}", step, last)
    needed = sum(f.stat().st_size for f in last.rglob("*") if f.is_file()) if last else 0
    if diskfull.is_disk_full(exc, output_dir, needed):
        why = diskfull.reason(exc, output_dir, step)  # free space as it was when the save failed
        gone = checkpoints.remove_incomplete(output_dir)
        log.warning("job %s: %s; removed partial checkpoint(s) %s", job_id, why, [p.name for p in gone])
        return outcomes.pause_for(r, job_id, f"{why}{resume_note}", step, last)
    log.exception("job %s failed", job_id)
    return outcomes.fail(r, job_id, f"{type(exc).__name__}: {exc}", step)


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001
        pass
