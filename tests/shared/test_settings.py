"""Settings: TRAINYARD_ prefix, secrets required outside dev mode, one clear line on bad input."""

from __future__ import annotations

import pytest

from shared.settings import ApiSettings, CommonSettings, InferenceSettings, TrainerSettings, load


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINYARD_DEV", "1")
    monkeypatch.setenv("TRAINYARD_BUCKET", "mine")
    monkeypatch.setenv("TRAINYARD_INBOX_DIR", "/data/inbox")
    s = TrainerSettings()
    assert s.bucket == "mine" and str(s.inbox_dir) == "/data/inbox"


def test_default_secret_refused_outside_dev(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("TRAINYARD_DEV", "0")
    monkeypatch.delenv("TRAINYARD_S3_SECRET_KEY", raising=False)
    with pytest.raises(SystemExit) as exc:
        load(CommonSettings)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "TRAINYARD_S3_SECRET_KEY must be set outside dev mode" in err
    assert len(err.strip().splitlines()) == 1


def test_api_token_required_outside_dev(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("TRAINYARD_DEV", "0")
    monkeypatch.setenv("TRAINYARD_S3_SECRET_KEY", "s3cret-value")
    with pytest.raises(SystemExit):
        load(ApiSettings)
    assert "TRAINYARD_API_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("TRAINYARD_API_TOKEN", "a-real-token")
    assert load(ApiSettings).api_token == "a-real-token"


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("TRAINYARD_DEV", "1")
    monkeypatch.setenv("TRAINYARD_PORT", "not-a-port")
    with pytest.raises(SystemExit):
        load(ApiSettings)
    assert "TRAINYARD_PORT" in capsys.readouterr().err


def test_inference_token(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("TRAINYARD_DEV", "0")
    monkeypatch.delenv("TRAINYARD_INFERENCE_TOKEN", raising=False)
    with pytest.raises(SystemExit):
        load(InferenceSettings)
    assert "TRAINYARD_INFERENCE_TOKEN" in capsys.readouterr().err
