"""``trainyard``: the command line. Each service contributes its commands as a typer sub-app."""

from __future__ import annotations

import typer

from services.registry import cli as registry_cli
from services.stack import cli as stack_cli

app = typer.Typer(help="Trainyard: queue LoRA jobs, watch the model learn, never lose a model, deploy safely.",
                  no_args_is_help=True, pretty_exceptions_enable=False)



@app.callback()
def root() -> None:
    """Trainyard command line."""


stack_cli.register(app)
registry_cli.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
