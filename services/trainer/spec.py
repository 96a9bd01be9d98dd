"""The typed job spec: everything needed to (re)run a training job, saved inside every checkpoint.

Defaults target Qwen3-0.6B with LoRA on one 24 GB GPU (RTX 3090). Memory estimate at the defaults
(bf16 weights, ``batch_size=4`` x ``max_seq_len=1024`` = 4096 tokens per micro-batch, no gradient
checkpointing), see ``estimate_memory_gb``:

* base weights, bf16: 0.6 B params x 2 bytes               ~ 1.2 GB
* LoRA r16 on all linear layers (~10 M params) + AdamW fp32  ~ 0.2 GB
* activations: tokens x layers x hidden x ~34 bytes         ~ 4096 x 28 x 1024 x 34 ~ 4.0 GB
* logits + fp32 loss: tokens x vocab x ~10 bytes           ~ 4096 x 151936 x 10 ~ 6.2 GB
* CUDA context and allocator slack                         ~ 1.5 GB

Total ~ 13 GB, leaving headroom on 24 GB; ``max_seq_len=2048`` with ``batch_size=4`` roughly doubles the
activation and logit terms (~23 GB: turn on ``gradient_checkpointing`` or halve ``batch_size``).
The effective batch is ``batch_size x grad_accum`` = 16 sequences.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.trainer.exceptions import SpecError
from services.trainer.states import Priority


class DeployPolicy(StrEnum):
    manual = "manual"
    on_complete = "on-complete"
    on_improvement = "on-improvement"


class DatasetFormat(StrEnum):
    chat = "chat"
    prompt_completion = "prompt_completion"
    alpaca = "alpaca"
    sharegpt = "sharegpt"
    text = "text"


class TrackedSpec(BaseModel):
    """Which examples the evaluator follows through training (fixed at job start)."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=100, ge=0, le=10_000)
    seed: int = 0
    heldout_path: str | None = None  # optional held-out .jsonl (validated and stored at submit)
    heldout_sha256: str | None = None  # set by submit once the held-out file is in the registry


class JobSpec(BaseModel):
    """A validated training job. Unknown keys are refused so that typos do not silently train defaults."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    name: str | None = None
    base_model: str = "Qwen/Qwen3-0.6B"  # local directory or hub id
    # dataset reference (filled in by submit)
    dataset_format: DatasetFormat | None = None  # None = auto-detect
    dataset_sha256: str | None = None
    dataset_version_id: str | None = None
    # LoRA
    lora_r: int = Field(default=16, ge=1, le=1024)
    lora_alpha: int = Field(default=32, ge=1, le=16_384)
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"
    # optimisation
    lr: float = Field(default=2e-4, gt=0.0, le=10.0)
    lr_scheduler: str = "cosine"
    warmup_steps: int = Field(default=10, ge=0, le=10_000_000)
    weight_decay: float = Field(default=0.0, ge=0.0, le=10.0)
    epochs: float = Field(default=1.0, gt=0.0, le=10_000.0)
    max_steps: int | None = Field(default=None, ge=1, le=100_000_000)  # overrides epochs when set
    batch_size: int = Field(default=4, ge=1, le=65_536)
    grad_accum: int = Field(default=4, ge=1, le=65_536)
    max_seq_len: int = Field(default=1024, ge=8, le=131_072)
    max_grad_norm: float = Field(default=1.0, gt=0.0, le=1e6)
    gradient_checkpointing: bool = False
    packing: bool = False  # padding-free packing (position_ids)
    # bookkeeping
    checkpoint_every: int = Field(default=100, ge=1)
    log_every: int = Field(default=10, ge=1)
    tracked: TrackedSpec = Field(default_factory=TrackedSpec)
    seed: int = 42
    priority: Priority = Priority.default
    preempt: bool = False  # may pause a running job of lower priority
    # what the `best` alias follows for this job's versions (None: TRAINYARD_BEST_METRIC, default "auto" =
    # heldout.loss where held-out examples exist, else train.loss); e.g. "heldout.f1", "train.exact"
    best_metric: str | None = Field(default=None, min_length=1, max_length=100)
    deploy_policy: DeployPolicy = DeployPolicy.manual
    deploy_target: str | None = None
    device: str = "auto"  # auto | cpu | cuda

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, str) and v != "all-linear":
            raise ValueError("target_modules must be 'all-linear' or a list of module names")
        if isinstance(v, list) and (not v or not all(isinstance(x, str) and x for x in v)):
            raise ValueError("target_modules list must hold non-empty module names")
        return v

    @field_validator("lr_scheduler")
    @classmethod
    def _sched(cls, v: str) -> str:
        allowed = {"linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"}
        if v not in allowed:
            raise ValueError(f"lr_scheduler must be one of {sorted(allowed)}")
        return v

    @model_validator(mode="after")
    def _deploy(self) -> JobSpec:
        if self.deploy_policy != DeployPolicy.manual and not self.deploy_target:
            raise ValueError(f"deploy_policy {self.deploy_policy.value!r} needs a deploy_target")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_spec(spec: dict[str, Any] | JobSpec | None, **overrides: Any) -> JobSpec:
    """A JobSpec from a dict (or an existing spec) with overrides; SpecError names each bad field."""
    data: dict[str, Any] = spec.to_dict() if isinstance(spec, JobSpec) else dict(spec or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()]
        raise SpecError("invalid job spec: " + "; ".join(problems)) from None


def estimate_memory_gb(spec: JobSpec, *, params_b: float = 0.6, layers: int = 28, hidden: int = 1024,
                       vocab: int = 151_936) -> float:
    """Rough peak GPU memory in GB for LoRA training (defaults: Qwen3-0.6B); see the module docstring."""
    tokens = spec.batch_size * spec.max_seq_len
    weights = params_b * 1e9 * 2
    lora = 0.2e9
    act_per_token = layers * hidden * (2 if spec.gradient_checkpointing else 34)
    activations = tokens * act_per_token
    logits = tokens * vocab * 10
    overhead = 1.5e9
    return round((weights + lora + activations + logits + overhead) / 1e9, 1)
