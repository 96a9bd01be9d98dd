"""compose.inference.yaml, the GPU box's file, on this machine: the inference server alone comes up healthy
from a mounted model directory, answers only with its token, and only on the address it was told to bind.

The GPU reservation is dropped by tests/compose/compose.inference.cpu.yaml (no GPU here); the rest of the
file is used as written. Needs a Docker engine; skips with the reason otherwise.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.stack.servers import free_port
from shared.modeling import build_tiny_model
from tests.compose.compose_harness import ComposeStack, engine_problem, ensure_images

pytestmark = [pytest.mark.compose, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def models_dir() -> Iterator[Path]:
    # Readable by the container's non-root user (pytest's tmp dirs are private to root).
    root = Path(tempfile.mkdtemp(prefix="ty-models-"))
    os.chmod(root, 0o755)
    build_tiny_model(root / "tiny")
    for f in (root / "tiny").iterdir():  # safetensors writes 0600 files: make them readable, as the docs say
        f.chmod(0o644)
    yield root
    import shutil

    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def gpu_box(models_dir: Path) -> Iterator[ComposeStack]:
    problem = engine_problem()
    if problem:
        pytest.skip(problem)
    ensure_images()
    port = free_port()
    s = ComposeStack(files=("compose.inference.yaml", "tests/compose/compose.inference.cpu.yaml"), env={
        "TRAINYARD_INFERENCE_TOKEN": secrets.token_hex(16),
        "TRAINYARD_MODELS_DIR": str(models_dir),
        "TRAINYARD_BASE_MODEL": "/models/tiny",
        "TRAINYARD_INFERENCE_BIND": "127.0.0.1",
        "TRAINYARD_INFERENCE_HOST_PORT": str(port),
        # the evaluator's peers (it is left out by the CPU override's profile)
        "TRAINYARD_REDIS_URL": "redis://127.0.0.1:1/0", "TRAINYARD_S3_ENDPOINT": "127.0.0.1:1",
        "TRAINYARD_S3_ACCESS_KEY": "unused", "TRAINYARD_S3_SECRET_KEY": "unused-secret",
    })
    try:
        s.up(timeout=400)
        yield s
    finally:
        s.down()


def test_missing_settings_are_refused_before_anything_starts(models_dir: Path) -> None:
    problem = engine_problem()
    if problem:
        pytest.skip(problem)
    s = ComposeStack(files=("compose.inference.yaml",), env={
        "TRAINYARD_MODELS_DIR": str(models_dir), "TRAINYARD_INFERENCE_BIND": "127.0.0.1",
        "TRAINYARD_REDIS_URL": "redis://:pw@10.0.0.5:6379/0", "TRAINYARD_S3_ENDPOINT": "10.0.0.5:9000",
        "TRAINYARD_S3_ACCESS_KEY": "trainyard", "TRAINYARD_S3_SECRET_KEY": "s3-secret-value"})
    assert s.compose("config", "--quiet", check=False).returncode == 0
    for name in ("TRAINYARD_INFERENCE_TOKEN", "TRAINYARD_INFERENCE_BIND", "TRAINYARD_MODELS_DIR",
                 "TRAINYARD_REDIS_URL", "TRAINYARD_S3_ENDPOINT", "TRAINYARD_S3_ACCESS_KEY"):
        saved = s.env.pop(name)
        proc = s.compose("config", "--quiet", check=False)
        s.env[name] = saved
        assert proc.returncode != 0 and name in proc.stderr, (name, proc.stderr)


def test_inference_box_serves_the_mounted_model_with_its_token(gpu_box: ComposeStack) -> None:
    assert gpu_box.health() == {"inference": "healthy"}
    with gpu_box.inference() as inf:
        models = inf.get("/v1/models")
        # served under its folder's name, never a server path
        assert models.status_code == 200 and [m["id"] for m in models.json()["data"]] == ["tiny"], models.text
        assert "/models/" not in models.text
        out = inf.post("/v1/completions", json={"model": "tiny", "prompt": "Hello", "max_tokens": 3,
                                                 "temperature": 0})
        assert out.status_code == 200, out.text
        assert out.json()["choices"][0]["finish_reason"] in ("length", "stop")
    assert httpx.get(gpu_box.inference_url + "/v1/models", timeout=10).status_code == 401
    wrong = httpx.get(gpu_box.inference_url + "/v1/models", timeout=10, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    pubs = [p for c in gpu_box.ps() for p in c.get("Publishers") or [] if p.get("PublishedPort")]
    assert pubs and {p.get("URL") for p in pubs} == {"127.0.0.1"}, pubs
