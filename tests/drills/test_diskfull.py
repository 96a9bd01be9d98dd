"""Disk full drill: the checkpoint directory is a small size-limited filesystem (tmpfs). Once it is filled up,
the next checkpoint save hits ENOSPC: the job pauses with a clear reason, no partial checkpoint is left or
published, and after space comes back ``resume`` continues from the last complete checkpoint to the end.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.trainer import checkpoints, control, jobstore
from services.trainer.submit import submit_job
from shared import streams
from shared.modeling import demo_dataset_path
from shared.storage import s3_client
from tests.support.trainer import events, make_settings, start_worker, stop_worker, tiny_spec, wait_for

SIZE_MB = 48


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "ckpt"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0700", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave_bytes: int) -> Path:
    """Write a ballast file until only ``leave_bytes`` are free on ``mnt``."""
    ballast = mnt / "ballast.bin"
    chunk = b"\0" * (1 << 20)
    with ballast.open("wb") as f:
        while True:
            st = os.statvfs(mnt)
            free = st.f_bavail * st.f_frsize
            if free <= leave_bytes:
                break
            try:
                f.write(chunk[: min(len(chunk), free - leave_bytes)])
                f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return ballast


@pytest.mark.slow
def test_disk_full_pauses_with_a_clear_reason_and_resumes(settings_kwargs: dict, tmp_path: Path, r: redis.Redis,
                                                          tiny_model: Path, small_fs: Path) -> None:
    settings = make_settings(settings_kwargs, tmp_path, checkpoints_dir=small_fs)
    s3 = s3_client(settings)
    spec = tiny_spec(tiny_model, max_steps=24, checkpoint_every=4, batch_size=4, max_seq_len=64)
    job_id = submit_job(settings, r, s3, demo_dataset_path(), spec=spec)
    proc = start_worker(settings, tmp_path / "worker.log")
    try:
        first = wait_for(r, streams.CHECKPOINTS, lambda e: e.job_id == job_id, timeout=300, proc=proc)
        size = sum(f["size"] for f in first.payload["files"])
        ballast = fill(small_fs, leave_bytes=size // 3)  # room for a third of the next checkpoint
        paused = wait_for(r, streams.JOBS, lambda e: e.job_id == job_id and e.type in ("job.paused", "job.failed",
                                                                                      "job.completed"),
                          timeout=300, proc=proc)
        assert paused.type == "job.paused", paused
        reason = paused.payload["reason"]
        assert reason.startswith(f"disk full while saving at step {paused.payload['step']}"), reason
        assert "No space left on device" in reason and "resume continues from checkpoint-" in reason, reason
        assert jobstore.load(r, job_id)["state"] == "paused"
        ckpt_dir = small_fs / job_id
        assert all((p / checkpoints.SPEC_FILE).is_file() for p in ckpt_dir.iterdir()), "a partial checkpoint remains"
        saved_before = [e.payload["step"] for e in events(r, streams.CHECKPOINTS, job_id)]
        assert saved_before and saved_before[-1] < 24
        # space comes back; resume continues from the last complete checkpoint and finishes
        ballast.unlink()
        assert control.resume(settings, r, job_id) == "queued"
        wait_for(r, streams.JOBS, lambda e: e.job_id == job_id and e.type == "job.completed", timeout=300, proc=proc)
    finally:
        stop_worker(proc)
    starts = [e.payload["resumed_from_step"] for e in events(r, streams.JOBS, job_id) if e.type == "job.started"]
    assert starts == [0, saved_before[-1]], starts
    steps = [e.payload["step"] for e in events(r, streams.CHECKPOINTS, job_id)]
    assert steps == sorted(set(steps)) and steps[-1] == 24, steps  # no checkpoint published twice or lost
    final = Path(events(r, streams.CHECKPOINTS, job_id)[-1].payload["checkpoint_dir"])
    assert (final / checkpoints.SPEC_FILE).is_file() and (final / "adapter_model.safetensors").is_file()
