"""``shared.modeling.render`` on plain text: a prompt (the beginning) and a target (the continuation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import modeling
from shared.modeling import TEXT_PROMPT_MAX_TOKENS, TEXT_TARGET_MAX_TOKENS, is_plain_text, render


@pytest.fixture(scope="module")
def tok(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("text", [
    "The quick brown fox jumps over the lazy dog.",
    "héllo wörld ünïcödé 日本語 text with emoji 🦊 inside",
    "one",
])
def test_short_text_splits_at_half_its_tokens(tok, text: str) -> None:
    r = render(tok, [{"role": "assistant", "content": text}])
    n = len(ids(tok, text))
    assert "<|im_start|>" not in r.prompt  # no chat template
    assert r.prompt and text.startswith(r.prompt)
    assert r.prompt + r.target == text + tok.eos_token  # the continuation, to the end of the text
    assert ids(tok, r.prompt) == ids(tok, text)[:max(1, n // 2)]  # cut on a token boundary


def test_long_text_prompt_and_target_are_capped(tok) -> None:
    text = " ".join(f"word{i}" for i in range(400))
    r = render(tok, [{"role": "assistant", "content": text}])
    all_ids = ids(tok, text)
    assert ids(tok, r.prompt) == all_ids[:TEXT_PROMPT_MAX_TOKENS]
    assert ids(tok, r.target) == all_ids[TEXT_PROMPT_MAX_TOKENS:TEXT_PROMPT_MAX_TOKENS + TEXT_TARGET_MAX_TOKENS]
    assert not r.target.endswith(tok.eos_token) and text.startswith(r.prompt + r.target)


def test_only_a_lone_assistant_turn_is_plain_text(tok, monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_plain_text([{"role": "assistant", "content": "x"}])
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert not is_plain_text(chat)
    assert render(tok, chat).prompt.endswith("<|im_start|>assistant\n")
    monkeypatch.setattr(modeling, "TEXT_PROMPT_SHARE", 0.25)
    text = " ".join(f"w{i}" for i in range(20))
    n = len(ids(tok, text))
    assert ids(tok, render(tok, [{"role": "assistant", "content": text}]).prompt) == ids(tok, text)[:n // 4]
