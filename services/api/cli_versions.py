"""``trainyard versions list|show|protect|unprotect|trash|restore|purge|alias|export``, through the REST API."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from services.api.cli_common import ApiUrl, AsJson, Token, client, console, emit, err, fail, run, size
from services.api.client import ApiClient

versions_app = typer.Typer(help="List, inspect, protect, trash, restore, purge and export versions.",
                           no_args_is_help=True)
VersionId = Annotated[str, typer.Argument(help="version id")]


@versions_app.command("list")
def versions_list(kind: Annotated[str | None, typer.Option(help="base | adapter | merged | dataset")] = None,
                  job: Annotated[str | None, typer.Option("--job", help="only this job's versions")] = None,
                  trashed: Annotated[bool, typer.Option("--trashed", help="include the trash")] = False,
                  api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Versions from the versions view (oldest first)."""
    rows = run(lambda: client(api_url, token).versions(kind=kind, job_id=job, include_trashed=trashed))["data"]
    if emit(rows, as_json):
        return
    table = Table("version", "kind", "name", "step", "size", "aliases", "protected", "replicas", "status")
    for v in rows:
        table.add_row(Text(v["version_id"]), v.get("kind") or "", Text(v.get("name") or ""), str(v.get("step") or ""),
                      size(v.get("size")), Text(", ".join(v.get("aliases") or [])), "yes" if v.get("protected") else "",
                      str(len(v.get("replicas") or [])), str(v.get("status") or ""))
    console.print(table)


@versions_app.command("show")
def versions_show(version_id: VersionId, api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """One version: files, lineage, aliases, protection, replicas (and its manifest)."""
    doc = run(lambda: client(api_url, token).version(version_id))
    if not emit(doc, as_json):
        console.print_json(json.dumps(doc, default=str))


def _action(name: str, done: str, doc: str) -> Any:
    def command(version_id: VersionId, api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
        res = run(lambda: getattr(client(api_url, token), name)(version_id))
        if not emit(res, as_json):
            result = res.get("result")
            console.print(Text(f"{done} {version_id}" + (f" ({result})" if isinstance(result, str) else "")))

    command.__doc__ = doc
    return command


versions_app.command("unprotect")(_action("unprotect", "unprotected", "Remove a version's pin."))
versions_app.command("trash")(_action("trash", "moved to the trash:",
                                      "Soft-delete a version (refused when protected); restore brings it back."))
versions_app.command("restore")(_action("restore", "restored", "Take a version out of the trash."))


@versions_app.command("protect")
def versions_protect(version_id: VersionId,
                     reason: Annotated[str, typer.Option(help="why it must be kept")] = "",
                     api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Pin a version: it cannot be deleted until unprotected."""
    res = run(lambda: client(api_url, token).protect(version_id, reason))
    if not emit(res, as_json):
        console.print(Text(f"protected {version_id}"))


@versions_app.command("purge")
def versions_purge(version_id: VersionId,
                   force: Annotated[str | None, typer.Option(
                       "--force", help="skip the retention period: repeat the version id to confirm")] = None,
                   api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Delete a trashed version for good (needs retention passed and a verified replica copy)."""
    res = run(lambda: client(api_url, token).purge(version_id, force))
    if not emit(res, as_json):
        console.print(Text(f"purged {version_id}: {res['blobs_deleted']} blobs, {size(res['bytes_freed'])} freed"))


@versions_app.command("alias")
def versions_alias(alias: Annotated[str, typer.Argument(help="e.g. mine, production:local")], version_id: VersionId,
                   api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Point an alias (e.g. ``mine``, ``production:local``) at a version."""
    res = run(lambda: client(api_url, token).move_alias(alias, version_id))
    if not emit(res, as_json):
        console.print(Text(f"{alias} -> {version_id}"))


@versions_app.command("export")
def versions_export(version_id: VersionId, dest: Annotated[Path, typer.Argument(help="a new or empty directory")],
                    merged: Annotated[bool, typer.Option("--merged", help="merge the adapter into its base")] = False,
                    api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Write a version to a directory (byte-identical, every sha256 checked), or merged into its base as
    safetensors. The files come straight from the object store through the API's download links."""
    dest = dest.expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise fail(f"{dest} exists and is not empty: export into a new directory")
    api = client(api_url, token)
    version = run(lambda: api.version(version_id))
    if not merged:
        run(lambda: fetch_version(api, version_id, dest, quiet=as_json))
    else:
        run(lambda: _export_merged(api, version, dest, as_json))
    if not emit({"version_id": version_id, "dest": str(dest), "merged": merged,
                 "aliases": sorted(version.get("aliases") or [])}, as_json):
        console.print(Text(f"exported {version_id} to {dest}" + (" (merged)" if merged else "")))


def fetch_version(api: ApiClient, version_id: str, dest: Path, quiet: bool = False) -> Path:
    """Download every file of a version into ``dest`` (staged beside it, renamed when all hashes match)."""
    from shared import storage

    links = api.download_links(version_id)["files"]
    pickled = [f["path"] for f in links if storage.is_pickled_weights(f["path"])]
    if pickled:
        raise fail(f"{version_id} holds pickled weights {pickled}; refusing to export them")
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with Progress(TextColumn("downloading {task.description}"), BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task(version_id, total=sum(int(f.get("size") or 0) for f in links))
        for f in links:
            rel = Path(f["path"])
            if rel.is_absolute() or ".." in rel.parts:
                raise fail(f"{version_id} names an unsafe file path {f['path']!r}; refusing it")
            out = staging / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            api.download(f["url"], out, lambda n: bar.advance(task, n))
            if storage.sha256_file(out) != f["sha256"]:
                shutil.rmtree(staging, ignore_errors=True)
                raise fail(f"{f['path']} of {version_id} does not match its sha256 after download; nothing written")
    if dest.exists():
        dest.rmdir()
    staging.rename(dest)
    return dest


def _export_merged(api: ApiClient, version: dict[str, Any], dest: Path, quiet: bool) -> None:
    from services.registry.commands import merge_adapter  # torch and peft: only for --merged

    manifest = version.get("manifest") or {}
    if manifest.get("kind", version.get("kind")) != "adapter":
        raise fail(f"--merged needs an adapter version; {version['version_id']} is a {version.get('kind')}")
    lineage = manifest.get("lineage") or {}
    with tempfile.TemporaryDirectory() as tmp:
        adapter = fetch_version(api, version["version_id"], Path(tmp) / "adapter", quiet)
        config = adapter / "adapter_config.json"
        named = [lineage.get("base_model")]
        if config.is_file():
            named.append(json.loads(config.read_text()).get("base_model_name_or_path"))
        base_vid = lineage.get("base_version_id") or _stored_base(api, [n for n in named if n])
        local = next((Path(n) for n in named if n and Path(n).is_dir()), None)
        if base_vid:
            base = fetch_version(api, base_vid, Path(tmp) / "base", quiet)
        elif local is not None:
            base = local
        else:
            raise fail(f"base model {named[0] or named[-1]!r} of {version['version_id']} is neither a stored "
                       "base version nor a local directory: `trainyard registry import` it first")
        merge_adapter(base, adapter, dest)


def _stored_base(api: ApiClient, names: list[str]) -> str | None:
    """The stored base version named like the adapter's base model (by name or imported path)."""
    keys = set(names) | {str(Path(n).expanduser().resolve()) for n in names}
    for v in reversed(api.versions(kind="base")["data"]):
        if keys & {v.get("name"), (v.get("lineage") or {}).get("source_path")}:
            return v["version_id"]
    return None
