"""Inbox and control-file edge cases: symlinks, files still being written, unknown job ids, odd names."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import redis

from services.trainer import jobstore
from services.trainer.controlfiles import ControlFileWatcher
from services.trainer.inbox import InboxWatcher
from shared import streams
from shared.bus import read_all
from shared.settings import TrainerSettings
from shared.storage import s3_client

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
LINE = json.dumps({"prompt": "Capital of France?", "completion": "Paris"}) + "\n"


def trainer_settings(settings_kwargs: dict, tmp_path: Path, **extra: object) -> TrainerSettings:
    return TrainerSettings(**settings_kwargs, inbox_dir=tmp_path / "inbox", control_dir=tmp_path / "control",
                           checkpoints_dir=tmp_path / "ckpt", **{"inbox_stable_s": 0.0, **extra})


def test_symlink_in_inbox_is_refused_and_its_target_untouched(settings_kwargs: dict, tmp_path: Path,
                                                               r: redis.Redis) -> None:
    settings = trainer_settings(settings_kwargs, tmp_path)
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    outside = tmp_path / "private" / "secret.jsonl"
    outside.parent.mkdir()
    outside.write_bytes((BAD / "symlink_target.jsonl").read_bytes())
    before = outside.read_bytes()
    (inbox / "link.jsonl").symlink_to(outside)
    watcher = InboxWatcher(settings, r, s3_client(settings))
    watcher.scan_once()
    queued = watcher.scan_once()
    assert outside.read_bytes() == before and outside.exists()
    assert queued == [] and not jobstore.all_ids(r), "a symlinked dataset was queued"
    report = (inbox / "rejected" / "link.errors.txt").read_text()
    assert "symbolic link" in report


def test_file_still_being_written_is_not_taken_until_stable(settings_kwargs: dict, tmp_path: Path,
                                                            r: redis.Redis) -> None:
    settings = trainer_settings(settings_kwargs, tmp_path, inbox_stable_s=0.2)
    inbox = settings.inbox_dir
    inbox.mkdir(parents=True)
    growing = inbox / "growing.jsonl"
    part = inbox / "copying.jsonl.part"
    part.write_text(LINE * 3)
    watcher = InboxWatcher(settings, r, s3_client(settings))
    with growing.open("w") as f:
        for i in range(6):
            f.write(LINE)
            f.flush()
            os.utime(growing, (i + 1.0, i + 1.0))  # every write moves the mtime
            assert watcher.scan_once() == [], "taken while still being written"
    assert growing.exists() and part.exists()
    assert not jobstore.all_ids(r)
    # once it stops changing for inbox_stable_s it is taken whole; the .part file is never taken
    jobs: list[str] = []
    for _ in range(20):
        jobs += watcher.scan_once()
        if jobs:
            break
        time.sleep(0.1)
    assert len(jobs) == 1 and not growing.exists()
    assert jobstore.load(r, jobs[0])["dataset"]["n_examples"] == 6
    assert part.exists() and part.read_text() == LINE * 3


def test_control_file_with_an_unknown_job_id(settings_kwargs: dict, tmp_path: Path, r: redis.Redis) -> None:
    settings = trainer_settings(settings_kwargs, tmp_path)
    settings.control_dir.mkdir(parents=True)
    (settings.control_dir / "pause").write_text("job-doesnotexist\n")
    (settings.control_dir / "notes.txt").write_text("keep me")
    records = ControlFileWatcher(settings, r).scan_once()
    assert records == [{"at": records[0]["at"], "action": "pause", "job_id": "job-doesnotexist", "ok": False,
                        "outcome": "no job 'job-doesnotexist'"}]
    logged = [json.loads(x) for x in (settings.control_dir / "outcomes.log").read_text().splitlines()]
    assert logged == records
    assert not (settings.control_dir / "pause").exists()  # consumed, not retried forever
    assert (settings.control_dir / "notes.txt").read_text() == "keep me"
    assert not [e for _, e in read_all(r, streams.JOBS)], "nothing published for an unknown job"


@pytest.mark.parametrize("action", ["resume", "stop", "skip"])
def test_control_file_with_nothing_to_act_on(settings_kwargs: dict, tmp_path: Path, r: redis.Redis,
                                             action: str) -> None:
    settings = trainer_settings(settings_kwargs, tmp_path)
    settings.control_dir.mkdir(parents=True)
    (settings.control_dir / action).write_text("")
    (record,) = ControlFileWatcher(settings, r).scan_once()
    assert record["ok"] is False
    expected = ("no paused, preempted or stopped job to resume" if action == "resume"
                else f"no job to {action}: none running")
    assert record["outcome"] == expected


# hidden files are left alone; so is a spec with no dataset, until inbox_orphan_s (other files: see
# tests/trainer/test_inbox_formats.py, which rejects them with a reason)
@pytest.mark.parametrize("name", ["..jsonl", ".hidden.jsonl", "data.json"])
def test_names_that_are_not_datasets_are_left_alone(settings_kwargs: dict, tmp_path: Path, r: redis.Redis,
                                                    name: str) -> None:
    settings = trainer_settings(settings_kwargs, tmp_path)
    settings.inbox_dir.mkdir(parents=True)
    (settings.inbox_dir / name).write_text(LINE)
    watcher = InboxWatcher(settings, r, s3_client(settings))
    assert watcher.scan_once() == [] and watcher.scan_once() == []
    assert (settings.inbox_dir / name).read_text() == LINE
    assert not jobstore.all_ids(r)
