"""``trainyard registry verify|inventory``, ``trainyard backup status`` and ``trainyard gc``, through the REST
API (``registry import`` and ``registry rebuild`` need the bucket itself: services/registry/cli.py)."""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from services.api.cli_common import ApiUrl, AsJson, Token, client, console, emit, err, run, size

registry_app = typer.Typer(help="Versions in S3: verify, inventory (REST); import, rebuild (the bucket itself).",
                           no_args_is_help=True)
backup_app = typer.Typer(help="The replica: what is not yet copied.", no_args_is_help=True)


@registry_app.command("inventory")
def inventory(api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """What is stored, its size, lineage, aliases and where each copy lives."""
    inv = run(lambda: client(api_url, token).inventory())
    if emit(inv, as_json):
        return
    table = Table("version", "kind", "name", "size", "aliases", "lineage", "copies", "state",
                  title=f"{inv['count']} versions, {size(inv['logical_bytes'])} "
                        f"({size(inv['stored_bytes'])} stored after dedup)")
    for v in inv["versions"]:
        lin = v.get("lineage") or {}
        lineage = " ".join(f"{k}={lin[k]}" for k in ("job_id", "step", "parent_version_id") if lin.get(k))
        state = "trashed" if v.get("trashed_at") else ("pinned" if v.get("pinned") else "")
        table.add_row(Text(v["version_id"]), v["kind"], Text(v.get("name") or ""), size(v.get("size")),
                      Text(", ".join(v.get("aliases") or [])), Text(lineage), str(len(v.get("copies") or [])), state)
    console.print(table)


@registry_app.command("verify")
def verify(repair: Annotated[bool, typer.Option("--repair", help="restore bad blobs from the replica")] = False,
           api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Rehash every blob; report missing or corrupt ones (and repair them from the replica)."""
    api = client(api_url, token)
    with err.status("verifying every blob", spinner="dots") if not as_json else nullcontext():
        report = run(lambda: api.verify(repair=repair))
    if not emit(report, as_json):
        console.print(f"checked {report['checked_blobs']} blobs ({size(report['checked_bytes'])})")
        for label, key in (("missing", "missing"), ("corrupt", "corrupt"), ("repaired", "repaired"),
                           ("NOT repaired", "unrepaired")):
            for item in report.get(key) or []:
                console.print(Text(f"  {label}: {item}"))
        if report.get("affected_versions"):
            console.print(Text("affected versions: " + ", ".join(report["affected_versions"])))
    if (report.get("missing") or report.get("corrupt")) and (not repair or report.get("unrepaired")):
        raise typer.Exit(1)


@backup_app.command("status")
def backup_status(api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Which versions the replica does not hold yet."""
    status = run(lambda: client(api_url, token).backup_status())
    if emit(status, as_json):
        return
    console.print(Text(status.get("summary") or
                       f"replica {status['replica']}: {status['replicated']}/{status['total']} versions copied"))
    for warning in status.get("warnings") or []:
        err.print(Text(f"warning: {warning}", style="yellow"))
    for p in status["pending"]:
        console.print(Text(f"  not yet replicated: {p['version_id']} {p.get('name') or ''} ({size(p.get('size'))})"))


def gc(paths: Annotated[list[Path], typer.Argument(help="checkpoint or model directories to free")],
       apply: Annotated[bool, typer.Option("--apply", help="really delete (default: dry run)")] = False,
       api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Free local directories whose every file is verified in the registry and its replica (a dry run unless
    --apply). The folders are hashed here; the API says whether the bucket holds every file."""
    from services.registry.commands import describe

    api = client(api_url, token)
    listed = [describe(p) for p in paths]
    asked = [d for d in listed if isinstance(d, dict)]
    verdicts = iter(run(lambda: api.gc_check(asked)) if asked else [])
    items: list[dict[str, Any]] = [asdict(d) if is_dataclass(d) else {**next(verdicts), "removed": False}
                                   for d in listed]
    for item in items:
        if apply and item["safe"]:
            shutil.rmtree(item["path"])
            item["removed"] = True
    if emit(items, as_json):
        return
    for i in items:
        verb = ("removed" if i["removed"] else "would remove") if i["safe"] else "keeping"
        console.print(Text(f"{verb} {i['path']} ({size(i['bytes'])}): {i['reason']}"))
    if not apply and any(i["safe"] for i in items):
        console.print("dry run: pass --apply to delete")


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")
    app.add_typer(backup_app, name="backup")
    app.command("gc")(gc)
