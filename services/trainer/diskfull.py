"""Recognising a full disk behind whatever a checkpoint writer raised.

``torch.save`` on a really full filesystem raises ``RuntimeError`` ("basic_ios::clear: iostream error",
"[enforce fail at inline_container.cc] . unexpected pos 64 vs 0", "PytorchStreamWriter failed writing file"),
safetensors raises ``SafetensorError`` ("No space left on device (os error 28)"), plain Python raises
``OSError(ENOSPC)``. Any of those (anywhere in the exception chain), or an I/O-looking error while the
checkpoint filesystem has less free space than one checkpoint (at least 64 MiB), counts as "disk full".
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
MARKERS = ("no space left", "os error 28", "disk quota", "file too large")  # say it outright
# torch's stream writer errors say only that a write failed: a full disk if free space is low
VAGUE = ("basic_ios::clear", "iostream error", "unexpected pos", "failed writing file", "file write failed")
LOW_FREE_BYTES = 64 * 2**20  # an I/O error with less free space than this (or one checkpoint) is a full disk


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 20:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem holding ``path`` (its nearest existing ancestor), None if unknown."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def human(n: int | None) -> str:
    if n is None:
        return "unknown space"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - unreachable


def is_disk_full(exc: BaseException, path: Path, needed_bytes: int = 0) -> bool:
    """True when ``exc`` (raised while writing under ``path``) means the disk is full."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            return True
        text = str(e).lower()
        if any(m in text for m in MARKERS):
            return True
    vague = any(any(m in str(e).lower() for m in VAGUE) for e in chain)
    if vague or any(isinstance(e, OSError) or "SafetensorError" in type(e).__name__ for e in chain):
        free = free_bytes(path)
        return free is not None and free < max(LOW_FREE_BYTES, needed_bytes)
    return False


def reason(exc: BaseException, path: Path, step: int) -> str:
    """``disk full while saving at step N: No space left on device (<path>, <free> free)``."""
    return (f"disk full while saving at step {step}: No space left on device ({path}, "
            f"{human(free_bytes(path))} free; original error: {type(exc).__name__}: {str(exc)[:200]})")
