"""``trainyard storage plan|apply``: the bucket budget (TRAINYARD_BUCKET_BUDGET_GB), through the REST API."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from services.api.cli_common import ApiUrl, AsJson, Token, client, console, emit, run, size

storage_app = typer.Typer(help="The bucket budget: what a thinning would remove, and why the rest stays.",
                          no_args_is_help=True)


def _show(plan: dict[str, Any], all_rows: bool) -> None:
    table = Table(title=plan["summary"])
    table.add_column("version", no_wrap=True)
    for col in ("job", "step", "size", ""):
        table.add_column(col)
    table.add_column("why", overflow="fold")
    for d in plan["decisions"]:
        if d["remove"] or all_rows:
            table.add_row(Text(d["version_id"]), Text(d["job_id"] or ""), str(d["step"] or ""), size(d["size"]),
                          "remove" if d["remove"] else "keep", Text("; ".join(d["reasons"])))
    console.print(table)


@storage_app.command("plan")
def plan(all_rows: bool = typer.Option(False, "--all", help="also list every kept version with its reasons"),
         api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """What would go to bring the primary bucket within its budget, with sizes and reasons (changes nothing)."""
    result = run(lambda: client(api_url, token).storage_plan())
    if not emit(result, as_json):
        _show(result, all_rows)


@storage_app.command("apply")
def apply(yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
          api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Carry out the plan: each removal is a guarded trash + purge (never a version's only verified copy)."""
    api = client(api_url, token)
    if not yes and not as_json:
        preview = run(api.storage_plan)
        _show(preview, False)
        if not preview["decisions"] or not any(d["remove"] for d in preview["decisions"]):
            return
        typer.confirm("remove these versions from the primary bucket?", abort=True)
    report = run(api.storage_apply)
    if emit(report, as_json):
        return
    console.print(f"removed {len(report['removed'])} version(s), {size(report['bytes_freed'])} freed")
    for vid, why in report["refused"].items():
        console.print(Text(f"  kept {vid}: {why}"))
