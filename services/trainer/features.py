"""Tokenised training features: loss only on assistant tokens, via ``shared.modeling.render``.

Each assistant turn's target (answer + end-of-turn marker) is a loss span; everything else (system, user
turns, chat-template headers) gets label -100. The prompt is tokenised separately from the target, exactly as
the evaluator and the inference server see it.

Plain text (``shared.modeling.is_plain_text``) is language modelling: its raw tokens plus the end-of-sequence
token, no chat template, loss on every token; cut at ``max_len``, or split into ``max_len`` chunks when packing
(so no text is lost and the packing collator fills rows with them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.modeling import is_plain_text, render

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


def text_ids(tokenizer: Any, text: str) -> list[int]:
    """A plain text's tokens followed by the end-of-sequence token (when the tokenizer has one)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def text_features(tokenizer: Any, text: str, max_len: int, packing: bool = False) -> list[dict[str, list[int]]]:
    """Language-modelling features of one text: cut at ``max_len``, or every ``max_len`` chunk when packing.

    A feature needs two tokens or more: the first token of a sequence is never a prediction target.
    """
    ids = text_ids(tokenizer, text)
    chunks = [ids[i:i + max_len] for i in range(0, len(ids), max_len)] if packing else [ids[:max_len]]
    return [{"input_ids": c, "labels": list(c)} for c in chunks if len(c) >= 2]


def tokenize(tokenizer: Any, messages: Messages, max_len: int) -> dict[str, list[int]] | None:
    """input_ids and labels for one conversation, truncated to ``max_len``; None if no loss token is left."""
    if is_plain_text(messages):
        feats = text_features(tokenizer, messages[0]["content"], max_len)
        return feats[0] if feats else None
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


def features(tokenizer: Any, messages: Messages, max_len: int, packing: bool = False) -> list[dict[str, list[int]]]:
    """The training features of one example (several only for a long plain text with packing)."""
    if is_plain_text(messages):
        return text_features(tokenizer, messages[0]["content"], max_len, packing)
    f = tokenize(tokenizer, messages, max_len)
    return [f] if f is not None else []


def build_features(tokenizer: Any, conversations: Sequence[Messages], max_len: int,
                   packing: bool = False) -> list[dict[str, list[int]]]:
    feats = []
    for messages in conversations:
        feats += features(tokenizer, messages, max_len, packing)
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


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into bins of total <= ``capacity`` (longest first, first bin that fits)."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: (-lengths[k], k)):
        n = lengths[i]
        for b, free in enumerate(room):
            if n <= free:
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(capacity - n)
    return bins


class PackCollator:
    """Packs a batch's examples into rows, padding-free within each row (one row unless ``row_tokens``).

    ``position_ids`` restart at 0 for every example (and for the padding tail of a row) and no
    ``attention_mask`` is returned, so transformers masks attention per example
    (``masking_utils.find_packed_sequence_indices``, which needs ``use_cache=False``); ``cu_seq_lens_*`` give the same boundaries in the
    flash-attention varlen format, which ``sdpa_packed`` (below) and flash attention use to attend within
    each example only. The first label of every example is -100, so no example learns to predict the next
    one's first token.

    Logits are computed only where they are needed: ``logits_to_keep`` marks the positions whose next token
    is an answer token and ``shift_labels`` holds those next tokens, in order. The loss stays the sum of
    cross-entropies over answer tokens divided by their count, the same as the padded path.
    """

    def __init__(self, pad_id: int, row_tokens: int | None = None) -> None:
        self.pad_id = pad_id
        self.row_tokens = row_tokens

    def layout(self, lengths: Sequence[int]) -> list[list[int]]:
        """The rows of a batch: indices of its examples, in the order they are laid out in each row."""
        return first_fit_decreasing(lengths, max(self.row_tokens or sum(lengths), max(lengths)))

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        lengths = [len(b["input_ids"]) for b in batch]
        rows = self.layout(lengths)
        width = max(sum(lengths[i] for i in row) for row in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        seq_lens: list[int] = []
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                n = lengths[i]
                ids[r, at:at + n] = torch.tensor(batch[i]["input_ids"])
                labels[r, at + 1:at + n] = torch.tensor(batch[i]["labels"][1:])
                positions[r, at:at + n] = torch.arange(n)
                seq_lens.append(n)
                at += n
            if at < width:
                positions[r, at:] = torch.arange(width - at)
                seq_lens.append(width - at)
        shifted = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE)
        keep = shifted != IGNORE
        cu = torch.tensor([0, *seq_lens], dtype=torch.int32).cumsum(0, dtype=torch.int32)
        return {"input_ids": ids, "labels": labels, "position_ids": positions, "logits_to_keep": keep,
                "shift_labels": shifted[keep], "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
                "max_length_q": max(seq_lens), "max_length_k": max(seq_lens), "use_cache": False}


PACKED_ATTENTION = "sdpa_packed"


def sdpa_packed(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """SDPA that attends within each packed example only (causal, no dense mask); plain SDPA otherwise.

    With ``cu_seq_lens_q`` (from ``PackCollator``) the cost is the sum of the examples' squared lengths instead
    of the squared row length a block-diagonal mask costs.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.get("cu_seq_lens_q")
    if cu is None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    batch, heads, width, dim = query.shape
    if key.shape[1] != heads:  # grouped-query attention: the CPU flash kernel wants equal head counts
        key = key.repeat_interleave(heads // key.shape[1], dim=1)
        value = value.repeat_interleave(heads // value.shape[1], dim=1)
    q, k, v = (t.transpose(0, 1).reshape(1, heads, batch * width, dim) for t in (query, key, value))
    bounds = cu.tolist()
    parts = [torch.nn.functional.scaled_dot_product_attention(
        q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], dropout_p=dropout, scale=scaling, is_causal=True)
        for s, e in zip(bounds[:-1], bounds[1:], strict=True) if e > s]
    out = torch.cat(parts, dim=2).reshape(heads, batch, width, dim).permute(1, 2, 0, 3).contiguous()
    return out, None


def use_packed_attention(model: Any) -> None:
    """Switch ``model`` (a transformers or peft model) to ``sdpa_packed``; call it when ``spec.packing``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, sdpa_mask

    if PACKED_ATTENTION not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionInterface.register(PACKED_ATTENTION, sdpa_packed)
        AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)
    model.set_attn_implementation(PACKED_ATTENTION)


def collator(tokenizer: Any, packing: bool, row_tokens: int | None = None) -> Any:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if packing:
        return PackCollator(pad, row_tokens)
    return PadCollator(pad)
