"""The containers, end to end: the offline compose stack comes up healthy, the demo flow runs through the REST
API only, and the stack survives `docker compose kill trainer` and `docker compose restart redis` mid-job.

Needs a Docker engine with compose v2 (``bash scripts/ci_docker.sh``); skips with the reason otherwise.
One stack serves the whole module (tests run in file order); it is torn down with its volumes at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.modeling import demo_dataset_path
from tests.compose.compose_harness import (
    TERMINAL_FAILED,
    ComposeStack,
    engine_problem,
    ensure_images,
    items,
    wait_for,
)

pytestmark = [pytest.mark.compose, pytest.mark.slow, pytest.mark.timeout(2400)]

TIMINGS: dict[str, float] = {}
DRILL_WINDOW_S = 45.0  # training time wanted after a kill/restart: long enough to hit mid-job, short for CI


def drill_timeout(steps: int) -> float:
    """How long a drill job may take after the fault: generous, but bounded so a stuck job fails in minutes."""
    return 150 + 4 * steps * TIMINGS.get("s_per_step", 0.5)


def drill_steps(every: int) -> int:
    """Steps for a drill job: about DRILL_WINDOW_S of training after the first checkpoint at this machine's
    measured speed (from the demo flow), at least 3 checkpoints, at most 400 steps."""
    per_step = TIMINGS.get("s_per_step", 0.5)
    steps = every * 2 + int(DRILL_WINDOW_S / max(per_step, 0.01))
    return max(every * 3, min(400, steps // every * every))


def job_spec(steps: int, every: int, policy: str = "manual") -> dict[str, Any]:
    """A LoRA job on the tiny model that model-init wrote into the models volume."""
    spec = {
        "base_model": "/models/tiny", "lr": 3e-3, "lr_scheduler": "constant", "warmup_steps": 0,
        "max_steps": steps, "batch_size": 8, "grad_accum": 1, "max_seq_len": 64, "lora_r": 8,
        "lora_alpha": 16, "lora_dropout": 0.0, "checkpoint_every": every, "log_every": 10, "seed": 0,
        "tracked": {"count": 8, "seed": 0}, "deploy_policy": policy,
    }
    if policy != "manual":
        spec["deploy_target"] = "local"
    return spec


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    problem = engine_problem()
    if problem:
        pytest.skip(problem)
    TIMINGS["build_s"] = ensure_images()
    s = ComposeStack()
    try:
        TIMINGS["up_s"] = s.up()
        yield s
    finally:
        s.down()


def submit(stack: ComposeStack, spec: dict[str, Any], name: str) -> str:
    with stack.api() as api, open(demo_dataset_path(), "rb") as f:
        resp = api.post("/api/jobs/upload", files={"file": ("demo.jsonl", f, "application/x-ndjson")},
                        data={"spec": json.dumps(spec), "name": name})
    assert resp.status_code == 201, resp.text
    return resp.json()["job_id"]


def get_job(stack: ComposeStack, job_id: str) -> dict[str, Any]:
    with stack.api() as api:
        resp = api.get(f"/api/jobs/{job_id}")
    if resp.status_code == 404:  # the projection has not caught up with job.queued yet
        return {}
    resp.raise_for_status()
    return resp.json()


def wait_job(stack: ComposeStack, job_id: str, timeout: float = 900, until=None,
             fail_fast: bool = True) -> dict[str, Any]:
    """Poll the job through the API until ``until(job)`` (default: completed). A failed job fails the test at
    once unless ``fail_fast`` is off: after a kill the trainer records the attempt as failed, then requeues it."""
    done = until or (lambda j: j.get("state") == "completed")

    def check() -> dict[str, Any] | None:
        job = get_job(stack, job_id)
        if fail_fast and job.get("state") in TERMINAL_FAILED:
            pytest.fail(f"job {job_id} ended {job.get('state')}: {job.get('error') or job.get('reason')}\n"
                        f"{stack.logs('trainer', tail=80)}")
        return job if job and done(job) else None

    try:
        return wait_for(f"job {job_id}", check, timeout, interval=1.0)
    except TimeoutError as exc:
        pytest.fail(f"{exc}; last state {get_job(stack, job_id)}\n{stack.logs(tail=40)}")


def events(stack: ComposeStack, job_id: str, types: str) -> list[dict[str, Any]]:
    with stack.api() as api:
        resp = api.get("/api/events", params={"job_id": job_id, "types": types, "limit": 5000})
    resp.raise_for_status()
    return items(resp.json())


def versions(stack: ComposeStack, job_id: str) -> list[dict[str, Any]]:
    with stack.api() as api:
        resp = api.get("/api/versions", params={"job_id": job_id, "kind": "adapter", "limit": 1000})
    resp.raise_for_status()
    return items(resp.json())


def payload(event: dict[str, Any]) -> dict[str, Any]:
    return event.get("payload") or {}


def assert_nothing_lost(stack: ComposeStack, job_id: str, steps: int, every: int) -> list[dict[str, Any]]:
    """Every checkpoint has its version, the job completed exactly once, and the versions cover each step."""
    expected = set(range(every, steps + 1, every))
    saved = events(stack, job_id, "checkpoint.saved")
    saved_steps = {payload(e).get("step") for e in saved}
    assert expected <= saved_steps, f"checkpoint steps {sorted(saved_steps)}, expected {sorted(expected)}"

    def all_stored() -> list[dict[str, Any]] | None:
        stored = events(stack, job_id, "version.stored")
        links = {payload(e).get("checkpoint_event_id") for e in stored}
        return stored if all(e.get("id") in links for e in saved) else None

    stored = wait_for(f"a version.stored for every checkpoint.saved of {job_id}", all_stored, 300, interval=2)
    vs = versions(stack, job_id)
    assert {v.get("step") for v in vs} >= expected, [v.get("step") for v in vs]
    ids = [payload(e).get("version_id") for e in stored]
    assert all(ids), stored
    completed = events(stack, job_id, "job.completed")
    assert len(completed) == 1, f"job.completed {len(completed)} times"
    return vs


def test_stack_comes_up_healthy_on_the_offline_path(stack: ComposeStack) -> None:
    health = stack.health()
    one_shot = {"bucket-init", "model-init"}
    long_running = {"redis", "s3", "registry", "trainer", "evaluator", "deployer", "inference", "api",
                    "rq-dashboard"}
    assert {s for s, h in health.items() if s in long_running and h == "healthy"} == long_running, health
    assert {p["Service"]: p.get("ExitCode") for p in stack.ps() if p["Service"] in one_shot} == \
        {"bucket-init": 0, "model-init": 0}
    with stack.api() as api:
        assert api.get("/health").status_code == 200
        ready = api.get("/ready")
        assert ready.status_code == 200 and ready.json()["checks"] == {"redis": True, "s3": True}, ready.text
        page = api.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        # Writes need the token; bad input gets a clear error and is not queued.
        anonymous = api.post("/api/jobs/upload", headers={"Authorization": ""},
                             files={"file": ("d.jsonl", b'{"text": "x"}\n')})
        assert anonymous.status_code == 401, anonymous.text
        bad = api.post("/api/jobs/upload", files={"file": ("bad.jsonl", b"{not json\n")}, data={"spec": "{}"})
        assert 400 <= bad.status_code < 500 and "line 1" in bad.text.lower(), bad.text
        assert not items(api.get("/api/jobs").json())
    assert httpx.get(stack.dashboard_url + "/", timeout=10).status_code == 200
    # Host ports are published on loopback only.
    ports = {p["Service"]: p.get("Publishers") or [] for p in stack.ps()}
    published = [(s, x.get("URL")) for s, pubs in ports.items() for x in pubs if x.get("PublishedPort")]
    assert published and all(url == "127.0.0.1" for _s, url in published), published


def test_demo_flow_through_the_rest_api(stack: ComposeStack) -> None:
    steps, every = 40, 10
    t0 = time.monotonic()
    job_id = submit(stack, job_spec(steps, every, policy="on-complete"), "compose-demo")
    job = wait_job(stack, job_id)
    assert job["step"] >= steps
    TIMINGS["train_s"] = time.monotonic() - t0
    TIMINGS["s_per_step"] = TIMINGS["train_s"] / steps
    vs = assert_nothing_lost(stack, job_id, steps, every)

    with stack.api() as api:
        def curve() -> list[Any] | None:
            resp = api.get(f"/api/evolution/{job_id}/curve")
            points = items(resp.json()) if resp.status_code == 200 else []
            return points if len(points) >= steps // every + 1 else None  # baseline + each checkpoint

        points = wait_for("evolution snapshots", curve, 600, interval=2)
        assert [p.get("step") for p in points][:1] == [0]
        listed = json.dumps(api.get("/api/evolution").json())
        assert job_id in listed

        final = max(vs, key=lambda v: v.get("step") or 0)

        def deployed() -> dict[str, Any] | None:
            for d in items(api.get("/api/deployments").json()):
                if d.get("version_id") == final["version_id"] and \
                        (d.get("status") or d.get("state")) in ("verified", "rolled_back", "failed"):
                    return d
            return None

        deployment = wait_for("the on-complete deployment", deployed, 600, interval=2)
    assert (deployment.get("status") or deployment.get("state")) == "verified", deployment
    TIMINGS["flow_s"] = time.monotonic() - t0

    # The inference container serves the deployed adapter (OpenAI API with the inference token).
    with stack.inference() as inf:
        models = json.dumps(inf.get("/v1/models").json())
        name = deployment.get("adapter_name")
        if name:
            assert name in models, models
        out = inf.post("/v1/completions", json={"model": name or "base", "prompt": "Hello", "max_tokens": 4,
                                                 "temperature": 0})
        assert out.status_code == 200, out.text
        assert inf.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_trainer_killed_mid_job_resumes_and_loses_nothing(stack: ComposeStack) -> None:
    every = 20
    steps = drill_steps(every)
    job_id = submit(stack, job_spec(steps, every), "compose-kill-trainer")
    wait_job(stack, job_id, until=lambda j: (j.get("step") or 0) >= every + 5, timeout=900)
    stack.compose("kill", "trainer")  # SIGKILL: no warm stop, no checkpoint on the way out
    at_kill = get_job(stack, job_id)
    assert at_kill.get("state") != "completed" and (at_kill.get("step") or 0) < steps, at_kill
    t0 = time.monotonic()
    stack.compose("start", "trainer")
    stack.wait_healthy("trainer", timeout=300)
    TIMINGS["trainer_restart_s"] = time.monotonic() - t0
    job = wait_job(stack, job_id, fail_fast=False, timeout=drill_timeout(steps))
    assert job["step"] >= steps
    assert_nothing_lost(stack, job_id, steps, every)


def test_redis_restarted_mid_job_loses_nothing(stack: ComposeStack) -> None:
    with stack.api() as api:
        before_jobs = {j["id"]: j.get("state") for j in items(api.get("/api/jobs", params={"limit": 1000}).json())}
        before_versions = {v["version_id"] for v in items(api.get("/api/versions",
                                                                   params={"limit": 1000}).json())}
        before_events = api.get("/api/events", params={"limit": 5000}).json()
    every = 20
    steps = drill_steps(every)
    job_id = submit(stack, job_spec(steps, every), "compose-restart-redis")
    wait_job(stack, job_id, until=lambda j: (j.get("step") or 0) >= every + 5, timeout=900)
    before = get_job(stack, job_id)
    assert before.get("state") != "completed" and (before.get("step") or 0) < steps, before
    stack.compose("restart", "redis", timeout=120)
    stack.wait_healthy("redis", timeout=120)
    job = wait_job(stack, job_id, fail_fast=False, timeout=drill_timeout(steps))
    assert job["step"] >= steps
    assert_nothing_lost(stack, job_id, steps, every)
    with stack.api() as api:
        after_jobs = {j["id"]: j.get("state") for j in items(api.get("/api/jobs", params={"limit": 1000}).json())}
        after_versions = {v["version_id"] for v in items(api.get("/api/versions", params={"limit": 1000}).json())}
        after_events = api.get("/api/events", params={"limit": 5000}).json()
    assert {k: after_jobs.get(k) for k in before_jobs} == before_jobs
    assert before_versions <= after_versions
    old_ids = [e.get("id") for e in items(before_events)]
    new_ids = {e.get("id") for e in items(after_events)}
    assert all(i in new_ids for i in old_ids), "events recorded before the redis restart are gone"
    for service in ("registry", "evaluator", "deployer", "trainer", "api"):
        stack.wait_healthy(service, timeout=180)


def test_report_timings(stack: ComposeStack) -> None:
    """Not a performance assertion: prints what the compose run measured (see docs/containers.md)."""
    print("compose timings:", json.dumps({k: round(v, 1) for k, v in TIMINGS.items()}))
    assert TIMINGS.get("up_s", 0) > 0
