"""Every CLI command with the stack down: one line on stderr that names what is unreachable and what to run,
exit status 1, never a traceback. And where the CLI looks for the stack: flags, environment, stack.json,
config file, in that order. All through the real console script (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import typer

from services.api.cli import app
from services.stack.servers import free_port

TRAINYARD = str(Path(sys.executable).parent / "trainyard")
DEMO = Path(__file__).resolve().parents[2] / "shared" / "demo_data" / "demo.jsonl"
# commands that start or build things rather than talk to a stack, each tested elsewhere
NOT_A_CLIENT = {"up": "starts the stack (tests/api/test_cli_stack.py)", "demo": "starts its own stack",
                "demo-model": "builds a model, needs no stack"}


def leaf_commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            out += leaf_commands(cmd, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


def sample_args(tmp: Path) -> dict[tuple[str, ...], list[str]]:
    folder = tmp / "checkpoint-10"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    job, vid = ["job-0001"], ["adapter-0001"]
    args = {("submit",): [str(DEMO)], ("jobs",): [], ("queue",): [], ("priority",): [*job, "high"],
            ("logs",): [*job, "--follow"], ("evolution", "list"): [], ("evolution", "show"): job, ("evolution", "compare"): [*job, "job-0002"],
            ("deploy",): [*vid, "local"], ("rollback",): ["local"], ("deployments",): [],
            ("versions", "list"): [], ("versions", "alias"): ["mine", *vid],
            ("versions", "export"): [*vid, str(tmp / "out")], ("registry", "inventory"): [],
            ("registry", "verify"): [], ("registry", "import"): [str(folder)], ("registry", "rebuild"): [],
            ("backup", "status"): [], ("gc",): [str(folder)], ("storage", "plan"): [], ("storage", "apply"): ["--yes"], ("rebuild",): [], ("status",): [], ("down",): []}
    for action in ("pause", "resume", "stop", "skip", "cancel"):
        args[(action,)] = job
    for action in ("show", "protect", "unprotect", "trash", "restore", "purge"):
        args[("versions", action)] = vid
    return args


def clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    return {**env, "TRAINYARD_DEV": "1", "HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp / "config")}


def stopped_stack(state_dir: Path) -> dict[str, str]:
    """stack.json as `trainyard down` leaves it: the stack's URLs on non-default ports, no processes."""
    state_dir.mkdir(parents=True, exist_ok=True)
    doc = {"state_dir": str(state_dir), "redis_url": f"redis://127.0.0.1:{free_port()}/0",
           "s3_endpoint": f"127.0.0.1:{free_port()}", "api_url": f"http://127.0.0.1:{free_port()}",
           "inference_url": "http://127.0.0.1:1", "dashboard_url": "http://127.0.0.1:1", "procs": [],
           "api_token": "from-stack-json"}
    (state_dir / "stack.json").write_text(json.dumps(doc))
    return doc


