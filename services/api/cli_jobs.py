"""CLI commands that talk to the REST API: submit, jobs, queue, control, priority, logs, evolution, deploy."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from services.api.cli_common import ApiUrl, AsJson, Token, client, console, emit, err, fail, run
from services.api.client import ApiClient

TERMINAL = {"completed", "failed", "cancelled", "skipped", "stopped"}
BARS = "▁▂▃▄▅▆▇█"
__all__ = ["ApiUrl", "AsJson", "Token", "client", "console", "emit", "fail", "fmt", "run", "sparkline"]


def sparkline(values: list[Any]) -> str:
    nums = [v for v in values if isinstance(v, (int, float))]
    if not nums:
        return ""
    lo, hi = min(nums), max(nums)
    return "".join(BARS[round((v - lo) / ((hi - lo) or 1) * 7)] if isinstance(v, (int, float)) else " "
                   for v in values)


def fmt(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)



# --- jobs -------------------------------------------------------------------------------------------------
def submit(dataset: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                                help="dataset: .jsonl, .json (an array), .csv or .parquet")],
           spec: Annotated[str, typer.Option(help='JobSpec overrides as JSON, e.g. {"max_steps": 200}')] = "{}",
           priority: Annotated[str, typer.Option(help="high | default | low")] = "default",
           name: Annotated[str | None, typer.Option(help="job name")] = None,
           wait: Annotated[bool, typer.Option("--wait", help="wait for the job to finish, with a progress bar")] = False,
           api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Upload a dataset and queue a training job on it."""
    try:
        json.loads(spec)
    except ValueError as exc:
        raise fail(f"--spec is not JSON: {exc}") from None
    api = client(api_url, token)
    data = {"spec": spec, "priority": priority, "source": "cli", **({"name": name} if name else {})}
    with Progress(TextColumn("uploading {task.description}"), BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task(dataset.name, total=dataset.stat().st_size)
        res = run(lambda: api.upload("/api/jobs/upload", dataset, data, lambda n: bar.advance(task, n)))
    if not emit(res, as_json):
        console.print(f"queued job [bold]{res['job_id']}[/bold]")
    if wait:
        wait_for(api, res["job_id"], quiet=as_json)


def wait_for(api: ApiClient, job_id: str, quiet: bool = False, poll_s: float = 1.0) -> dict[str, Any]:
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TimeRemainingColumn(), console=err, disable=quiet) as bar:
        task = bar.add_task(job_id, total=None)
        while True:
            job = run(lambda: api.job(job_id))
            bar.update(task, completed=job.get("step") or 0, total=job.get("max_steps"),
                       description=f"{job_id} {job.get('state')}")
            if job.get("state") in TERMINAL:
                return job
            time.sleep(poll_s)


def jobs(state: Annotated[str | None, typer.Option(help="only jobs in this state")] = None,
         limit: int = 50, api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """List jobs, newest first."""
    res = run(lambda: client(api_url, token).jobs(state=state, limit=limit))
    if emit(res, as_json):
        return
    table = Table("job", "name", "state", "priority", "step", "loss")
    for j in res["data"]:
        table.add_row(Text(j["id"]), Text(str(j.get("name") or "")), j.get("state") or "", j.get("priority") or "",
                      f"{j.get('step') or 0}/{j.get('max_steps') or '?'}", fmt(j.get("loss")))
    console.print(table)
    console.print(f"{res['count']} job(s)")


def queue(api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """The queue in the order the workers will take it."""
    res = run(lambda: client(api_url, token).queue())
    if emit(res, as_json):
        return
    table = Table("#", "job", "name", "priority", "state")
    for i, j in enumerate(res["data"], 1):
        table.add_row(str(i), Text(j.get("id") or ""), Text(str(j.get("name") or "")), j.get("priority") or "",
                      j.get("state") or "")
    console.print(table if res["data"] else "the queue is empty")


def control_command(action: str) -> Any:
    def command(job_id: Annotated[str, typer.Argument(help="job id")], api_url: ApiUrl = None,
                token: Token = None, as_json: AsJson = False) -> None:
        res = run(lambda: client(api_url, token).control(job_id, action))
        if not emit(res, as_json):
            console.print(Text(f"{action} {job_id}: {res.get('result')}"))

    command.__doc__ = f"{action.capitalize()} a job."
    return command


def priority(job_id: Annotated[str, typer.Argument()], level: Annotated[str, typer.Argument(help="high|default|low")],
             front: Annotated[bool, typer.Option("--front", help="to the front of its queue")] = False,
             api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """Change a job's priority."""
    res = run(lambda: client(api_url, token).set_priority(job_id, level, front))
    if not emit(res, as_json):
        console.print(Text(f"{job_id}: priority {res.get('result')}"))


def logs(job_id: Annotated[str, typer.Argument()],
         follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing live metrics")] = False,
         api_url: ApiUrl = None, token: Token = None, as_json: AsJson = False) -> None:
    """A job's logged metrics (and, with -f, the live feed until the job ends)."""
    api = client(api_url, token)
    job = run(lambda: api.job(job_id))
    # the logged metrics so far, with the feed position they end at: following resumes exactly there
    past = run(lambda: api.past_events(job_id=job_id, types="metrics.*"))
    for ev in past["data"]:
        _print_metric(ev["payload"], as_json)
    if not follow or job.get("state") in TERMINAL:
        return
    try:
        run(lambda: _follow(api, job_id, past["last_id"], as_json))
    except KeyboardInterrupt:
        return


def _follow(api: ApiClient, job_id: str, since: str, as_json: bool) -> None:
    for ev in api.events(job_id=job_id, types="metrics.*,job.*", since=since):
        if ev["type"] == "metrics.logged":
            _print_metric(ev["payload"], as_json)
            continue
        if not emit(ev, as_json):
            console.print(Text(f"{ev['type']} {json.dumps(ev['payload'], default=str)}", style="bold"))
        if ev["type"].removeprefix("job.") in TERMINAL:
            return


def _print_metric(m: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(m))
        return
    console.print(Text(f"step {m.get('step'):>6}  loss {fmt(m.get('loss')):>8}  lr {fmt(m.get('learning_rate')):>9}  "
                       f"grad {fmt(m.get('grad_norm')):>8}  tok/s {fmt(m.get('tokens_per_s')):>8}  "
                       f"mem {fmt(m.get('memory_mb'))} MB"))
