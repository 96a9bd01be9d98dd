"""Stack commands: up, down, status, demo, demo-model, rebuild."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from shared.settings import StackSettings, load

console = Console()
err = Console(stderr=True)


def _state_dir(state_dir: Path | None) -> Path:
    """Where the stack's state lives; `down` and `status` need nothing else (no secrets)."""
    return state_dir or Path(os.environ.get("TRAINYARD_STATE_DIR", ".state"))


def _settings(state_dir: Path | None) -> StackSettings:
    overrides = {"state_dir": state_dir} if state_dir else {}
    return load(StackSettings, **overrides)


def demo_model(
    out_dir: Path = typer.Argument(..., help="directory to write the model into"),
    shape: str = typer.Option("tiny", help="tiny (fast tests, local tokenizer) | qwen3-0.6b (the exact "
                                           "Qwen3-0.6B architecture) | qwen3-0.6b-narrow (real width and "
                                           "vocabulary, 2 layers); the qwen3 shapes carry the real Qwen tokenizer"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Build a random-init Qwen3 from config with its tokenizer; nothing is downloaded."""
    from shared.realshape import SHAPES, TokenizerSourceMissing, build_model

    if shape not in SHAPES:
        err.print(f"[red]unknown --shape {shape!r}:[/red] one of {', '.join(SHAPES)}")
        raise typer.Exit(2)
    try:
        with err.status(f"building the {shape} model"):
            path = build_model(out_dir, shape=shape)
    except TokenizerSourceMissing as exc:
        err.print(f"[red]demo-model:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        console.print_json(json.dumps({"shape": shape, "path": str(path)}))
        return
    console.print(f"{shape} Qwen3 written to [bold]{path}[/bold]")


def up(
    base_model: str = typer.Option("", envvar="TRAINYARD_INFERENCE_BASE_MODEL",
                                   help="base model the inference server serves (dir or hub id); "
                                        "default: the tiny demo model, built if missing"),
    state_dir: Path | None = typer.Option(None, help="where logs, data and stack.json live"),
    detach: bool = typer.Option(False, "--detach", "-d", help="return once healthy, leave the stack running"),
    as_json: bool = typer.Option(False, "--json", help="print the stack's URLs, paths and processes as JSON"),
) -> None:
    """Start redis, S3 and every service on this machine (no Docker); Ctrl-C or `trainyard down` stops."""
    from services.stack.supervisor import Stack, down

    settings = _settings(state_dir)
    if not base_model:
        base_model = str(_ensure_demo_model(settings.state_dir / "models" / "tiny-qwen3"))
    stack = Stack(settings, base_model=base_model)
    try:
        with err.status("starting the stack") as st:
            state = stack.up(progress=lambda m: st.update(m))
    except Exception as exc:  # noqa: BLE001 - one clear line, then clean up what started
        err.print(f"[red]trainyard up failed:[/red] {exc}")
        down(settings.state_dir)
        raise typer.Exit(1) from None
    _print_urls(state, as_json, warnings=settings.replica_warnings())
    if detach:
        return
    err.print("Ctrl-C stops everything.")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        err.print("stopping…")
    finally:
        down(settings.state_dir)


def _print_urls(state, as_json: bool = False, warnings: list[str] | None = None) -> None:
    """What `trainyard up` prints once the stack is healthy (the one place that says it); ``warnings`` (a
    replica that is not a backup) go to stderr, loudly, and into the JSON."""
    for line in warnings or []:
        err.print(f"[bold red]WARNING[/bold red]: {line}", soft_wrap=True)
    if as_json:
        console.print_json(json.dumps({**state.public(), "warnings": list(warnings or [])}))
        return
    console.print(f"web UI      [bold]{state.api_url}[/bold]")
    console.print(f"inference   {state.inference_url}")
    console.print(f"rq-dashboard {state.dashboard_url}")
    console.print(f"redis       {state.redis_url}   S3 {state.s3_endpoint}   logs {state.state_dir}/logs")
    # paths on one line whatever the terminal's width, so they can be copied
    console.print(f"inbox       [bold]{state.inbox_dir}[/bold]   (drop a .jsonl here to train it)", soft_wrap=True)
    console.print(f"control     {state.control_dir}   (touch pause, resume, stop or skip)", soft_wrap=True)


def _ensure_demo_model(path: Path) -> Path:
    if not (path / "config.json").exists():
        from shared.modeling import build_tiny_model

        build_tiny_model(path)
    return path.resolve()


def stack_down(state_dir: Path | None = typer.Option(None),
               as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Stop the stack started by `trainyard up`."""
    from services.stack.supervisor import down

    stopped = down(_state_dir(state_dir))
    if as_json:
        console.print_json(json.dumps({"stopped": stopped}))
        return
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


def stack_status(state_dir: Path | None = typer.Option(None), as_json: bool = typer.Option(False, "--json")) -> None:
    """Show what runs."""
    from services.stack.supervisor import status

    rows = status(_state_dir(state_dir))
    if as_json:
        console.print_json(json.dumps(rows))
        return
    if not rows:
        err.print(f"no stack running from {_state_dir(state_dir)} (`trainyard up` starts one)")
        raise typer.Exit(1)
    table = Table("process", "pid", "port", "state", "log")
    for row in rows:
        table.add_row(row["name"], str(row["pid"]), str(row["port"] or ""),
                      "[green]running[/green]" if row["alive"] else "[red]stopped[/red]", row["log"])
    console.print(table)
    if not all(row["alive"] for row in rows):
        raise typer.Exit(1)


def rebuild(apply: bool = typer.Option(False, "--apply", help="replace the live views with the rebuilt ones"),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """Replay the event log into fresh projections and compare them with the live ones. Needs Redis directly
    (run it where the stack runs; found via stack.json)."""
    from services.api.connect import direct_env
    from services.stack.projections import all_projections
    from shared.projection import rebuild as do_rebuild
    from shared.runtime import connect_redis
    from shared.settings import CommonSettings

    os.environ.update(direct_env())
    settings = load(CommonSettings)
    r = connect_redis(settings.redis_url)
    reports = do_rebuild(r, all_projections(settings), apply=apply)
    if as_json:
        console.print_json(json.dumps([r_.__dict__ for r_ in reports]))
    else:
        table = Table("projection", "events replayed", "keys", "equal to live", "differing keys")
        for rep in reports:
            table.add_row(rep.projection, str(rep.applied), str(rep.keys),
                          "[green]yes[/green]" if rep.equal else "[red]no[/red]", ", ".join(rep.differing[:5]))
        console.print(table)
    if not all(rep.equal for rep in reports) and not apply:
        raise typer.Exit(1)


def demo(
    keep: bool = typer.Option(False, "--keep", help="leave the stack running after the demo"),
    state_dir: Path = typer.Option(Path(".demo"), help="state directory of the demo stack"),
    steps: int = typer.Option(200, help="training steps"),
    as_json: bool = typer.Option(False, "--json", help="progress on stderr, the result as JSON on stdout"),
) -> None:
    """The whole flow on the tiny model: inbox → train → versions → snapshots → deploy + verify."""
    from services.stack.demo import run_demo

    result = run_demo(state_dir=state_dir, keep=keep, steps=steps, console=err if as_json else console)
    if as_json:
        console.print_json(json.dumps(_demo_json(result), default=str))
    if result is None or not result.ok:
        raise typer.Exit(1)


def _demo_json(result) -> dict:
    if result is None:
        return {"ok": False}
    return {"ok": result.ok, "api_url": result.api_url, "job": result.job, "versions": result.versions,
            "deployment": result.deployment, "evolution": result.points}


def register(app: typer.Typer) -> None:
    app.command("demo-model")(demo_model)
    app.command("up")(up)
    app.command("down")(stack_down)
    app.command("status")(stack_status)
    app.command("rebuild")(rebuild)
    app.command("demo")(demo)
