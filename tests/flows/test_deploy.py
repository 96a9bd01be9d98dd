"""Deployments against a real inference server on loopback, with real Redis and S3.

Covers deploy + verify + hot swap while a client keeps requesting the serving name, rollback on a
verification mismatch, failed deployments (corrupted upload, wrong token, unreachable target, adapter for
another base), a resumed upload, presigned-URL fetch, manual rollback and projection rebuild.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from services.deployer import push
from services.deployer.commands import request_deployment, rollback
from services.deployer.deploy import Deployer
from services.deployer.domain import SERVING_NAME, Transfer
from services.deployer.main import build
from services.deployer.projection import DeploymentsProjection, current, get_deployment, list_deployments
from services.deployer.state import DeployerState
from services.deployer.target import TargetClient
from services.registry.client import RegistryClient
from shared import storage, streams
from shared.bus import Consumer, publish, read_all
from shared.events import DatasetRef, Event, JobCompleted, JobQueued, SnapshotCaptured, VersionStored
from shared.modeling import render
from shared.projection import ProjectionRunner, rebuild
from shared.settings import DeployerSettings, TargetConfig
from tests.support.deploy import (
    Adapter,
    InferenceServer,
    demo_examples,
    make_adapter,
    store_version,
    write_snapshot,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Adapter]:
    out = tmp_path_factory.mktemp("adapters")
    built = [make_adapter(tiny_model, out / f"a{seed}", seed) for seed in (2, 3, 4)]
    assert len({a.predictions[0] for a in built}) == 3, "the test adapters must answer differently"
    return built


@pytest.fixture
def server(tiny_model: Path, tmp_path: Path) -> Iterator[InferenceServer]:
    srv = InferenceServer(tiny_model, tmp_path / "served").start()
    yield srv
    srv.stop()


@pytest.fixture
def registry(settings_kwargs: dict) -> RegistryClient:
    client = RegistryClient(storage.s3_client(DeployerSettings(**settings_kwargs)), settings_kwargs["bucket"])
    client.ensure_bucket()
    return client


class Rig:
    """The deployer's consumer and projection, driven step by step from the test."""

    def __init__(self, r: redis.Redis, settings: DeployerSettings) -> None:
        self.r = r
        self.consumer, self.runner, self.deployer = build(settings, r, consumer="test")
        self.consumer.ensure_groups()

    def drive(self, deployment_id: str | None = None, rounds: int = 50) -> dict | None:
        for _ in range(rounds):
            self.consumer.run_once(block_ms=50)
            self.runner.catch_up()
            rec = get_deployment(self.r, deployment_id) if deployment_id else None
            if rec and rec["status"] in ("verified", "failed", "rolled_back"):
                return rec
        return get_deployment(self.r, deployment_id) if deployment_id else None


def _settings(settings_kwargs: dict, *targets: TargetConfig, **kw: object) -> DeployerSettings:
    return DeployerSettings(**settings_kwargs, targets=list(targets), **kw)


def _target(server: InferenceServer, name: str = "box", token: str | None = None) -> TargetConfig:
    return TargetConfig(name=name, url=server.url, token=server.token if token is None else token)


def _ask(server: InferenceServer, model: str, idx: int = 0) -> str:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(server.base)
    prompt = render(tok, demo_examples()[idx]["messages"]).prompt
    resp = httpx.post(f"{server.url}/v1/completions", headers={"Authorization": f"Bearer {server.token}"},
                      json={"model": model, "prompt": prompt, "max_tokens": 8, "temperature": 0}, timeout=30)
    resp.raise_for_status()
    return resp.json()["choices"][0]["text"].strip()


class Watcher:
    """A client thread that keeps requesting the serving name and records every failure."""

    def __init__(self, server: InferenceServer) -> None:
        self.server, self.seen, self.failures = server, set(), []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.seen.add(_ask(self.server, SERVING_NAME))
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                self.failures.append(repr(exc))

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(timeout=30)


def _types(r: redis.Redis, stream: str) -> list[str]:
    return [e.type for _, e in read_all(r, stream)]


