"""Run the inference server: ``python -m services.inference.main`` (uvicorn on TRAINYARD_INFERENCE_HOST:PORT).

Settings come from ``TRAINYARD_INFERENCE_*`` (see ``shared.settings.InferenceSettings``); the base model is
``TRAINYARD_INFERENCE_BASE_MODEL`` (a local directory or hub id, safetensors only).
"""

from __future__ import annotations

import uvicorn

from services.inference.app import create_app
from shared.runtime import setup_logging
from shared.settings import InferenceSettings, load


def main() -> None:
    settings = load(InferenceSettings)
    if not settings.base_model:
        raise SystemExit("trainyard: TRAINYARD_INFERENCE_BASE_MODEL must name the base model to serve")
    setup_logging("inference")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
