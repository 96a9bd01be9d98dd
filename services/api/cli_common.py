"""What every CLI command shares: the API options, the client, ``--json`` output and one-line errors."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich import filesize
from rich.console import Console

from services.api.client import ApiClient
from services.api.connect import ConfigError
from services.api.exceptions import ApiClientError, ApiUnreachable

console = Console()
err = Console(stderr=True)

ApiUrl = Annotated[str | None, typer.Option(
    "--api-url", help="REST API base URL [default: TRAINYARD_API_URL, stack.json, config file, "
                      "http://127.0.0.1:8080]", show_default=False)]
Token = Annotated[str | None, typer.Option(
    "--token", help="API bearer token [default: TRAINYARD_API_TOKEN, stack.json, config file]",
    show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable JSON output")]


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def fail(message: str, prefix: str = "error: ") -> typer.Exit:
    typer.echo(f"trainyard: {prefix}{one_line(message)}", err=True)  # one line, never wrapped
    return typer.Exit(1)


def client(api_url: str | None = None, token: str | None = None) -> ApiClient:
    try:
        return ApiClient.discover(api_url, token)
    except ConfigError as exc:
        raise fail(str(exc)) from None


def run(fn: Any) -> Any:
    """``fn()``; an API error or an unreachable API becomes one line on stderr and exit status 1."""
    try:
        return fn()
    except ApiUnreachable as exc:
        raise fail(str(exc), prefix="") from None
    except ApiClientError as exc:
        raise fail(str(exc)) from None


def emit(data: Any, as_json: bool) -> bool:
    """Print ``data`` as JSON when ``as_json``; says whether it did (so the caller skips its human output)."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    return as_json


def size(n: int | None) -> str:
    return filesize.decimal(n or 0)