def test_deploy_verify_swap_and_rollback_on_mismatch(r, registry, settings_kwargs, server, adapters, tiny_model):
    rig = Rig(r, _settings(settings_kwargs, _target(server)))
    v1 = store_version(registry, tiny_model, adapters[0], job_id="jobA", step=10)
    d1 = request_deployment(r, v1, "box")
    rec = rig.drive(d1)
    assert rec["status"] == "verified", rec
    assert rec["matched"] == rec["checked"] == 3 and rec["adapter_name"] == "jobA-s10"
    assert current(r)["box"]["version_id"] == v1
    assert registry.get_json(storage.alias_key("production:box"))["version_id"] == v1
    assert _ask(server, SERVING_NAME) == adapters[0].predictions[0]

    v2 = store_version(registry, tiny_model, adapters[1], job_id="jobB", step=20)
    with Watcher(server) as watcher:
        d2 = request_deployment(r, v2, "box")
        assert rig.drive(d2)["status"] == "verified"
        v3 = store_version(registry, tiny_model, adapters[2], job_id="jobC", step=30)
        tampered = list(adapters[2].predictions)
        tampered[1] = "<b>not what the model says</b>"
        write_snapshot(registry, "jobC", 30, v3, tampered)
        d3 = request_deployment(r, v3, "box")
        bad = rig.drive(d3)
    assert watcher.failures == [] and len(watcher.seen) >= 1
    assert watcher.seen <= {adapters[0].predictions[0], adapters[1].predictions[0]}
    assert bad["status"] == "rolled_back" and bad["restored_version_id"] == v2
    assert "2/3 predictions matched" in bad["error"] and "demo-001" in bad["error"]
    assert _ask(server, SERVING_NAME) == adapters[1].predictions[0]  # the previous adapter still serves
    assert current(r)["box"]["version_id"] == v2
    assert "jobC-s30" not in TargetClient(_target(server)).models()
    assert registry.get_json(storage.alias_key("production:box"))["version_id"] == v2
    dep_types = _types(r, streams.DEPLOYMENTS)
    assert dep_types.count("deployment.verified") == 2 and dep_types.count("deployment.rolled_back") == 1
    assert "alias.moved" in _types(r, streams.REGISTRY)

    manual = rollback(r, "box")  # back to v1
    assert rig.drive(manual)["status"] == "verified"
    assert _ask(server, SERVING_NAME) == adapters[0].predictions[0]
    assert [d["version_id"] for d in list_deployments(r, "box")] == [v1, v3, v2, v1]

    write_snapshot(registry, "jobC", 30, v3, adapters[2].predictions)  # the evaluator's true predictions
    assert rig.drive(request_deployment(r, v3, "box"))["status"] == "verified"
    models = TargetClient(_target(server)).models()
    assert {"jobC-s30", "jobA-s10", SERVING_NAME} <= set(models) and "jobB-s20" not in models  # 2 kept resident

    assert all(rep.equal for rep in rebuild(r, [DeploymentsProjection()]))


