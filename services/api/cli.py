"""``trainyard``: the command line. Each service contributes its commands as a typer sub-app.

Every command that is about jobs, versions, the registry, evolution or deployments is a client of the REST
API (``services/api/client.py``), found through ``services/api/connect.py``; only the stack commands and
``registry import|rebuild`` (and ``rebuild``) need the machine's Redis and bucket themselves. Whatever goes
wrong, the user sees one line on stderr and exit status 1, never a traceback (``TRAINYARD_DEBUG=1`` shows it).
"""

from __future__ import annotations

import os
import sys

import typer

from services.api import cli_evolution, cli_jobs, cli_registry
from services.api.cli_common import one_line
from services.api.cli_storage import storage_app
from services.api.cli_versions import versions_app
from services.api.connect import START_HINT
from services.registry import cli as registry_cli
from services.stack import cli as stack_cli

app = typer.Typer(help="Trainyard: queue LoRA jobs, watch the model learn, never lose a model, deploy safely. "
                       "Finds the stack through --api-url/--token, TRAINYARD_API_URL/TRAINYARD_API_TOKEN, "
                       "stack.json in the state directory, or ~/.config/trainyard/config.toml, in that order.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def root() -> None:
    """Trainyard command line."""


def register_api_commands(app: typer.Typer) -> None:
    """The commands that talk to the REST API (``--api-url``, ``--token``; see services/api/connect.py)."""
    app.command("submit")(cli_jobs.submit)
    app.command("jobs")(cli_jobs.jobs)
    app.command("queue")(cli_jobs.queue)
    for action in ("pause", "resume", "stop", "skip", "cancel"):
        app.command(action)(cli_jobs.control_command(action))
    app.command("priority")(cli_jobs.priority)
    app.command("logs")(cli_jobs.logs)
    app.add_typer(cli_evolution.evolution_app, name="evolution")
    app.command("deploy")(cli_evolution.deploy)
    app.command("rollback")(cli_evolution.rollback)
    app.command("deployments")(cli_evolution.deployments)
    app.add_typer(versions_app, name="versions")
    app.add_typer(storage_app, name="storage")
    cli_registry.register(app)


stack_cli.register(app)
register_api_commands(app)
registry_cli.register(cli_registry.registry_app)


def unexpected(exc: BaseException) -> str:
    """The one line for an error no command turned into a message itself."""
    import redis

    if isinstance(exc, redis.exceptions.ConnectionError):
        return f"cannot reach Redis ({one_line(str(exc))}); {START_HINT}"
    if type(exc).__module__.startswith(("urllib3", "minio")) and "connect" in str(exc).lower():
        return f"cannot reach the S3 server ({one_line(str(exc))[:200]}); {START_HINT}"
    return f"error: {type(exc).__name__}: {one_line(str(exc))} (TRAINYARD_DEBUG=1 shows the traceback)"


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("trainyard: interrupted\n")
        raise SystemExit(130) from None
    except Exception as exc:
        if os.environ.get("TRAINYARD_DEBUG") == "1":
            raise
        sys.stderr.write(f"trainyard: {unexpected(exc)}\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
