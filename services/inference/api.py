"""The inference service's public face: its app factory and its exceptions.

Other services reach a running inference server over HTTP only (the deployer's ``target.py``); the app
factory is here for in-process serving (the deployer demo, the tests). Everything else in
``services.inference`` is private to it (enforced by import-linter, ``make lint``).
"""

from __future__ import annotations

from services.inference.app import create_app
from services.inference.exceptions import InferenceError

__all__ = ["InferenceError", "create_app"]
