"""vLLM's ``prompt_logprobs`` and token-id prompts on the real inference server, through the openai client."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support import inference as helpers
from tests.support.inference import Running

PROMPT = "What is the capital of France? Answer: Paris"


def _expected(tiny_model: Path, adapter: Path | None, ids: list[int]) -> torch.Tensor:
    model, _ = helpers._reference_model(tiny_model, adapter)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
    return torch.log_softmax(logits, -1)


def test_prompt_logprobs_have_vllm_shape_and_the_models_values(server: Running, tiny_model: Path,
                                                                lora_adapters: dict[str, Path]) -> None:
    client = server.openai()
    path = server.install(lora_adapters["one"], "v-scoring")
    server.client().post("/v1/load_lora_adapter", json={"lora_name": "v-scoring", "lora_path": str(path)}).raise_for_status()
    _, tok = helpers._reference_model(tiny_model, None)
    ids = tok(PROMPT)["input_ids"]
    for model, adapter in (("base", None), ("v-scoring", lora_adapters["one"])):
        resp = client.completions.create(model=model, prompt=ids, max_tokens=1, temperature=0,
                                         extra_body={"prompt_logprobs": 3})
        got = resp.choices[0].model_extra["prompt_logprobs"]
        want = _expected(tiny_model, adapter, ids)
        assert len(got) == len(ids) and got[0] is None
        for j, (token, entry) in enumerate(zip(ids[1:], got[1:], strict=True)):
            mine = entry[str(token)]
            assert mine["logprob"] == pytest.approx(float(want[j, token]), abs=1e-4)
            assert mine["rank"] == int((want[j] > want[j, token]).sum()) + 1
            assert mine["decoded_token"] == tok.decode([token])
            top = sorted(entry.values(), key=lambda e: e["rank"])[:3]
            assert [e["rank"] for e in top] == [1, 2, 3]
            assert top[0]["logprob"] == pytest.approx(float(want[j].max()), abs=1e-4)
    # a text prompt scores the same tokens as its ids
    text = client.completions.create(model="base", prompt=PROMPT, max_tokens=1, extra_body={"prompt_logprobs": 0})
    by_ids = client.completions.create(model="base", prompt=ids, max_tokens=1, extra_body={"prompt_logprobs": 0})
    assert text.choices[0].model_extra["prompt_logprobs"] == by_ids.choices[0].model_extra["prompt_logprobs"]


def test_token_id_prompts_generate_like_text_and_bad_ids_are_refused(server: Running, tiny_model: Path) -> None:
    client = server.openai()
    _, tok = helpers._reference_model(tiny_model, None)
    ids = tok(PROMPT)["input_ids"]
    by_text = client.completions.create(model="base", prompt=PROMPT, max_tokens=8, temperature=0)
    both = client.completions.create(model="base", prompt=[ids, ids[:-1]], max_tokens=8, temperature=0)
    assert both.choices[0].text == by_text.choices[0].text
    assert both.choices[1].text.strip() == helpers.reference(tiny_model, None, tok.decode(ids[:-1]), 8)
    http = server.client()
    bad = http.post("/v1/completions", json={"prompt": [1, 2, len(tok) + 5], "max_tokens": 2})
    assert bad.status_code == 400 and "token ids" in bad.json()["error"]["message"]
    assert http.post("/v1/completions", json={"prompt": "x", "prompt_logprobs": 50}).status_code in (400, 422)
    streamed = http.post("/v1/completions", json={"prompt": "x", "prompt_logprobs": 0, "stream": True})
    assert streamed.status_code == 400
