"""The evaluator's remote backend against the real inference server: the same losses and predictions as the
local engine, the adapter loaded under its content-addressed version id, one line for an unreachable server."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from services.evaluator.engine import Engine, Item
from services.evaluator.exceptions import RemoteError
from services.evaluator.models import ModelCache
from services.evaluator.remote import Remote, RemoteEngine
from shared.modeling import render
from tests.support import inference as helpers
from tests.support.evaluator import demo_rows, put_tracked, store_version
from tests.support.inference import Running, run_server
from tests.support.lora import make_lora_adapter as make_adapter


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with run_server(tiny_model, tmp_path_factory.mktemp("served") / "adapters") as running:
        yield running


def test_remote_engine_agrees_with_the_local_engine(server: Running, tiny_model: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    adapter = make_adapter(tiny_model, tmp_path / "adapter", seed=5)
    version_id = "v-0123456789abcdef"  # the registry's content-addressed name
    remote = Remote(server.url, helpers.TOKEN)
    remote.load_adapter(version_id, str(server.install(adapter, version_id)))
    with ModelCache("cpu").adapted(str(tiny_model), adapter) as (model, tok):
        items = [Item(r.prompt, r.target) for r in (render(tok, row["messages"]) for row in demo_rows(20))]
        local_scored, local_gens = Engine(model, tok, max_new_tokens=16, batch_size=8, answer_room=4).evaluate(items)
        far = RemoteEngine(remote, version_id, tok, max_new_tokens=16, batch_size=8, answer_room=4)
        scored, gens = far.evaluate(items)
    assert gens == local_gens  # text, token count, limit flag: all equal on our server
    assert any(g.hit_limit for g in gens) and len({g.n_tokens for g in gens}) > 1  # each row its own limit
    for got, want in zip(scored, local_scored, strict=True):
        assert got.n_target_tokens == want.n_target_tokens and got.input_truncated == want.input_truncated
        assert got.loss == pytest.approx(want.loss, rel=1e-4) and math.isfinite(got.loss)
        assert got.confidence == pytest.approx(want.confidence, rel=1e-4)
    assert far.stats.batches == 3  # 20 rows scored in requests of 8
    base = RemoteEngine(remote, "base", tok, max_new_tokens=16).generate([items[0].prompt])
    assert base[0].text != gens[0].text or base[0].n_tokens != gens[0].n_tokens  # the adapter really applied


def test_unreachable_or_refusing_server_is_one_line(server: Running, tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from services.stack.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    far = RemoteEngine(Remote(url, timeout_s=2), "base", AutoTokenizer.from_pretrained(tiny_model))
    with pytest.raises(RemoteError) as err:
        far.score([Item("question", "answer")])
    assert str(err.value) == f"cannot reach the inference server at {url}: ConnectError"
    with pytest.raises(RemoteError, match=r"^loading adapter v-x at http://127\.0\.0\.1:\d+ failed with 401"):
        Remote(server.url, "not-the-token").load_adapter("v-x", "v-x")


def test_snapshots_through_the_remote_backend_equal_local_ones(server: Running, settings_kwargs: dict, r,
                                                                tiny_model: Path, tmp_path: Path) -> None:
    """The evaluator service with ``eval_remote_url``: the version's adapter lands in the server's adapter
    directory under its version id, is loaded by that name, and the document equals the local engine's."""
    from services.evaluator.capture import Request
    from services.evaluator.main import build
    from services.registry.client import RegistryClient
    from shared.settings import EvaluatorSettings
    from shared.storage import s3_client

    base = str(tiny_model)
    local = EvaluatorSettings(**settings_kwargs, embeddings=False, batch_size=8)
    remote = local.model_copy(update={"eval_remote_url": server.url, "eval_remote_token": helpers.TOKEN,
                                      "eval_remote_adapters_dir": server.adapters_dir})
    registry = RegistryClient(s3_client(local), local.bucket)
    put_tracked(registry, "job-remote", n=6, heldout=1)
    vid, _ = store_version(registry, make_adapter(tiny_model, tmp_path / "a", seed=9), job_id="job-remote",
                           step=10, base_model=base)
    docs = {}
    for label, settings in (("local", local), ("remote", remote)):
        consumer, _ = build(settings, r, consumer=f"test-{label}")
        capturer = consumer.handlers["version.stored"].__self__.capturer
        docs[label] = [capturer.compute(Request("job-remote", step, v, base)) for step, v in ((0, None), (10, vid))]
    assert (server.adapters_dir / vid / "adapter_model.safetensors").exists()
    names = [m["id"] for m in server.client().get("/v1/models").json()["data"]]
    assert vid in names
    for got, want in zip(docs["remote"], docs["local"], strict=True):
        assert [e["prediction"] for e in got["examples"]] == [e["prediction"] for e in want["examples"]]
        for a, b in zip(got["examples"], want["examples"], strict=True):
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-3, abs=1e-4)
    assert [e["prediction"] for e in docs["remote"][0]["examples"]] != [e["prediction"] for e in docs["remote"][1]["examples"]]
