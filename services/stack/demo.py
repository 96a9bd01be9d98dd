"""`trainyard demo`: the whole flow on the tiny model, on a fresh embedded stack.

inbox/demo.jsonl → RQ job → LoRA training with checkpoints → versions in S3 (hash-verified) → evolution
snapshots (baseline + every checkpoint) → `GET /api/evolution` → on-complete deployment to the inference
server, verified → summary. The stack is stopped at the end unless ``--keep``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.stack.servers import free_port, port_open
from services.stack.supervisor import Stack, down
from shared.modeling import build_tiny_model, demo_dataset_path
from shared.runtime import poll
from shared.settings import DEV_SECRET, CommonSettings, StackSettings

TERMINAL_FAILED = {"failed", "cancelled", "stopped", "skipped"}


class DemoError(Exception):
    """The demo flow did not complete."""


@dataclass
class DemoResult:
    ok: bool
    job: dict[str, Any]
    points: list[dict[str, Any]]
    versions: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    deployment: dict[str, Any]
    reports: list[Any]
    evolution_api: Any
    api_url: str


def _wait(what: str, fn: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    try:
        return poll(what, fn, timeout, interval)
    except TimeoutError as exc:
        raise DemoError(str(exc)) from None


def _ports(bind: str) -> dict[str, int]:
    api = 8080 if not port_open(bind, 8080) else free_port(bind)
    return {"api_port": api, "redis_port": free_port(bind), "s3_port": free_port(bind),
            "inference_port": free_port(bind), "dashboard_port": free_port(bind)}


def demo_spec(model_dir: Path | str, steps: int) -> dict[str, Any]:
    """The demo job: LoRA r16 on all linear layers of the tiny model (or ``model_dir``), checkpoints every steps/4."""
    return {
        "name": "demo", "base_model": str(model_dir), "lr": 3e-3, "lr_scheduler": "constant", "warmup_steps": 0,
        "max_steps": steps, "batch_size": 8, "grad_accum": 1, "max_seq_len": 64, "lora_r": 16, "lora_alpha": 32,
        "lora_dropout": 0.0, "checkpoint_every": max(steps // 4, 1), "log_every": 10, "seed": 0,
        "tracked": {"count": 100, "seed": 0}, "deploy_policy": "on-complete", "deploy_target": "local",
    }


def drop_in_inbox(inbox: Path, spec: dict[str, Any]) -> Path:
    """Write the sidecar spec first, then the dataset as .part and rename it: the watcher sees it whole."""
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "demo.yaml").write_text(yaml.safe_dump(spec))
    part = inbox / "demo.jsonl.part"
    shutil.copyfile(demo_dataset_path(), part)
    final = inbox / "demo.jsonl"
    part.rename(final)
    return final


def run_demo(state_dir: Path, keep: bool, steps: int, console: Console) -> DemoResult | None:
    from services.deployer.projection import list_deployments
    from services.evaluator.exceptions import UnknownJobError
    from services.evaluator.queries import curve
    from services.registry.projection import list_versions
    from services.stack.projections import all_projections
    from services.trainer.projection import get_job, job_metrics, list_jobs
    from shared.projection import rebuild

    state_dir = state_dir.resolve()
    if (state_dir / "stack.json").exists():
        down(state_dir)
    for sub in ("redis", "s3", "inbox", "control", "checkpoints", "inference", "logs"):
        shutil.rmtree(state_dir / sub, ignore_errors=True)
    settings = StackSettings(dev=True, state_dir=state_dir, inbox_dir=state_dir / "inbox",
                             control_dir=state_dir / "control", **_ports("127.0.0.1"))
    model_dir = state_dir / "models" / "tiny-qwen3"
    if not (model_dir / "config.json").exists():
        with console.status("building the tiny Qwen3 (random init, local BPE tokenizer)"):
            build_tiny_model(model_dir)
    stack = Stack(settings, base_model=str(model_dir))
    t0 = time.monotonic()
    ok = False
    result: DemoResult | None = None
    try:
        with console.status("starting the stack") as st:
            state = stack.up(progress=lambda m: st.update(f"starting the stack: {m}"))
        console.print(f"stack up in {time.monotonic() - t0:.0f}s (logs in {state_dir}/logs)")
        r = redis.Redis.from_url(state.redis_url, decode_responses=False)
        drop_in_inbox(Path(state.inbox_dir), demo_spec(model_dir, steps))
        console.print("dropped demo.jsonl (55 chat pairs) and demo.yaml into the inbox")
        job = _wait("the inbox file to become a job", lambda: (list_jobs(r) or [None])[0], 120)
        job_id = job["id"]
        console.print(f"job [bold]{job_id}[/bold] queued")

        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("training", total=steps)

            def finished() -> dict | None:
                j = get_job(r, job_id) or {}
                progress.update(task, completed=min(int(j.get("step") or 0), steps))
                if j.get("state") in TERMINAL_FAILED:
                    raise DemoError(f"job ended {j.get('state')}: {j.get('error') or j.get('reason')}")
                return j if j.get("state") == "completed" else None

            job = _wait("training to complete", finished, 900)
            n_ckpt = len(job.get("checkpoints") or []) or steps // max(steps // 4, 1)
            snap = progress.add_task("snapshots", total=n_ckpt + 1)

            def snapshots_done() -> list | None:
                try:
                    points = curve(r, job_id)
                except UnknownJobError:
                    points = []
                progress.update(snap, completed=len(points))
                return points if len(points) >= n_ckpt + 1 else None

            points = _wait("evolution snapshots", snapshots_done, 600)
            dep = progress.add_task("deployment", total=1)

            def deployed() -> dict | None:
                for d in list_deployments(r):
                    if _status(d) in ("verified", "rolled_back", "failed"):
                        progress.update(dep, completed=1)
                        return d
                return None

            deployment = _wait("the on-complete deployment", deployed, 300)

        api = httpx.get(f"{state.api_url}/api/evolution", headers={"Authorization": f"Bearer {DEV_SECRET}"},
                        timeout=10)
        api.raise_for_status()
        served = json.dumps(api.json())
        if job_id not in served:
            raise DemoError(f"GET /api/evolution does not list job {job_id}")
        versions = list_versions(r, job_id=job_id)
        metrics = [m for m in job_metrics(r, job_id) if m.get("loss") is not None]
        reports = rebuild(r, all_projections(_common(state)))
        ok = _status(deployment) == "verified" and all(rep.equal for rep in reports)
        result = DemoResult(ok, job, points, versions, metrics, deployment, reports, api.json(), state.api_url)
        _summary(console, job, points, versions, metrics, deployment, reports, state, time.monotonic() - t0)
    except DemoError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        console.print(f"logs: {state_dir}/logs")
    finally:
        if keep and ok:
            console.print("the stack keeps running: `trainyard down --state-dir "
                          f"{state_dir}` stops it")
        else:
            with console.status("stopping the stack"):
                down(state_dir)
    return result


def _common(state: Any) -> CommonSettings:
    return CommonSettings(dev=True, redis_url=state.redis_url, s3_endpoint=state.s3_endpoint,
                          state_dir=Path(state.state_dir))


def _summary(console: Console, job: dict, points: list, versions: list, metrics: list, deployment: dict,
             reports: list, state: Any, elapsed: float) -> None:
    table = Table(title="Trainyard demo", show_header=False)
    first, last = (metrics[0]["loss"], metrics[-1]["loss"]) if metrics else (None, None)
    last_point = points[-1] if points else {}
    table.add_row("job", f"{job['id']} ({job.get('state')})")
    table.add_row("steps", str(job.get("step")))
    table.add_row("loss first → last", f"{first:.3f} → {last:.3f}" if metrics else "n/a")
    table.add_row("snapshots", ", ".join(f"step {p.get('step')}" for p in points))
    table.add_row("examples learned", _learned(last_point))
    table.add_row("versions", ", ".join(v.get("version_id", "?") for v in versions))
    table.add_row("deployment", f"{_status(deployment)} on {deployment.get('target')} "
                                f"({deployment.get('version_id')})")
    table.add_row("rebuild from log", ", ".join(f"{r.projection}: {'equal' if r.equal else 'DIFFERS'}" for r in reports))
    table.add_row("time", f"{elapsed:.0f}s")
    table.add_row("web UI", state.api_url)
    console.print(table)


def _learned(point: dict) -> str:
    counts = point.get("counts") or {}
    total = sum(counts.values())
    if not total:
        return "n/a"
    return (f"{counts.get('learned', 0)}/{total} learned, {counts.get('forgotten', 0)} forgotten, "
            f"{counts.get('never_learned', 0)} never learned")


def _status(deployment: dict) -> str | None:
    return deployment.get("status") or deployment.get("state")
