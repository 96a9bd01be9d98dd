"""Tokenised training features: loss only on assistant tokens, via ``shared.modeling.render``.

Each assistant turn's target (answer + end-of-turn marker) is a loss span; everything else (system, user
turns, chat-template headers) gets label -100. The prompt is tokenised separately from the target, exactly as
the evaluator and the inference server see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.modeling import render

IGNORE = -100
Messages = list[dict[str, str]]


def segments(tokenizer: Any, messages: Messages) -> list[tuple[str, bool]]:
    """(text, is_loss) chunks of a conversation, one loss chunk per assistant turn."""
    out: list[tuple[str, bool]] = []
    consumed = ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        rendered = render(tokenizer, messages[: i + 1])
        if not rendered.prompt.startswith(consumed):  # template rewrites history: last turn only
            last = render(tokenizer, messages)
            return [(last.prompt, False), (last.target, True)]
        out.append((rendered.prompt[len(consumed):], False))
        out.append((rendered.target, True))
        consumed = rendered.prompt + rendered.target
    return out


def tokenize(tokenizer: Any, messages: Messages, max_len: int) -> dict[str, list[int]] | None:
    """input_ids and labels for one conversation, truncated to ``max_len``; None if no loss token is left."""
    ids: list[int] = []
    labels: list[int] = []
    for text, is_loss in segments(tokenizer, messages):
        if not text:
            continue
        chunk = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += chunk
        labels += chunk if is_loss else [IGNORE] * len(chunk)
    ids, labels = ids[:max_len], labels[:max_len]
    if all(x == IGNORE for x in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def build_features(tokenizer: Any, conversations: Sequence[Messages], max_len: int) -> list[dict[str, list[int]]]:
    feats = []
    for messages in conversations:
        f = tokenize(tokenizer, messages, max_len)
        if f is not None:
            feats.append(f)
    if not feats:
        raise ValueError("no example has an answer token within max_seq_len")
    return feats


class PadCollator:
    """Right-pads input_ids/labels of a batch and builds the attention mask (the unpacked path)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def collator(tokenizer: Any, packing: bool) -> Any:
    if packing:
        from transformers import DataCollatorWithFlattening

        return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return PadCollator(pad)
