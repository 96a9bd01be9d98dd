"""One pydantic-settings class per service, all read from ``TRAINYARD_*`` environment variables.

Outside dev mode (``TRAINYARD_DEV=1``) the secrets must be set explicitly: the defaults are refused.
``load(cls)`` turns a missing or invalid setting into one clear line naming the variable and exits.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import AliasChoices, BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "trainyard-dev-secret"
DEV_S3_KEY = "trainyard"
DEV_S3_SECRET = "trainyard-dev-secret"


class CommonSettings(BaseSettings):
    """What every service needs: where Redis, S3 and the state directory are, and the dev switch."""

    model_config = SettingsConfigDict(env_prefix="TRAINYARD_", extra="ignore", frozen=True)

    dev: bool = False
    redis_url: str = "redis://127.0.0.1:6379/0"
    s3_endpoint: str = "127.0.0.1:8333"  # host:port, MinIO or any S3 server
    s3_access_key: str = DEV_S3_KEY
    s3_secret_key: str = DEV_S3_SECRET
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    bucket: str = "trainyard"
    state_dir: Path = Path(".state")
    log_level: str = "INFO"
    # where versions are copied (the registry's replica); None: the primary's own endpoint, which is no backup
    replica_endpoint: str | None = None
    replica_bucket: str = "trainyard-replica"

    @model_validator(mode="after")
    def _secrets_outside_dev(self) -> CommonSettings:
        if not self.dev:
            for name, default in self._secret_defaults().items():
                if getattr(self, name) == default:
                    raise ValueError(
                        f"TRAINYARD_{name.upper()} must be set outside dev mode (or set TRAINYARD_DEV=1)"
                    )
        return self

    def _secret_defaults(self) -> dict[str, str]:
        return {"s3_secret_key": DEV_S3_SECRET}

    def replica_warnings(self) -> list[str]:
        """Why the configured replica is not a backup: none configured, or it lives on the primary's server."""
        if not self.replica_endpoint:
            return ["no replica is configured (set TRAINYARD_REPLICA_ENDPOINT): versions are copied to bucket "
                    f"{self.replica_bucket!r} on the primary's own server {self.s3_endpoint}, which is not a backup"]
        if same_server(self.replica_endpoint, self.s3_endpoint):
            return [f"the replica endpoint {self.replica_endpoint} is the primary's own server: bucket "
                    f"{self.replica_bucket!r} there is not a backup (point TRAINYARD_REPLICA_ENDPOINT at another "
                    "machine)"]
        return []


def same_server(a: str, b: str) -> bool:
    """Whether two S3 endpoints (``host:port``, with or without a scheme) name the same server."""
    def norm(endpoint: str) -> str:
        host = endpoint.strip().lower().split("://", 1)[-1].rstrip("/")
        for alias in ("localhost", "[::1]", "0.0.0.0"):
            host = host.replace(alias, "127.0.0.1")
        return host
    return norm(a) == norm(b)


class TrainerSettings(CommonSettings):
    inbox_dir: Path = Path("inbox")
    control_dir: Path = Path("control")
    checkpoints_dir: Path = Path("checkpoints")
    queues: tuple[str, ...] = ("high", "default", "low")
    inbox_poll_s: float = 1.0
    inbox_stable_s: float = 1.0  # a file must keep its size this long before it is picked up
    inbox_orphan_s: float = 60.0  # a spec sidecar with no dataset of its name is rejected after this long
    keep_local_checkpoints: int = 2  # after the registry confirmed them
    default_base_model: str | None = None  # a job spec without base_model trains this (`trainyard up` sets it)
    worker_name: str | None = None


class RegistrySettings(CommonSettings):
    replica_access_key: str | None = None
    replica_secret_key: str | None = None
    trash_retention_days: float = 7.0
    # what `best` follows: "auto" = the evaluator's held-out loss where a job has held-out examples, else the
    # tracked training examples' loss; or a metric path of the snapshot aggregates / checkpoint metrics
    best_metric: str = "auto"
    multipart_threshold_mb: int = 64
    bucket_budget_gb: float | None = None  # past it, `trainyard storage plan/apply` thins old checkpoints
    keep_last: int = 3  # per job, the newest versions a thinning plan always keeps
    keep_every: int = 0  # ... and every version whose step is a multiple of this (0: off)


