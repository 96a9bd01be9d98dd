"""Recognising a full disk behind the errors checkpoint writers raise (unit level; the drill is
tests/drills/test_diskfull.py on a real size-limited tmpfs)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from services.trainer import diskfull


def raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as exc:  # noqa: BLE001
        return exc


def test_explicit_forms_anywhere_in_the_chain(tmp_path: Path) -> None:
    assert diskfull.is_disk_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert diskfull.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"), tmp_path)
    assert diskfull.is_disk_full(RuntimeError("No space left on device (os error 28)"), tmp_path)
    wrapped = raised_from(RuntimeError("saving failed"), OSError(errno.ENOSPC, "No space left on device"))
    assert diskfull.is_disk_full(wrapped, tmp_path)


@pytest.mark.parametrize("message", ["basic_ios::clear: iostream error",
                                     "[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0"])
def test_vague_torch_errors_count_only_when_space_is_low(tmp_path: Path, message: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    free = diskfull.free_bytes(tmp_path)
    assert free is not None
    exc = RuntimeError(message)
    monkeypatch.setattr(diskfull, "LOW_FREE_BYTES", 0)
    assert not diskfull.is_disk_full(exc, tmp_path, needed_bytes=0)  # plenty of room: something else broke
    assert diskfull.is_disk_full(exc, tmp_path, needed_bytes=free + 2**30)  # less room than one checkpoint


def test_other_errors_are_not_disk_full_and_the_reason_names_path_and_space(tmp_path: Path) -> None:
    huge = 2**60
    assert not diskfull.is_disk_full(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), tmp_path, huge)
    assert not diskfull.is_disk_full(ValueError("bad"), tmp_path, huge)
    why = diskfull.reason(RuntimeError("unexpected pos 64 vs 0"), tmp_path / "job-x" / "checkpoint-8", step=8)
    assert why.startswith(f"disk full while saving at step 8: No space left on device ({tmp_path}/job-x/checkpoint-8, ")
    assert " free; original error: RuntimeError: unexpected pos 64 vs 0)" in why
    assert diskfull.human(5) == "5 B" and diskfull.human(3 * 2**20) == "3.0 MiB"
