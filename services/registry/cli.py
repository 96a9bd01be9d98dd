"""Registry commands that need S3 directly: ``trainyard registry rebuild|import|inventory|verify``,
``trainyard backup status``, ``trainyard gc`` and ``trainyard versions list|show|protect|unprotect|trash|
restore|purge|alias|export``. Every command takes ``--json`` for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from services.registry import commands
from services.registry.context import Registry
from services.registry.exceptions import RegistryError
from services.registry.projection import get_aliases, get_version, list_versions
from shared.settings import RegistrySettings, load

console = Console()
err = Console(stderr=True)
registry_app = typer.Typer(help="Versions in S3: rebuild, import, inventory, verify.", no_args_is_help=True)
backup_app = typer.Typer(help="The replica: what is not yet copied.", no_args_is_help=True)
versions_app = typer.Typer(help="List, inspect, protect, trash, restore and export versions.", no_args_is_help=True)
JsonOpt = typer.Option(False, "--json", help="machine-readable output")


def _reg() -> Registry:
    return Registry.open(load(RegistrySettings))


def _emit_json(obj: Any) -> None:
    console.out(json.dumps(asdict(obj) if is_dataclass(obj) else obj, indent=1, default=str))


@contextmanager
def _errors() -> Iterator[None]:
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
    n = n or 0
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


# -- trainyard registry ... -----------------------------------------------------------------------------
@registry_app.command("rebuild")
def rebuild(as_json: bool = JsonOpt) -> None:
    """Reconstruct every version and alias in Redis from the bucket alone (after losing Redis)."""
    with _errors():
        report = commands.rebuild_from_s3(_reg())
    if as_json:
        return _emit_json(report)
    console.print(f"{report.versions} versions and {report.aliases} aliases in the bucket; "
                  f"{report.republished} events re-published")
    for line in report.skipped_unreadable:
        err.print(f"[yellow]unreadable manifest:[/yellow] {escape(line)}")


@registry_app.command("import")
def import_(path: Path = typer.Argument(..., exists=True, file_okay=False),
            name: str = typer.Option(None, help="name (default: the directory name)"),
            note: str = typer.Option("", help="what this is, in your words"),
            kind: str = typer.Option(None, help="base | adapter | merged | dataset (default: detected)"),
            as_json: bool = JsonOpt) -> None:
    """Adopt an existing model, adapter or dataset directory as a version."""
    with _errors(), _bar("hashing", _dir_bytes(path), as_json) as bar:
        manifest = commands.import_dir(_reg(), path, name=name, note=note, kind=kind, progress=bar)
    if as_json:
        return _emit_json(manifest)
    what = "stored" if manifest["created"] else "already stored as"
    console.print(f"{what} [bold]{manifest['version_id']}[/bold] ({manifest['kind']}, {len(manifest['files'])} "
                  f"files, {_size(manifest['size'])}; {_size(manifest['bytes_uploaded'])} uploaded)")


@registry_app.command("inventory")
def inventory(as_json: bool = JsonOpt) -> None:
    """What is stored, its size, lineage, aliases and where each copy lives."""
    with _errors():
        inv = commands.inventory(_reg())
    if as_json:
        return _emit_json(inv)
    table = Table(title=f"{inv['count']} versions, {_size(inv['logical_bytes'])} "
                        f"({_size(inv['stored_bytes'])} stored after dedup)")
    for col in ("version", "kind", "name", "size", "aliases", "lineage", "copies", "state"):
        table.add_column(col)
    for v in inv["versions"]:
        lin = v["lineage"]
        lineage = " ".join(f"{k}={lin[k]}" for k in ("job_id", "step", "parent_version_id") if lin.get(k))
        state = "trashed" if v["trashed_at"] else ("pinned" if v["pinned"] else "")
        table.add_row(v["version_id"], v["kind"], escape(v["name"]), _size(v["size"]), ", ".join(v["aliases"]),
                      escape(lineage), str(len(v["copies"])), state)
    console.print(table)


@registry_app.command("verify")
def verify(repair: bool = typer.Option(False, "--repair", help="restore bad blobs from the replica"),
           as_json: bool = JsonOpt) -> None:
    """Rehash every blob; report missing or corrupt ones (and repair them from the replica)."""
    with _errors(), _bar("verifying", None, as_json) as bar:
        report = commands.verify(_reg(), repair=repair, progress=bar)
    if as_json:
        _emit_json(report)
    else:
        console.print(f"checked {report.checked_blobs} blobs ({_size(report.checked_bytes)})")
        for label, items in (("missing", report.missing), ("corrupt", report.corrupt),
                             ("repaired", report.repaired), ("NOT repaired", report.unrepaired)):
            for item in items:
                console.print(f"  {label}: {item}")
        if report.affected_versions:
            console.print("affected versions: " + ", ".join(report.affected_versions))
    if (report.missing or report.corrupt) and (not repair or report.unrepaired):
        raise typer.Exit(1)


# -- trainyard backup status ---------------------------------------------------------------------------------
@backup_app.command("status")
def backup_status(as_json: bool = JsonOpt) -> None:
    """Which versions the replica does not hold yet."""
    with _errors():
        status = commands.backup_status(_reg())
    if as_json:
        return _emit_json(status)
    console.print(f"replica {status['replica']}: {status['replicated']}/{status['total']} versions copied")
    for p in status["pending"]:
        console.print(f"  not yet replicated: {p['version_id']} {escape(p['name'])} ({_size(p['size'])})")


# -- trainyard gc -----------------------------------------------------------------------------------------
def gc(paths: list[Path] = typer.Argument(..., help="checkpoint or model directories to free"),
       apply: bool = typer.Option(False, "--apply", help="really delete (default: dry run)"),
       as_json: bool = JsonOpt) -> None:
    """Free local directories whose every file is verified in the registry (a dry run unless --apply)."""
    with _errors(), _bar("checking", sum(_dir_bytes(p) for p in paths), as_json) as bar:
        items = commands.gc(_reg(), paths, dry_run=not apply, progress=bar)
    if as_json:
        return _emit_json([asdict(i) for i in items])
    for i in items:
        verb = ("removed" if i.removed else "would remove") if i.safe else "keeping"
        console.print(f"{verb} {escape(i.path)} ({_size(i.bytes)}): {escape(i.reason)}")
    if not apply and any(i.safe for i in items):
        console.print("dry run: pass --apply to delete")


# -- trainyard versions ... -------------------------------------------------------------------------------
@versions_app.command("list")
def versions_list(kind: str = typer.Option(None), job: str = typer.Option(None, "--job"),
                  trashed: bool = typer.Option(False, "--trashed", help="include the trash"),
                  as_json: bool = JsonOpt) -> None:
    """Versions from the versions view (oldest first)."""
    reg = _reg()
    rows = list_versions(reg.r, kind=kind, job_id=job, include_trashed=trashed)
    if as_json:
        return _emit_json(rows)
    table = Table()
    for col in ("version", "kind", "name", "step", "size", "aliases", "protected", "replicas", "status"):
        table.add_column(col)
    for v in rows:
        table.add_row(v["version_id"], v.get("kind") or "", escape(v.get("name") or ""), str(v.get("step") or ""),
                      _size(v.get("size")), ", ".join(v["aliases"]), "yes" if v["protected"] else "",
                      str(len(v.get("replicas", []))), v["status"])
    console.print(table)


@versions_app.command("show")
def versions_show(version_id: str, as_json: bool = JsonOpt) -> None:
    """One version: files, lineage, aliases, protection, replicas."""
    reg = _reg()
    doc = get_version(reg.r, version_id)
    if doc is None:
        err.print(f"[red]no version {escape(version_id)}[/red] (try `trainyard registry rebuild`)")
        raise typer.Exit(1)
    if as_json:
        return _emit_json(doc)
    console.print_json(json.dumps(doc, default=str))


def _simple(fn: Callable[[Registry, str], Any], done: str, doc: str) -> Callable[..., None]:
    def run(version_id: str) -> None:
        with _errors():
            fn(_reg(), version_id)
        console.print(f"{done} {escape(version_id)}")

    run.__doc__ = doc
    return run


versions_app.command("unprotect")(_simple(commands.unprotect, "unprotected", "Remove a version's pin."))
versions_app.command("trash")(_simple(commands.trash, "moved to the trash:",
                                      "Soft-delete a version (refused when protected); restore brings it back."))
versions_app.command("restore")(_simple(commands.restore, "restored", "Take a version out of the trash."))


@versions_app.command("protect")
def versions_protect(version_id: str, reason: str = typer.Option("", help="why it must be kept")) -> None:
    """Pin a version: it cannot be deleted until unprotected."""
    with _errors():
        commands.protect(_reg(), version_id, reason=reason)
    console.print(f"protected {escape(version_id)}")


@versions_app.command("purge")
def versions_purge(version_id: str, force: str = typer.Option(
        None, "--force", help="skip the retention period (repeat the version id to confirm); never the replica check")) -> None:
    """Delete a trashed version for good (needs retention passed and a verified replica copy)."""
    with _errors():
        result = commands.purge(_reg(), version_id, override=force)
    console.print(f"purged {escape(version_id)}: {result.blobs_deleted} blobs, {_size(result.bytes_freed)} freed")


@versions_app.command("alias")
def versions_alias(alias: str, version_id: str) -> None:
    """Point an alias (e.g. ``mine``, ``production:local``) at a version."""
    with _errors():
        commands.move_alias(_reg(), alias, version_id)
    console.print(f"{escape(alias)} -> {escape(version_id)}")


@versions_app.command("export")
def versions_export(version_id: str, dest: Path,
                    merged: bool = typer.Option(False, "--merged", help="merge the adapter into its base"),
                    as_json: bool = JsonOpt) -> None:
    """Write a version to a directory (byte-identical), or merged into its base as safetensors."""
    with _errors():
        reg = _reg()
        out = commands.export(reg, version_id, dest, merged=merged)
    if as_json:
        return _emit_json({"version_id": version_id, "dest": str(out), "merged": merged,
                           "aliases": sorted(a for a, v in get_aliases(reg.r).items() if v == version_id)})
    console.print(f"exported {escape(version_id)} to {escape(str(out))}" + (" (merged)" if merged else ""))


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")
    app.add_typer(backup_app, name="backup")
    app.add_typer(versions_app, name="versions")
    app.command("gc")(gc)
