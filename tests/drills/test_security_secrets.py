"""Secrets are required outside dev mode (every service refuses to start on the defaults, naming the variable)
and every server binds to 127.0.0.1 unless configured. That the secrets never reach a log is checked on a
whole stack by the drills (``secrets_in_logs`` in tests/drills/test_kill.py and test_outages.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import ApiSettings, InferenceSettings, StackSettings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registry", "evaluator", "deployer", "trainer", "api", "inference")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


@pytest.mark.parametrize("service", SERVICES)
def test_service_refuses_default_secrets_outside_dev(service: str, tmp_path: Path) -> None:
    env = clean_env(TRAINYARD_DEV="0", TRAINYARD_STATE_DIR=str(tmp_path),
                    TRAINYARD_REDIS_URL="redis://127.0.0.1:9/0", TRAINYARD_S3_ENDPOINT="127.0.0.1:9")
    res = subprocess.run([sys.executable, "-m", f"services.{service}.main"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("trainyard: invalid settings"), res.stderr[-2000:]
    expected = "TRAINYARD_INFERENCE_TOKEN" if service == "inference" else "TRAINYARD_S3_SECRET_KEY"
    assert f"{expected} must be set outside dev mode" in lines[0]
    assert "trainyard-dev-secret" not in res.stderr  # the refused default itself is not echoed


def test_api_token_is_required_once_the_s3_secret_is_set(tmp_path: Path) -> None:
    env = clean_env(TRAINYARD_DEV="0", TRAINYARD_S3_SECRET_KEY="s3-" + "k" * 20, TRAINYARD_STATE_DIR=str(tmp_path))
    res = subprocess.run([sys.executable, "-m", "services.api.main"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and "TRAINYARD_API_TOKEN must be set outside dev mode" in res.stderr
    assert "s3-" + "k" * 20 not in res.stderr, "a secret was echoed in the error"


def test_every_server_binds_to_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("TRAINYARD_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("TRAINYARD_DEV", "1")
    assert ApiSettings().host == "127.0.0.1"
    assert InferenceSettings().host == "127.0.0.1"
    assert StackSettings().bind == "127.0.0.1"
