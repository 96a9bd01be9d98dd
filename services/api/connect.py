"""Where the CLI finds the running stack: the REST API's URL and token, and (for the few commands that need
the bucket directly) Redis and S3.

Each setting is taken from the first of these that has it (docs/contracts.md, "Finding the stack"):

1. the command line (``--api-url``, ``--token``);
2. the environment (``TRAINYARD_API_URL``, ``TRAINYARD_API_TOKEN``);
3. ``stack.json`` in the state directory (``--state-dir``, else ``TRAINYARD_STATE_DIR``, else ``.state``),
   written by ``trainyard up``;
4. the config file: ``TRAINYARD_CONFIG``, else ``$XDG_CONFIG_HOME/trainyard/config.toml``
   (``~/.config/trainyard/config.toml``), with ``api_url`` and ``api_token`` keys;
5. the default ``http://127.0.0.1:8080`` and no token.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
START_HINT = "start the stack with `trainyard up`"


class ConfigError(Exception):
    """A config or state file that cannot be read; the message is one line."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    token: str | None
    source: str  # where the URL came from, named in error messages

    def hint(self) -> str:
        """What to run when this endpoint does not answer."""
        if self.source.startswith("stack.json") or self.source == "the default":
            return START_HINT
        return f"check {self.source}, or {START_HINT}"


def state_dir(explicit: Path | None = None) -> Path:
    return explicit or Path(os.environ.get("TRAINYARD_STATE_DIR") or ".state")


def config_path() -> Path:
    explicit = os.environ.get("TRAINYARD_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "trainyard" / "config.toml"


def read_stack_json(directory: Path | None = None) -> dict[str, Any] | None:
    """``stack.json`` of the stack started from ``directory`` (None when there is none)."""
    path = state_dir(directory) / "stack.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}); `trainyard down` and `trainyard up` rewrite it") from None
    return data if isinstance(data, dict) else None


def read_config() -> dict[str, Any]:
    path = config_path()
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        if os.environ.get("TRAINYARD_CONFIG"):
            raise ConfigError(f"TRAINYARD_CONFIG names {path}, which does not exist") from None
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the config file {path} ({exc})") from None


def _first(*candidates: tuple[Any, str]) -> tuple[Any, str]:
    for value, source in candidates:
        if value:
            return value, source
    return None, ""


def resolve(api_url: str | None = None, token: str | None = None, directory: Path | None = None) -> Endpoint:
    """The API endpoint, each setting from the first source that has it (see the module docstring)."""
    stack = read_stack_json(directory) or {}
    stack_src = f"stack.json in {state_dir(directory)}"
    config = read_config()
    config_src = f"the config file {config_path()}"
    url, source = _first((api_url, "--api-url"), (os.environ.get("TRAINYARD_API_URL"), "TRAINYARD_API_URL"),
                         (stack.get("api_url"), stack_src), (config.get("api_url"), config_src),
                         (DEFAULT_URL, "the default"))
    tok, _ = _first((token, ""), (os.environ.get("TRAINYARD_API_TOKEN"), ""), (stack.get("api_token"), ""),
                    (config.get("api_token"), ""))
    return Endpoint(url=str(url).rstrip("/"), token=tok, source=source)


def direct_env(directory: Path | None = None) -> dict[str, str]:
    """For commands that need Redis and S3 themselves: ``TRAINYARD_REDIS_URL``, ``TRAINYARD_S3_ENDPOINT`` and
    ``TRAINYARD_STATE_DIR`` from ``stack.json`` where the environment does not set them."""
    stack = read_stack_json(directory) or {}
    found = {"TRAINYARD_REDIS_URL": stack.get("redis_url"), "TRAINYARD_S3_ENDPOINT": stack.get("s3_endpoint"),
             "TRAINYARD_STATE_DIR": stack.get("state_dir")}
    return {k: str(v) for k, v in found.items() if v and not os.environ.get(k)}
