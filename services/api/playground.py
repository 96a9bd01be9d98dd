"""The playground: talk to any registry version on an inference target, through the gateway.

A version is loaded on demand under its own content-addressed name, ``play-<version_id>``, beside whatever a
deployment serves (deployments use ``serving`` and ``<job>-s<step>``: the playground never loads, replaces or
unloads those). Its files reach the target the way the deployer pushes them (``services.deployer.push``,
resumable chunked upload), then ``/v1/load_lora_adapter``. Each use stamps the name in Redis; a playground
name idle for ``IDLE_S`` is unloaded at the next playground request to that target.

The gateway holds the target's token; the browser only ever sends its own API token.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import redis

from services.api.exceptions import BadInput, Conflict, NotFound
from shared.settings import TargetConfig

PREFIX = "play-"
BASE = "base"
IDLE_S = 300.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def loaded_key(target: str) -> str:
    return f"ty:playground:{target}:last_used"


def adapter_name(version_id: str) -> str:
    return PREFIX + _UNSAFE.sub("-", version_id)[:100]


def model_label(model: str) -> str:
    """A hub id as is; a local directory by its name only (no server paths in answers)."""
    return model if re.fullmatch(r"[\w.-]+/[\w.-]+", model) else Path(model).name or model


def target_client(config: TargetConfig, timeout_s: float = 120.0) -> Any:
    from services.deployer.api import TargetClient

    return TargetClient(config, timeout_s=timeout_s)


def served(client: Any) -> tuple[str, set[str]]:
    """(the base model's id, the names the target serves now)."""
    models = client.http.get("/v1/models").json()["data"]
    base = next((m["id"] for m in models if not m.get("parent")), BASE)
    return base, {m["id"] for m in models}


def check_version(registry: Any, version_id: str) -> dict[str, Any]:
    """The version's manifest: 404 unknown, 409 trashed or not an adapter."""
    try:
        manifest = registry.manifest(version_id)
    except Exception as exc:
        if "NotFound" in type(exc).__name__:
            raise NotFound(f"no version {version_id}") from exc
        raise
    state = registry.get_json(f"state/{version_id}.json") or {}
    if state.get("trashed") or state.get("trashed_at"):
        raise Conflict(f"version {version_id} is in the trash: restore it to try it")
    if manifest.get("kind") != "adapter":
        raise Conflict(f"version {version_id} is a {manifest.get('kind')} version: the playground loads LoRA "
                       "adapters onto the served base model (export a full version and serve it as the base)")
    return manifest


def reap_idle(r: redis.Redis, client: Any, target: str, keep: str | None, now: float | None = None) -> list[str]:
    """Unload the target's playground names idle for more than ``IDLE_S`` (never ``keep``)."""
    now = time.time() if now is None else now
    gone = []
    for raw_name, raw_ts in r.hgetall(loaded_key(target)).items():
        name = raw_name.decode()
        if name == keep or not name.startswith(PREFIX) or now - float(raw_ts) <= IDLE_S:
            continue
        try:
            client.unload_adapter(name)
        except Exception:  # noqa: BLE001 - already gone (a restart): forget it all the same
            pass
        r.hdel(loaded_key(target), name)
        gone.append(name)
    return gone


def ensure_loaded(r: redis.Redis, registry: Any, client: Any, config: TargetConfig, version_id: str,
                  work_dir: Path) -> str:
    """The name under which ``version_id`` answers on the target, pushing and loading it when needed."""
    if version_id == BASE:
        reap_idle(r, client, config.name, None)
        return served(client)[0]
    manifest = check_version(registry, version_id)
    name = adapter_name(version_id)
    reap_idle(r, client, config.name, name)
    base, names = served(client)
    if name not in names:
        from services.deployer.api import DeployerState, upload_adapter

        src = registry.materialize(version_id, work_dir / _UNSAFE.sub("-", version_id))
        lora_path = str(src) if config.kind == "vllm" else upload_adapter(client, DeployerState(r), version_id, src,
                                                                       manifest["files"])
        try:
            client.load_adapter(name, lora_path)
        except Exception as exc:
            if "Incompatible" not in type(exc).__name__:
                raise
            trained_on = model_label((manifest.get("lineage") or {}).get("base_model") or "another base model")
            raise BadInput(f"version {version_id} was trained on {trained_on}, but target {config.name} serves "
                           f"{model_label(base)}: it cannot be loaded there (its LoRA weights do not fit that "
                           "base model); try it on a target that serves its base") from exc
    r.hset(loaded_key(config.name), name, time.time())
    return name
