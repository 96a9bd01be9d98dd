"""CLI through typer's CliRunner against the real API (uvicorn on loopback, real Redis and S3)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from services.api.cli import app
from services.api.main import create_app
from services.trainer.projection import JobsProjection
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings
from shared.storage import ensure_bucket, s3_client
from tests.support.evolution import seed_evolution, seed_metrics
from tests.support.servers import serve_app

TOKEN = "cli-token"
DEMO = Path(__file__).resolve().parents[2] / "shared" / "demo_data" / "demo.jsonl"


@pytest.fixture
def api(settings_kwargs: dict, tmp_path: Path, r: redis.Redis) -> Iterator[dict]:
    settings = ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up")
    ensure_bucket(s3_client(settings), settings.bucket)
    application = create_app(settings, targets=[])
    stop = threading.Event()
    runner = ProjectionRunner(redis.Redis.from_url(settings.redis_url), JobsProjection())
    thread = threading.Thread(target=runner.run, kwargs={"until": stop.is_set, "block_ms": 50}, daemon=True)
    thread.start()
    with serve_app(application) as server:
        yield {"TRAINYARD_API_URL": server.url, "TRAINYARD_API_TOKEN": TOKEN, "registry": application.state.registry}
    stop.set()
    thread.join(5)


def cli(env: dict, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, list(args), env={k: v for k, v in env.items() if isinstance(v, str)})
    return res.exit_code, res.stdout, res.stderr


def wait_state(env: dict, job_id: str, state: str) -> dict:
    import time

    for _ in range(100):
        code, out, _ = cli(env, "jobs", "--json")
        job = next(j for j in json.loads(out)["data"] if j["id"] == job_id)
        if job["state"] == state:
            return job
        time.sleep(0.05)
    raise AssertionError(f"{job_id} never became {state}: {job}")


def test_submit_queue_control_priority(api: dict) -> None:
    code, out, err = cli(api, "submit", str(DEMO), "--spec", '{"max_steps": 30}', "--priority", "low", "--json")
    assert code == 0, err
    job_id = json.loads(out)["job_id"]
    wait_state(api, job_id, "queued")
    code, out, _ = cli(api, "queue", "--json")
    assert [q["id"] for q in json.loads(out)["data"]] == [job_id]
    code, out, _ = cli(api, "queue")
    assert job_id in out and "low" in out

    assert cli(api, "pause", job_id)[0] == 0
    wait_state(api, job_id, "paused")
    assert cli(api, "resume", job_id)[0] == 0
    wait_state(api, job_id, "queued")
    code, out, _ = cli(api, "priority", job_id, "high", "--front")
    assert code == 0 and "high" in out
    assert wait_state(api, job_id, "queued")["priority"] == "high"


def test_errors_are_one_line_with_nonzero_exit(api: dict) -> None:
    code, out, err = cli(api, "pause", "job-missing")
    assert code == 1 and err.strip().count("\n") == 0
    assert "job-missing" in err and "404" in err
    code, _, err = cli({**api, "TRAINYARD_API_TOKEN": "wrong"}, "pause", "job-missing")
    assert code == 1 and "401" in err
    code, _, err = cli({**api, "TRAINYARD_API_URL": "http://127.0.0.1:9"}, "jobs")
    assert code == 1 and "cannot reach the API" in err and err.strip().count("\n") == 0
    code, _, err = cli(api, "submit", str(DEMO), "--spec", "{nope")
    assert code == 1 and "--spec" in err


def test_logs_and_evolution_show(api: dict, r: redis.Redis) -> None:
    code, out, _ = cli(api, "submit", str(DEMO), "--json")
    job_id = json.loads(out)["job_id"]
    seed_metrics(r, job_id, steps=5, max_steps=50)
    code, out, _ = cli(api, "logs", job_id, "--json")
    assert code == 0
    assert [json.loads(line)["step"] for line in out.splitlines()] == [1, 2, 3, 4, 5]

    seed_evolution(r, api["registry"], job_id, n_examples=12, steps=[0, 10, 20, 30], poison="[bold]x[/bold] <b>")
    code, out, err = cli(api, "evolution", "show", job_id)
    assert code == 0, err
    assert "evolution of" in out and "train loss" in out and any(c in out for c in "▁▂▃▄▅▆▇█")
    code, out, err = cli(api, "evolution", "show", job_id, "0")
    assert code == 0, err
    # model output is printed literally, never interpreted as rich markup
    assert "[bold]x[/bold]" in out.replace("\n", "").replace("│", "").replace(" ", "")
    code, out, _ = cli(api, "evolution", "show", job_id, "0", "--json")
    assert [h["step"] for h in json.loads(out)["history"]] == [0, 10, 20, 30]
    code, _, err = cli(api, "evolution", "show", job_id, "99")
    assert code == 1 and "99" in err


def test_logs_follow_ends_with_the_job(api: dict, r: redis.Redis) -> None:
    from shared.bus import publish
    from shared.events import Event, JobCompleted, MetricsLogged

    code, out, _ = cli(api, "submit", str(DEMO), "--json")
    job_id = json.loads(out)["job_id"]
    wait_state(api, job_id, "queued")

    def later() -> None:
        import time

        time.sleep(1.0)
        publish(r, Event.create("metrics.logged", MetricsLogged(step=7, loss=0.5), job_id=job_id))
        publish(r, Event.create("job.completed", JobCompleted(step=7), job_id=job_id))

    threading.Thread(target=later, daemon=True).start()
    code, out, err = cli(api, "logs", job_id, "-f")
    assert code == 0, err
    assert "step      7" in out and "job.completed" in out
