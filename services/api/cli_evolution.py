"""CLI: ``evolution show JOB [EXAMPLE]`` (tables and sparklines), ``evolution compare A B``, ``deploy``, ``rollback``, ``deployments``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from services.api.cli_common import ApiUrl, AsJson, Token, client, console, emit, run
from services.api.cli_jobs import fmt, sparkline

evolution_app = typer.Typer(help="What the model answers on each tracked example at every checkpoint.",
                            no_args_is_help=True)


@evolution_app.command("list")
def evolution_list(api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Jobs with evolution snapshots."""
    res = run(lambda: client(api_url, token).evolution())
    if emit(res, as_json):
        return
    table = Table("job", "snapshots", "last step", "examples")
    for j in res["data"]:
        table.add_row(Text(j["job_id"]), str(j.get("n_snapshots", "")), str(j.get("last_step", "")),
                      str(j.get("n_examples", "")))
    console.print(table)


@evolution_app.command("show")
def evolution_show(job_id: Annotated[str, typer.Argument(help="job id")],
                   example: Annotated[int | None, typer.Argument(help="tracked example index")] = None,
                   api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """The job's learning curves, or one example's prediction at every step."""
    api = client(api_url, token)
    if example is not None:
        res = run(lambda: api.example(job_id, example))
        if not emit(res, as_json):
            show_example(res)
        return
    curve = run(lambda: api.curve(job_id))
    worst = run(lambda: api.examples(job_id, sort="-loss", limit=10))
    if emit({"curve": curve, "highest_loss": worst}, as_json):
        return
    show_curve(job_id, curve)
    table = Table("#", "id", "state", "region", "learned at", "loss", "latest prediction", title="highest loss now")
    for e in worst["data"]:
        table.add_row(str(e["idx"]), Text(str(e.get("id") or "")), str(e.get("state") or ""),
                      str(e.get("region") or ""), fmt(e.get("learned_at")), fmt(e.get("loss")),
                      Text(str(e.get("prediction") or "")[:60]))
    console.print(table)


@evolution_app.command("compare")
def evolution_compare(jobs: Annotated[list[str], typer.Argument(help="two or more job ids; the first is A")],
                      as_csv: Annotated[bool, typer.Option("--csv", help="one CSV row per shared example")] = False,
                      limit: Annotated[int, typer.Option(help="examples shown in the table")] = 20,
                      api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """The tracked examples the jobs share, each run's state and final metrics, largest change first."""
    api = client(api_url, token)
    if as_csv:
        sys.stdout.write(run(lambda: api.compare(jobs, fmt="csv")))
        return
    res = run(lambda: api.compare(jobs))
    if emit(res, as_json):
        return
    for w in res["warnings"]:
        console.print(Text(f"warning: {w}", style="yellow"))
    console.print(Text(" ".join(f"{j['letter']} = {j['job_id']} ({j['n_examples']} tracked, last step "
                                f"{j['last_step']})" for j in res["jobs"])))
    console.print(Text(f"{res['count']} shared examples, {res['changed']} changed state; curves on the "
                       f"{res['axis']} axis"))
    letters = [j["letter"] for j in res["jobs"]]
    table = Table("id", "change", *(f"{x}: state (learned at)" for x in letters), *(f"Δloss {x}-A" for x in letters[1:]),
                  title="largest change first")
    for ex in res["examples"][:limit]:
        states = [f"{r['state']}" + (f" ({r['learned_at']})" if r.get("learned_at") is not None else "")
                  for r in ex["runs"]]
        table.add_row(Text(str(ex.get("id") or "")), Text(ex["change"]), *states,
                      *(fmt(d.get("loss")) for d in ex["deltas"]))
    console.print(table)


def _agg(point: dict[str, Any], split: str, key: str) -> Any:
    return ((point.get("aggregates") or {}).get(split) or {}).get(key)


def show_curve(job_id: str, curve: list[dict[str, Any]]) -> None:
    table = Table("step", "train loss", "held-out loss", "train exact", "train f1", "learned", "forgotten", "never",
                  title=f"evolution of {job_id}")
    for p in curve:
        c = p.get("counts") or {}
        table.add_row(str(p["step"]), fmt(_agg(p, "train", "loss")), fmt(_agg(p, "heldout", "loss")),
                      fmt(_agg(p, "train", "exact")), fmt(_agg(p, "train", "f1")), fmt(c.get("learned")),
                      fmt(c.get("forgotten")), fmt(c.get("never_learned")))
    console.print(table)
    for label, values in (("train loss", [_agg(p, "train", "loss") for p in curve]),
                          ("held-out loss", [_agg(p, "heldout", "loss") for p in curve]),
                          ("train exact", [_agg(p, "train", "exact") for p in curve]),
                          ("learned", [(p.get("counts") or {}).get("learned") for p in curve])):
        console.print(Text(f"{label:>14} {sparkline(values)}"))


def show_example(res: dict[str, Any]) -> None:
    ex = res["example"]
    console.print(Text(f"example #{ex['idx']} {ex.get('id') or ''} ({ex.get('split')}): {ex.get('state')}"
                       + (f", learned at step {ex['learned_at']}" if ex.get("learned_at") is not None else "")
                       + (f", {ex['region']}" if ex.get("region") else "")))
    console.print(Text("question: ", style="bold") + Text(str(ex.get("question") or "")))
    console.print(Text("target:   ", style="bold") + Text(str(ex.get("target") or "")))
    hist = res["history"]
    console.print(Text(f"loss {sparkline([h.get('loss') for h in hist])}   "
                       f"confidence {sparkline([h.get('confidence') for h in hist])}"))
    table = Table("step", "exact", "f1", "loss", "prediction (red: not in target, green: missing)")
    for h in hist:
        table.add_row(str(h["step"]), "✓" if h.get("exact") else "", fmt(h.get("f1")), fmt(h.get("loss")),
                      diff_text(h.get("diff") or [], h.get("prediction") or ""))
    console.print(table)


def diff_text(ops: list[dict[str, str]], prediction: str) -> Text:
    """The diff ops as styled rich Text (never parsed as markup: model output may contain brackets)."""
    if not ops:
        return Text(prediction)
    out = Text()
    for op in ops:
        if op["op"] == "equal":
            out.append(op.get("prediction", ""))
            continue
        if op.get("prediction"):
            out.append(op["prediction"], style="red strike")
        if op.get("target"):
            out.append(op["target"], style="green")
    return out


# --- deployments ------------------------------------------------------------------------------------------
def deploy(version_id: Annotated[str, typer.Argument(help="version id (or alias target via the registry)")],
           target: Annotated[str, typer.Argument(help="target name from TRAINYARD_TARGETS")],
           api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Deploy a version to a target (pushed, loaded, verified; rolled back on failure)."""
    res = run(lambda: client(api_url, token).deploy(version_id, target))
    if not emit(res, as_json):
        console.print(Text(f"deployment {res['deployment_id']} of {version_id} to {target} requested"))


def rollback(target: Annotated[str, typer.Argument(help="target name")],
             to: Annotated[str | None, typer.Option("--to", help="deployment id to go back to")] = None,
             api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Roll a target back to an earlier verified deployment."""
    res = run(lambda: client(api_url, token).rollback(target, to))
    if not emit(res, as_json):
        console.print(Text(f"rollback of {target} requested: {res.get('deployment_id')}"))


def deployments(target: Annotated[str | None, typer.Option(help="only this target")] = None,
                api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Deployment history and what each target serves."""
    api = client(api_url, token)
    res = run(lambda: api.deployments(target=target))
    targets = run(lambda: api.targets())
    if emit({"targets": targets, "deployments": res}, as_json):
        return
    for t in targets:
        cur = t.get("current") or {}
        console.print(Text(f"{t['name']} ({t['url']}): serving {cur.get('version_id') or 'nothing'}"))
    table = Table("deployment", "target", "version", "status", "reason / error")
    for d in res["data"]:
        table.add_row(Text(d["deployment_id"]), Text(d["target"]), Text(d["version_id"]), str(d.get("status")),
                      Text(str(d.get("error") or d.get("reason") or "")))
    console.print(table)
