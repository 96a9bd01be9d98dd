"""The stack's public face: the embedded servers, the supervisor, every projection, the demo and the CLI
sub-app (``register``), for the root CLI, the tests and the benchmarks.

Everything else in ``services.stack`` is private to it (enforced by import-linter, ``make lint``).
"""

from __future__ import annotations

from services.stack.cli import register
from services.stack.projections import all_projections
from services.stack.servers import RedisServer, S3Server, ServerError, free_port, port_open
from services.stack.supervisor import Stack, down, status

__all__ = ["RedisServer", "S3Server", "ServerError", "Stack", "all_projections", "down", "free_port", "port_open",
           "register", "status"]
