"""The real-shape lane: the narrow Qwen3 (width 1024, the real 151,936-row vocabulary, the real Qwen tokenizer
and chat template) through the whole product on the embedded stack: inbox → training → checkpoints →
versions → snapshots → on-complete deployment, verified → hot swap to an earlier version over REST, verified
→ merged export with the CLI, whose greedy answers equal the evaluator's recorded predictions.

The evaluator runs with a small memory budget so that its rows per batch are sized by the vocabulary (each
prompt position's logits are 151,936 floats); tests/evaluator/test_realshape_memory.py measures that bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from services.stack.demo import run_demo
from services.stack.supervisor import StackState, down
from shared.runtime import poll
from shared.settings import DEV_SECRET

STEPS = 4
AUTH = {"Authorization": f"Bearer {DEV_SECRET}"}
LANE_SPEC = {"name": "realshape", "lr": 1e-3, "batch_size": 2, "max_seq_len": 96, "checkpoint_every": 2,
             "log_every": 1, "tracked": {"count": 6, "seed": 0}}
LANE_ENV = {"TRAINYARD_MAX_NEW_TOKENS": "6", "TRAINYARD_GPU_MEMORY_BUDGET_MB": "160"}


def _deploy(api: httpx.Client, version_id: str) -> dict:
    res = api.post("/api/deployments", json={"version_id": version_id, "target": "local"})
    assert res.status_code == 202, res.text
    dep_id = res.json()["deployment_id"]

    def settled() -> dict | None:
        d = api.get(f"/api/deployments/{dep_id}").json()
        return d if d.get("status") in ("verified", "failed", "rolled_back") else None

    return poll(f"deployment {dep_id}", settled, 300, 1.0)


@pytest.mark.realshape
@pytest.mark.slow
@pytest.mark.timeout(1800)  # minutes of CPU training and snapshots, longer on a busy machine
def test_realshape_lane(narrow_model: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    t0 = time.monotonic()
    state_dir = tmp_path / "lane"
    result = run_demo(state_dir=state_dir, keep=True, steps=STEPS, console=Console(width=120),
                      model_dir=narrow_model, spec_overrides=LANE_SPEC, extra_env=LANE_ENV)
    try:
        assert result is not None and result.ok, "the lane's demo flow did not complete (see the output)"
        assert result.job["state"] == "completed" and result.job["step"] == STEPS
        assert sorted(p["step"] for p in result.points) == [0, 2, 4]  # baseline + each checkpoint, once
        versions = sorted((v for v in result.versions if v.get("kind") == "adapter"), key=lambda v: v["step"])
        assert len(versions) == 2
        assert result.deployment["status"] == "verified"
        assert all(rep.equal for rep in result.reports)
        state = StackState.load(state_dir.resolve())
        with httpx.Client(base_url=state.api_url, headers=AUTH, timeout=30) as api:
            first = versions[0]["version_id"]
            swapped = _deploy(api, first)  # hot swap the served adapter to the step-2 version
            assert swapped["status"] == "verified", swapped
            targets = {t["name"]: t for t in api.get("/api/targets").json()}
            assert targets["local"]["current"]["version_id"] == first
            _openai_answers(state.inference_url, f"{result.job['id']}-s2")
        _merged_export_matches(state, first, result.job["id"], tmp_path / "merged")
    finally:
        down(state_dir.resolve())
    elapsed = time.monotonic() - t0
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"realshape lane wall time: {elapsed:.0f}s (narrow Qwen3, vocab 151,936)")


def _openai_answers(inference_url: str, adapter_name: str) -> None:
    """The swapped-in adapter is loaded and ``production`` answers through the real chat template."""
    from openai import OpenAI

    token = os.environ.get("TRAINYARD_INFERENCE_TOKEN", "trainyard-dev-secret")
    client = OpenAI(base_url=f"{inference_url}/v1", api_key=token)
    served = [m.id for m in client.models.list().data]
    assert adapter_name in served and "production" in served, served
    out = client.chat.completions.create(model="production", messages=[{"role": "user", "content": "Bonjour, 你好"}],
                                         max_tokens=4, temperature=0)
    # ChatML of one user turn plus the generation prompt: 3 + 1 + 1 + n + 1 + 1 + 3 + 1 tokens with the real ids
    assert out.usage.prompt_tokens >= 10 and out.choices[0].message.content is not None


def _merged_export_matches(state: StackState, version_id: str, job_id: str, dest: Path) -> None:
    """`trainyard versions export --merged` writes a full model whose greedy answers equal the predictions the
    evaluator recorded for that version (base + adapter, merged, through the real tokenizer and template)."""
    env = {**os.environ, "TRAINYARD_REDIS_URL": state.redis_url, "TRAINYARD_S3_ENDPOINT": state.s3_endpoint,
           "TRAINYARD_STATE_DIR": state.state_dir}
    cli = Path(sys.executable).with_name("trainyard")
    proc = subprocess.run([str(cli), "versions", "export", version_id, str(dest), "--merged"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from services.deployer.verify import build_cases
    from services.evaluator.engine import Engine
    from services.registry.client import RegistryClient
    from shared import storage
    from shared.modeling import load_base
    from shared.settings import CommonSettings

    settings = CommonSettings(dev=True, redis_url=state.redis_url, s3_endpoint=state.s3_endpoint,
                              state_dir=Path(state.state_dir))
    reg = RegistryClient(storage.s3_client(settings), settings.bucket)
    snapshot = reg.get_json(storage.snapshot_key(job_id, 2))
    tracked = reg.get_json(storage.tracked_key(job_id))
    model, tok = load_base(str(dest))
    assert model.config.vocab_size == 151_936 and len(tok) == 151_669
    assert snapshot["version_id"] == version_id
    cases = build_cases(snapshot, tracked, tok, limit=100)
    engine = Engine(model, tok, max_new_tokens=int(LANE_ENV["TRAINYARD_MAX_NEW_TOKENS"]))
    got = engine.generate([c.prompt for c in cases])
    assert [g.text.strip() for g in got] == [c.expected for c in cases]