def trainyard(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([TRAINYARD, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_every_command_with_the_stack_down_prints_one_line(tmp_path: Path) -> None:
    stack = stopped_stack(tmp_path / ".state")
    env = clean_env(tmp_path)
    commands = leaf_commands(typer.main.get_command(app))
    args = sample_args(tmp_path)
    missing = [c for c in commands if c not in args and c[0] not in NOT_A_CLIENT]
    assert not missing, f"add these commands to sample_args: {missing}"
    tried = [c for c in commands if c in args]
    with ThreadPoolExecutor(3) as pool:  # run from the directory where `trainyard up` ran: .state/ is there
        results = dict(zip(tried, pool.map(lambda c: trainyard(env, *c, *args[c], cwd=tmp_path), tried), strict=True))
    for cmd, res in results.items():
        name = " ".join(cmd)
        assert "Traceback" not in res.stderr + res.stdout, f"{name}: {res.stderr}"
        if cmd == ("down",):
            assert res.returncode == 0 and res.stdout.strip() == "stopped: nothing was running" and not res.stderr
            continue
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, f"{name} printed {len(lines)} lines: {res.stderr}"
        assert res.returncode == 1, f"{name}: exit {res.returncode}"
        if cmd == ("status",):
            assert "trainyard up" in lines[0], lines[0]
        elif cmd in (("registry", "import"), ("registry", "rebuild"), ("rebuild",)):  # Redis straight
            assert lines[0].startswith("trainyard: cannot reach Redis"), f"{name}: {lines[0]}"
            assert stack["redis_url"].split("//")[1].split("/")[0] in lines[0] and "`trainyard up`" in lines[0]
        else:
            assert lines[0] == (f"trainyard: cannot reach the API at {stack['api_url']} (connection refused; URL "
                                f"from stack.json in .state); start the stack with `trainyard up`"), f"{name}: {lines[0]}"
    assert not (tmp_path / "out").exists() and (tmp_path / "checkpoint-10").exists()


def test_the_stack_is_found_in_the_documented_order(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    port = {name: free_port() for name in ("config", "stack", "env", "flag")}
    url = {name: f"http://127.0.0.1:{p}" for name, p in port.items()}
    config = tmp_path / "config" / "trainyard" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'api_url = "{url["config"]}"\napi_token = "t"\n')

    def reached(extra_env: dict[str, str], *flags: str) -> str:
        res = trainyard({**env, **extra_env}, "jobs", *flags, cwd=tmp_path)
        assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        return res.stderr

    assert url["config"] in reached({}) and f"the config file {config}" in reached({})
    custom = tmp_path / "elsewhere.toml"
    custom.write_text(f'api_url = "{url["flag"]}"\n')
    assert url["flag"] in reached({"TRAINYARD_CONFIG": str(custom)})
    assert "does not exist" in reached({"TRAINYARD_CONFIG": str(tmp_path / "nope.toml")})
    stack = stopped_stack(tmp_path / ".state")
    stack["api_url"] = url["stack"]
    (tmp_path / ".state" / "stack.json").write_text(json.dumps(stack))
    assert url["stack"] in reached({})  # stack.json before the config file
    assert url["env"] in reached({"TRAINYARD_API_URL": url["env"]})  # the environment before stack.json
    assert url["flag"] in reached({"TRAINYARD_API_URL": url["env"]}, "--api-url", url["flag"])
    (tmp_path / ".state" / "stack.json").write_text("{not json")
    assert "stack.json" in reached({})


@pytest.mark.parametrize("args", [["down", "--json"], ["status", "--json"]])
def test_stack_commands_print_json_without_a_stack(tmp_path: Path, args: list[str]) -> None:
    res = trainyard({**clean_env(tmp_path), "TRAINYARD_STATE_DIR": str(tmp_path / "none")}, *args)
    assert "Traceback" not in res.stderr
    doc = json.loads(res.stdout)
    assert doc == ({"stopped": []} if args[0] == "down" else [])


def test_only_import_and_rebuild_say_they_need_the_bucket(tmp_path: Path) -> None:
    env = {**clean_env(tmp_path), "COLUMNS": "200"}
    for cmd in (("registry", "import"), ("registry", "rebuild")):
        res = trainyard(env, *cmd, "--help")
        assert res.returncode == 0 and "Needs the bucket and Redis directly" in res.stdout, res.stdout
    res = trainyard(env, "versions", "trash", "--help")
    assert res.returncode == 0 and "--api-url" in res.stdout and "Needs the bucket" not in res.stdout


def test_every_command_takes_json() -> None:
    commands = leaf_commands(typer.main.get_command(app))
    group = typer.main.get_command(app)
    lacking = []
    for path in commands:
        cmd = group
        for name in path:
            cmd = cmd.commands[name]
        if not any("--json" in p.opts for p in cmd.params):
            lacking.append(" ".join(path))
    assert len(commands) > 35 and not lacking, lacking


def test_demo_model_json(tmp_path: Path) -> None:
    doc = json.loads(trainyard(clean_env(tmp_path), "demo-model", str(tmp_path / "m"), "--json").stdout)
    assert doc == {"shape": "tiny", "path": doc["path"]} and (Path(doc["path"]) / "config.json").is_file()