class EvaluatorSettings(CommonSettings):
    # the hard limit of a prediction's length (rows that reach it are flagged at_limit)
    max_new_tokens: int = Field(default=512, ge=1)
    # a prediction stops this many tokens past its target's length (flagged truncated), so a long target has
    # room to be matched and a short one costs little; None: every row may take max_new_tokens
    answer_room: int | None = 16
    batch_size: int = 64  # rows per forward pass, fewer where gpu_memory_budget_mb says so
    device: str = "auto"  # auto | cpu | cuda
    dtype: Literal["float32", "bfloat16", "float16"] | None = None  # None: bfloat16 on CUDA, float32 on CPU
    gpu_memory_budget_mb: int = 4096
    embeddings: bool = True  # MiniLM semantic similarity (falls back to off if the model is missing)
    embeddings_batch_size: int = 16  # texts per MiniLM pass (sorted by length: small batches carry less padding)


class TargetConfig(BaseModel):
    name: str
    url: str
    token: str = ""
    kind: Literal["trainyard", "vllm"] = "trainyard"


class DeployerSettings(CommonSettings):
    targets: list[TargetConfig] = Field(default_factory=list)
    verify_threshold: float = 1.0  # fraction of tracked examples whose prediction must match
    verify_examples: int = 16
    request_timeout_s: float = 60.0


class InferenceSettings(BaseSettings):
    """The inference container runs on another machine: it needs no Redis or S3."""

    model_config = SettingsConfigDict(env_prefix="TRAINYARD_INFERENCE_", extra="ignore", frozen=True,
                                      populate_by_name=True)

    dev: bool = Field(default=False, validation_alias="TRAINYARD_DEV")
    base_model: str = ""
    # the base model's id in /v1/models and responses; "" = its folder's name (a hub id as it is)
    served_model_name: str = Field(default="", validation_alias=AliasChoices(
        "TRAINYARD_SERVED_MODEL_NAME", "TRAINYARD_INFERENCE_SERVED_MODEL_NAME", "served_model_name"))
    host: str = "127.0.0.1"
    port: int = 8000
    token: str = DEV_SECRET
    adapters_dir: Path = Path(".state/inference/adapters")
    device: str = "auto"
    max_batch: int = 8
    batch_wait_ms: float = 5.0
    batch_padding: bool = False  # False: batch only equal-length prompts (bitwise-equal greedy outputs)
    threads: int = 0  # torch CPU threads; 0 = torch's default
    max_upload_mb: int = 4096  # per uploaded file
    fetch_timeout_s: float = 60.0  # server-side download of upload files by URL

    @model_validator(mode="after")
    def _token_outside_dev(self) -> InferenceSettings:
        if not self.dev and self.token == DEV_SECRET:
            raise ValueError("TRAINYARD_INFERENCE_TOKEN must be set outside dev mode (or set TRAINYARD_DEV=1)")
        return self

    def served_name(self) -> str:
        """The public id of the base model: never a server path."""
        if self.served_model_name:
            return self.served_model_name
        base = self.base_model.rstrip("/")
        local = base.startswith(("/", ".", "~")) or Path(base).is_dir()
        return Path(base).name if local else base


class ApiSettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = 8080
    api_token: str = DEV_SECRET
    open_reads: bool = True  # reads without a token (mutations always need one)
    uploads_dir: Path = Path(".state/uploads")

    def _secret_defaults(self) -> dict[str, str]:
        return {**super()._secret_defaults(), "api_token": DEV_SECRET}


class StackSettings(CommonSettings):
    """``trainyard up``: which ports the embedded servers use."""

    redis_port: int = 6379
    s3_port: int = 8333
    api_port: int = 8080
    inference_port: int = 8000
    dashboard_port: int = 9181
    bind: str = "127.0.0.1"
    # the trainer's watched folders: beside where `trainyard up` runs unless set (TRAINYARD_INBOX_DIR, ...)
    inbox_dir: Path = Path("inbox")
    control_dir: Path = Path("control")


S = TypeVar("S", bound=BaseSettings)


def as_env(settings: BaseSettings) -> dict[str, str]:
    """The environment variables that load ``settings`` again in another process (None and tuples left out)."""
    prefix = settings.model_config.get("env_prefix", "")
    return {f"{prefix}{k.upper()}": str(v) for k, v in settings.model_dump().items()
            if v is not None and not isinstance(v, tuple)}


def load(cls: type[S], **overrides: object) -> S:
    """Instantiate settings or exit with one line naming the offending variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = []
        for err in exc.errors():
            loc = "_".join(str(p) for p in err["loc"]).upper()
            var = f"{prefix}{loc}" if loc else prefix.rstrip("_")
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{var}: {msg}" if loc else msg)
        sys.stderr.write(f"trainyard: invalid settings ({cls.__name__}): {'; '.join(lines)}\n")
        raise SystemExit(2) from None
