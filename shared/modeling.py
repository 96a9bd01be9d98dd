"""Model helpers shared by trainer, evaluator, deployer and inference.

* ``build_tiny_model(dir)``: a tiny Qwen3 from config (random init) with a byte-level BPE tokenizer trained
  locally and a ChatML chat template, saved with ``save_pretrained``. Nothing is downloaded.
* ``render(tokenizer, messages)``: the one place that turns a conversation into prompt and target text, so
  that training, evaluation, deployment checks and serving all see the same tokens.
* Plain text (a conversation of one assistant turn, which is what a ``{"text": ...}`` line becomes) is
  language modelling, not chat: no chat template. ``render`` splits it into a prompt (its first
  ``TEXT_PROMPT_SHARE`` of tokens, at most ``TEXT_PROMPT_MAX_TOKENS``) and a target (the continuation, at
  most ``TEXT_TARGET_MAX_TOKENS``, ending with the end-of-sequence token when it reaches the end of the text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TEXT_PROMPT_SHARE = 0.5  # a plain text's prompt: this share of its tokens ...
TEXT_PROMPT_MAX_TOKENS = 64  # ... but at most this many
TEXT_TARGET_MAX_TOKENS = 48  # its target: the continuation, at most this many tokens


def demo_dataset_path() -> Path:
    return Path(__file__).parent / "demo_data" / "demo.jsonl"


def _corpus(extra_texts: list[str]) -> list[str]:
    texts = list(extra_texts)
    with open(demo_dataset_path(), encoding="utf-8") as f:
        for line in f:
            for m in json.loads(line)["messages"]:
                texts.append(m["content"])
    texts += ["system", "user", "assistant", "The quick brown fox jumps over the lazy dog."]
    return texts


def build_tokenizer(out_dir: Path, vocab_size: int = 512, extra_texts: list[str] | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_corpus(extra_texts or []), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None,
        unk_token=None, model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_model(
    out_dir: str | Path, seed: int = 0, hidden_size: int = 64, layers: int = 2, init_range: float = 0.2
) -> Path:
    """Write a tiny random-init Qwen3 and its tokenizer to ``out_dir`` (a directory transformers can load).

    ``init_range`` is larger than Qwen3's 0.02 on purpose: LoRA trains neither the norms nor the (tied)
    embeddings, so with a 0.02 init the logits of a random 64-wide model stay near uniform and LoRA cannot
    learn anything visible; at 0.2, LoRA r16 at lr 3e-3 learns the 55 demo pairs in ~200 steps.
    """
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out)
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2, head_dim=hidden_size // 4,
        max_position_embeddings=512, tie_word_embeddings=True, initializer_range=init_range,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    return out


@dataclass(frozen=True)
class Rendered:
    prompt: str  # everything the model is given, ending with the assistant header
    target: str  # what it should produce, including the end-of-turn marker


def is_plain_text(messages: list[dict[str, str]]) -> bool:
    """A lone assistant turn: plain text, trained and evaluated as language modelling (no chat template)."""
    return len(messages) == 1 and messages[0].get("role") == "assistant"


def split_text(tokenizer: Any, text: str) -> Rendered:
    """A plain text's prompt (its beginning) and target (the continuation), cut at token boundaries.

    The prompt is ``TEXT_PROMPT_SHARE`` of the text's tokens (at least one, at most
    ``TEXT_PROMPT_MAX_TOKENS``); the target is the next tokens, at most ``TEXT_TARGET_MAX_TOKENS``, plus the
    end-of-sequence token when it reaches the end of the text (training appends it to every text).
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [start for start, _ in enc["offset_mapping"]]
    n = len(starts)
    if n == 0:
        raise ValueError("the text has no tokens")
    cut = max(1, min(int(n * TEXT_PROMPT_SHARE), TEXT_PROMPT_MAX_TOKENS))
    if cut >= n:
        return Rendered(prompt=text, target=tokenizer.eos_token or "")
    end = cut + TEXT_TARGET_MAX_TOKENS
    if end >= n:
        return Rendered(prompt=text[:starts[cut]], target=text[starts[cut]:] + (tokenizer.eos_token or ""))
    return Rendered(prompt=text[:starts[cut]], target=text[starts[cut]:starts[end]])


def render(tokenizer: Any, messages: list[dict[str, str]]) -> Rendered:
    """Split a conversation whose last turn is the assistant's into prompt text and target text.

    Plain text (``is_plain_text``) is split by ``split_text`` instead of going through the chat template.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant's answer")
    if is_plain_text(messages):
        return split_text(tokenizer, messages[0]["content"])
    context = messages[:-1]
    answer = messages[-1]["content"]
    prompt = tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if full.startswith(prompt):
        target = full[len(prompt):].rstrip("\n")
    else:  # templates that rewrite history (e.g. thinking blocks): fall back to answer + eos
        target = answer + (tokenizer.eos_token or "")
    return Rendered(prompt=prompt, target=target)


def strip_eos(tokenizer: Any, text: str) -> str:
    eos = tokenizer.eos_token or ""
    return text.split(eos)[0] if eos else text


def answer_of(tokenizer: Any, rendered: Rendered) -> str:
    """The plain answer text of a rendered target (what exact match compares against)."""
    return strip_eos(tokenizer, rendered.target).strip()


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_base(base_model: str, device: str = "cpu", dtype: str | None = None):
    """Load a base model and tokenizer from a local directory or hub id (safetensors only)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch_dtype, use_safetensors=True)
    model.to(device)
    model.eval()
    return model, tokenizer
