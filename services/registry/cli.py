"""The registry commands that need the bucket and Redis themselves, so they run on a machine that reaches
both (the stack's own, usually): ``trainyard registry import DIR`` and ``trainyard registry rebuild``. Redis
and S3 come from the environment (``TRAINYARD_REDIS_URL``, ``TRAINYARD_S3_*``), else from ``stack.json`` in
the state directory. Everything else about versions goes through the REST API (services/api/cli_*.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import typer
from rich import filesize
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

console = Console()
err = Console(stderr=True)
JsonOpt = typer.Option(False, "--json", help="machine-readable output")
DIRECT = "Needs the bucket and Redis directly (run it where the stack runs; found via stack.json)."


def _reg() -> Any:
    from services.api.connect import direct_env
    from services.registry.context import Registry
    from shared.settings import RegistrySettings, load

    os.environ.update(direct_env())
    return Registry.open(load(RegistrySettings))


def _emit_json(obj: Any) -> None:
    console.out(json.dumps(asdict(obj) if is_dataclass(obj) else obj, indent=1, default=str))


@contextmanager
def _errors() -> Iterator[None]:
    from services.registry.exceptions import RegistryError

    try:
        yield
    except RegistryError as exc:
        err.print(f"[red]refused:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None


@contextmanager
def _bar(description: str, total: int | None, quiet: bool) -> Iterator[Callable[[str, int], None]]:
    if quiet:
        yield lambda _what, _n: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda what, n: progress.update(task, advance=n, description=f"{description} {escape(what[:40])}")


def _size(n: int | None) -> str:
    return filesize.decimal(n or 0)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def rebuild(as_json: bool = JsonOpt) -> None:
    """Reconstruct every version and alias in Redis from the bucket alone (after losing Redis)."""
    from services.registry import commands

    with _errors():
        report = commands.rebuild_from_s3(_reg())
    if as_json:
        return _emit_json(report)
    console.print(f"{report.versions} versions and {report.aliases} aliases in the bucket; "
                  f"{report.republished} events re-published")
    for line in report.skipped_unreadable:
        err.print(f"[yellow]unreadable manifest:[/yellow] {escape(line)}")


def import_(path: Path = typer.Argument(..., exists=True, file_okay=False),
            name: str = typer.Option(None, help="name (default: the directory name)"),
            note: str = typer.Option("", help="what this is, in your words"),
            kind: str = typer.Option(None, help="base | adapter | merged | dataset (default: detected)"),
            as_json: bool = JsonOpt) -> None:
    """Adopt an existing model, adapter or dataset directory as a version."""
    from services.registry import commands

    reg = _reg()  # reach Redis and the bucket before hashing anything
    with _errors(), _bar("hashing", _dir_bytes(path), as_json) as bar:
        manifest = commands.import_dir(reg, path, name=name, note=note, kind=kind, progress=bar)
    if as_json:
        return _emit_json(manifest)
    what = "stored" if manifest["created"] else "already stored as"
    console.print(f"{what} [bold]{manifest['version_id']}[/bold] ({manifest['kind']}, {len(manifest['files'])} "
                  f"files, {_size(manifest['size'])}; {_size(manifest['bytes_uploaded'])} uploaded)")


rebuild.__doc__ = f"{rebuild.__doc__} {DIRECT}"
import_.__doc__ = f"{import_.__doc__} {DIRECT}"


def register(registry_app: typer.Typer) -> None:
    """Add ``import`` and ``rebuild`` to the ``registry`` sub-app."""
    registry_app.command("rebuild")(rebuild)
    registry_app.command("import")(import_)