class CorruptingTransport(httpx.HTTPTransport):
    """Flips one byte of every uploaded chunk on its way to the (real) target."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            body = bytearray(request.read())
            body[len(body) // 2] ^= 0xFF
            request = httpx.Request(request.method, request.url, headers=request.headers, content=bytes(body))
        return super().handle_request(request)


def test_failures_leave_the_previous_adapter_serving(r, registry, settings_kwargs, server, adapters, tiny_model,
                                                     tmp_path):
    from services.stack.servers import free_port

    down = TargetConfig(name="down", url=f"http://127.0.0.1:{free_port()}", token="x")
    liar = _target(server, name="liar", token="wrong-token")
    rig = Rig(r, _settings(settings_kwargs, _target(server), down, liar, request_timeout_s=20))
    v1 = store_version(registry, tiny_model, adapters[0], job_id="jobA", step=10)
    assert rig.drive(request_deployment(r, v1, "box"))["status"] == "verified"
    v2 = store_version(registry, tiny_model, adapters[1], job_id="jobB", step=20)

    with Watcher(server) as watcher:
        rig.deployer._clients["box"] = TargetClient(_target(server), transport=CorruptingTransport())
        corrupt = rig.drive(request_deployment(r, v2, "box"))
        unreachable = rig.drive(request_deployment(r, v2, "down"))
        wrong_token = rig.drive(request_deployment(r, v2, "liar"))
        unknown = rig.drive(request_deployment(r, v2, "nowhere"))
        missing = rig.drive(request_deployment(r, "no-such-version", "box"))
    assert watcher.failures == []
    assert corrupt["status"] == "failed" and "rejected the upload" in corrupt["error"], corrupt
    assert unreachable["status"] == "failed" and "unreachable" in unreachable["error"]
    assert wrong_token["status"] == "failed" and "refused the token" in wrong_token["error"]
    assert unknown["status"] == "failed" and "unknown target 'nowhere'" in unknown["error"]
    assert missing["status"] == "failed" and "no-such-version" in missing["error"]
    assert _ask(server, SERVING_NAME) == adapters[0].predictions[0]
    assert current(r)["box"]["version_id"] == v1

    from shared.modeling import build_tiny_model
    from tests.support.lora import make_lora_adapter

    other_base = build_tiny_model(tmp_path / "other", hidden_size=32)
    other = Adapter(make_lora_adapter(other_base, tmp_path / "other-adapter", seed=5), adapters[0].predictions)
    v_other = store_version(registry, tiny_model, other, job_id="jobX", step=5)  # lineage claims our base
    rig.deployer._clients.pop("box")
    wrong_base = rig.drive(request_deployment(r, v_other, "box"))
    assert wrong_base["status"] == "failed" and "refused loading adapter" in wrong_base["error"], wrong_base
    rig.deployer._clients["box"] = TargetClient(_target(server), transport=OutOfMemoryTransport())
    oom = rig.drive(request_deployment(r, v2, "box"))
    assert oom["status"] == "failed" and "out of memory" in oom["error"], oom
    rig.deployer._clients["box"] = TargetClient(_target(server), transport=BrokenAfterSwapTransport())
    broken = rig.drive(request_deployment(r, v2, "box"))
    assert broken["status"] == "rolled_back" and "adapter produced NaNs" in broken["error"], broken
    assert broken["restored_version_id"] == v1 and "jobB-s20" not in TargetClient(_target(server)).models()
    assert _ask(server, SERVING_NAME) == adapters[0].predictions[0]
    assert current(r)["box"]["version_id"] == v1


class OutOfMemoryTransport(httpx.HTTPTransport):
    """The target answers a load as a GPU out of memory would (the inference server's 507)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/load_lora_adapter":
            return httpx.Response(507, json={"error": {"message": "CUDA out of memory loading adapter"}})
        return super().handle_request(request)


class BrokenAfterSwapTransport(httpx.HTTPTransport):
    """Once the serving name was swapped, this client's completions on it fail (as a sick adapter would)."""

    def __init__(self) -> None:
        super().__init__()
        self.swapped = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/load_lora_adapter" and b'"production"' in request.read():
            self.swapped = True
        elif self.swapped and request.url.path == "/v1/completions" and b'"production"' in request.read():
            return httpx.Response(500, json={"error": {"message": "adapter produced NaNs"}})
        return super().handle_request(request)


class FlakyTransport(httpx.HTTPTransport):
    """Drops the connection on the third PUT (after the target stored nothing of it)."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = 0
        self.bytes_sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            self.puts += 1
            if self.puts == 3:
                raise httpx.ConnectError("connection reset by test")
            self.bytes_sent += len(request.read())
        return super().handle_request(request)


def test_upload_resumes_and_fetch_by_url(r, registry, settings_kwargs, server, adapters, tiny_model, tmp_path):
    v1 = store_version(registry, tiny_model, adapters[0], job_id="jobA", step=10)
    files = registry.manifest(v1)["files"]
    src = registry.materialize(v1, tmp_path / "v1")
    state = DeployerState(r)
    total = sum(f["size"] for f in files)

    # a previous attempt sent the first 1000 bytes of the weights, then the deployer died
    first = TargetClient(_target(server))
    upload_id = first.create_upload(files)
    weights = next(f for f in files if f["path"].endswith(".safetensors"))
    first.put_chunk(upload_id, weights["path"], 0, (src / weights["path"]).read_bytes()[:1000])
    state.set_upload_id("box", v1, upload_id)

    flaky = FlakyTransport()
    client = TargetClient(_target(server), transport=flaky)
    lora_path = push.upload(client, state, v1, src, files, chunk=4096)
    assert flaky.puts > 3 and flaky.bytes_sent == total - 1000  # resumed twice, nothing sent twice
    client.load_adapter("resumed", lora_path)
    assert _ask(server, "resumed") == adapters[0].predictions[0]
    assert state.upload_id("box", v1) is None

    rig = Rig(r, _settings(settings_kwargs, _target(server)))
    rig.deployer.transfer = Transfer.FETCH
    rec = rig.drive(request_deployment(r, v1, "box"))
    assert rec["status"] == "verified", rec


def test_on_complete_policy_deploys_after_the_final_snapshot(r, registry, settings_kwargs, server, adapters,
                                                            tiny_model):
    rig = Rig(r, _settings(settings_kwargs, _target(server)))
    spec = {"deploy_policy": "on-complete", "deploy_target": "box"}
    ds = DatasetRef(name="d", path="/d", sha256="0" * 64, format="chat", n_examples=3)
    publish(r, Event.create("job.queued", JobQueued(spec=spec, dataset=ds), job_id="jobP"))
    vid = store_version(registry, tiny_model, adapters[1], job_id="jobP", step=40, spec=spec)
    publish(r, Event.create("version.stored", VersionStored(
        version_id=vid, kind="adapter", manifest_key=storage.manifest_key(vid), files=[], step=40, final=True),
        job_id="jobP"))
    publish(r, Event.create("job.completed", JobCompleted(step=40), job_id="jobP"))
    rig.drive(rounds=5)
    assert list_deployments(r) == []  # waits for the evaluator's snapshot of the final version
    publish(r, Event.create("snapshot.captured", SnapshotCaptured(version_id=vid, step=40, key="k"), job_id="jobP"))
    rig.drive(rounds=5)
    [dep] = list_deployments(r)
    assert rig.drive(dep["deployment_id"])["status"] == "verified" and dep["reason"] == "on-complete"
    assert _ask(server, SERVING_NAME) == adapters[1].predictions[0]


def test_snapshot_missing_is_a_clear_failure(r, registry, settings_kwargs, server, adapters, tiny_model):
    rig = Rig(r, _settings(settings_kwargs, _target(server)))
    v1 = store_version(registry, tiny_model, adapters[0], job_id="jobA", step=10, snapshot=False)
    rec = rig.drive(request_deployment(r, v1, "box"))
    assert rec["status"] == "failed" and "no evaluator snapshot" in rec["error"]
    assert SERVING_NAME not in TargetClient(_target(server)).models()


def test_main_process_deploys_and_stops_on_sigterm(r, registry, settings_kwargs, server, adapters, tiny_model):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    v1 = store_version(registry, tiny_model, adapters[0], job_id="jobA", step=10)
    env = {**os.environ, **{f"TRAINYARD_{k.upper()}": str(v) for k, v in settings_kwargs.items()},
           "TRAINYARD_DEV": "1", "TRAINYARD_TARGETS": json.dumps([_target(server).model_dump()])}
    proc = subprocess.Popen([sys.executable, "-m", "services.deployer.main"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        dep = request_deployment(r, v1, "box")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (get_deployment(r, dep) or {}).get("status") != "verified":
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.3)
        assert get_deployment(r, dep)["status"] == "verified"  # run by the process, read from its projection
        assert _ask(server, SERVING_NAME) == adapters[0].predictions[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_consumer_is_the_one_main_builds(r, settings_kwargs) -> None:
    consumer, runner, deployer = build(_settings(settings_kwargs), r, consumer="x")
    assert isinstance(consumer, Consumer) and isinstance(runner, ProjectionRunner)
    assert isinstance(deployer, Deployer) and consumer.config.group == "deployer"
    assert set(consumer.handlers) >= {"deployment.requested", "job.completed", "snapshot.captured"}


def test_verifies_against_the_evaluators_snapshot_with_rows_cut_by_answer_room(r, registry, settings_kwargs, server,
                                                                             adapters, tiny_model):
    """The evaluator cuts a prediction ``answer_room`` tokens past its target (flagged truncated); verification
    asks the target for that row's own length, so a faithful deployment still matches every row."""
    from services.evaluator.capture import Capturer, Request
    from services.evaluator.metrics import SemanticScorer
    from services.evaluator.models import ModelCache
    from shared.settings import EvaluatorSettings

    vid = store_version(registry, tiny_model, adapters[0], job_id="jobR", step=10, snapshot=False)
    capturer = Capturer(EvaluatorSettings(**settings_kwargs, device="cpu", max_new_tokens=24, answer_room=1), r,
                        registry, ModelCache("cpu"), SemanticScorer(False))
    doc = capturer.compute(Request(job_id="jobR", step=10, version_id=vid, base_model=str(tiny_model)))
    cut = [e for e in doc["examples"] if "truncated" in e["flags"] and e["pred_len"] < 24]
    assert cut, "the random adapter should ramble past target + 1 token on some row"
    registry.put_json(storage.snapshot_key("jobR", 10), doc)
    rig = Rig(r, _settings(settings_kwargs, _target(server)))
    rec = rig.drive(request_deployment(r, vid, "box"))
    assert rec["status"] == "verified", rec
    assert rec["matched"] == rec["checked"] == len(doc["examples"])
