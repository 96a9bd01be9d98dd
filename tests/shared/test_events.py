"""The envelope: frozen, versioned, typed payloads, causation chains and upcasters."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared import events
from shared.events import Event, InvalidEventError, JobQueued, MetricsLogged, UnknownEventError, parse_event


def _queued() -> Event:
    ds = events.DatasetRef(name="d", path="/x", sha256="a" * 64, format="messages", n_examples=3)
    return Event.create("job.queued", JobQueued(spec={"lr": 1}, dataset=ds), job_id="j1")


def test_envelope_fields_and_round_trip() -> None:
    e = _queued()
    assert e.type == "job.queued" and e.schema_version == 1 and e.job_id == "j1"
    assert e.correlation_id == e.id and e.causation_id is None
    back = parse_event(e.to_json())
    assert back == e
    assert isinstance(back.typed(), JobQueued)


def test_envelope_is_frozen() -> None:
    e = _queued()
    with pytest.raises(ValidationError):
        e.type = "job.started"  # type: ignore[misc]


def test_causation_chain() -> None:
    cause = _queued()
    effect = Event.create("metrics.logged", MetricsLogged(step=1, loss=2.0), cause=cause)
    assert effect.causation_id == cause.id
    assert effect.correlation_id == cause.correlation_id
    assert effect.job_id == "j1"


def test_wrong_payload_model_is_refused() -> None:
    with pytest.raises(TypeError):
        Event.create("job.started", MetricsLogged(step=1))


def test_unknown_type_and_newer_version_are_rejected() -> None:
    raw = json.loads(_queued().to_json())
    with pytest.raises(UnknownEventError):
        parse_event(json.dumps({**raw, "type": "job.exploded"}))
    with pytest.raises(UnknownEventError):
        parse_event(json.dumps({**raw, "schema_version": 99}))
    with pytest.raises(InvalidEventError):
        parse_event("{not json")
    with pytest.raises(InvalidEventError):
        parse_event(json.dumps({**raw, "payload": {"spec": "not a dict"}}))


def test_upcaster_runs_for_old_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(events.SCHEMA_VERSIONS, "metrics.logged", 2)
    monkeypatch.setitem(events.UPCASTERS, ("metrics.logged", 1), lambda p: {"step": p["step"], "loss": p.get("old_loss")})
    old = {"id": "x", "type": "metrics.logged", "schema_version": 1, "occurred_at": "2026-01-01T00:00:00Z",
           "payload": {"step": 3, "old_loss": 1.5}}
    e = parse_event(json.dumps(old))
    assert e.schema_version == 2 and e.payload["loss"] == 1.5 and "old_loss" not in e.payload
