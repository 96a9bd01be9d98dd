"""One-shot container job: make sure the base model directory exists before the model services start.

``TRAINYARD_INFERENCE_BASE_MODEL`` (default ``/models/tiny``) names the directory. If it already holds a
model (``config.json``), nothing happens: that is the case for a real Qwen3-0.6B directory mounted at
/models. If it is missing and ``TRAINYARD_MODEL_INIT`` is ``tiny`` (the default), the tiny random Qwen3 of
``shared.modeling.build_tiny_model`` is written there for demos and tests. Otherwise it exits non-zero with
a line saying what to mount. No weights are downloaded.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("model-init")


def unreadable(target: Path) -> list[Path]:
    """Files of the model directory this (non-root) user cannot read, e.g. 0600 files owned by root."""
    return [p for p in sorted(target.rglob("*")) if p.is_file() and not os.access(p, os.R_OK)]


def ensure_model(target: Path, mode: str) -> str:
    if (target / "config.json").is_file():
        blocked = unreadable(target)
        if blocked:
            names = ", ".join(str(p) for p in blocked[:3]) + (" ..." if len(blocked) > 3 else "")
            raise SystemExit(f"model-init: {len(blocked)} file(s) of {target} not readable by uid {os.getuid()}: "
                             f"{names}; on the host: chmod -R a+rX <your model dir>")
        return f"base model present at {target}"
    if mode != "tiny":
        raise SystemExit(f"model-init: no model at {target} (config.json missing): mount your model directory "
                         f"there (TRAINYARD_MODELS_DIR) or set TRAINYARD_MODEL_INIT=tiny for the demo model")
    from shared.modeling import build_tiny_model

    partial = target.with_name(target.name + ".partial")
    build_tiny_model(partial)
    partial.rename(target)  # atomic: a half-written model is never taken for a whole one
    return f"tiny demo model written to {target}"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s model-init %(levelname)s: %(message)s")
    target = Path(os.environ.get("TRAINYARD_INFERENCE_BASE_MODEL") or "/models/tiny")
    if not target.is_absolute():
        raise SystemExit(f"model-init: TRAINYARD_INFERENCE_BASE_MODEL must be an absolute path, got {target}")
    log.info(ensure_model(target, os.environ.get("TRAINYARD_MODEL_INIT", "tiny")))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - one clear line for `docker compose logs`
        sys.stderr.write(f"model-init: {type(exc).__name__}: {exc}\n")
        raise SystemExit(1) from None
