"""What ``trainyard up`` records in ``<state_dir>/stack.json`` (the processes, URLs and token), and whether a
recorded process is still alive."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["ProcInfo", "StackState", "alive"]


@dataclass
class ProcInfo:
    name: str
    pid: int
    port: int | None = None
    log: str = ""


@dataclass
class StackState:
    state_dir: str
    redis_url: str
    s3_endpoint: str
    api_url: str
    inference_url: str
    dashboard_url: str
    inbox_dir: str = ""
    control_dir: str = ""
    procs: list[ProcInfo] = field(default_factory=list)
    api_token: str = ""  # so the CLI on this machine finds the API and its token (services/api/connect.py)

    @classmethod
    def load(cls, state_dir: Path) -> StackState | None:
        path = state_dir / "stack.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        data["procs"] = [ProcInfo(**p) for p in data.get("procs", [])]
        return cls(**data)

    def save(self) -> None:
        path = Path(self.state_dir) / "stack.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the API token
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(asdict(self), indent=1))

    def public(self) -> dict:
        """What ``trainyard up --json`` prints: the URLs, paths and processes (never the token)."""
        return {k: v for k, v in asdict(self).items() if k != "api_token"}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
