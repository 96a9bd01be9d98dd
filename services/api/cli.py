"""``trainyard``: the command line. Each service contributes its commands as a typer sub-app."""

from __future__ import annotations

import typer

from services.api import cli_evolution, cli_jobs
from services.registry import cli as registry_cli
from services.stack import api as stack_api

app = typer.Typer(help="Trainyard: queue LoRA jobs, watch the model learn, never lose a model, deploy safely.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def root() -> None:
    """Trainyard command line."""


stack_api.register(app)
registry_cli.register(app)


def register_api_commands(app: typer.Typer) -> None:
    """The commands that talk to the REST API (``--api-url``/``TRAINYARD_API_URL``, ``--token``)."""
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


register_api_commands(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
