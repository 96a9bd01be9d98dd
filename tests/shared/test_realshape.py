"""The real-shape models: the real Qwen tokenizer (ids, round trip, chat template) and the narrow Qwen3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.realshape import ADDED_TOKENS, FIRST_ADDED_ID, build_qwen_tokenizer


@pytest.fixture(scope="module")
def qwen_tok(tmp_path_factory: pytest.TempPathFactory):
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("qwen-tok")
    build_qwen_tokenizer(out)
    return AutoTokenizer.from_pretrained(out)  # as every service loads it


def test_added_tokens_sit_at_qwen3_ids(qwen_tok):
    expected = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
                "<|object_ref_start|>": 151646, "<|vision_pad|>": 151654, "<|video_pad|>": 151656,
                "<tool_call>": 151657, "</tool_call>": 151658, "<|fim_prefix|>": 151659, "<|file_sep|>": 151664,
                "<tool_response>": 151665, "</tool_response>": 151666, "<think>": 151667, "</think>": 151668}
    for token, token_id in expected.items():
        assert qwen_tok.convert_tokens_to_ids(token) == token_id, token
        assert qwen_tok.encode(token, add_special_tokens=False) == [token_id], token
    assert [qwen_tok.convert_ids_to_tokens(FIRST_ADDED_ID + i) for i in range(len(ADDED_TOKENS))] == list(ADDED_TOKENS)
    assert len(qwen_tok) == 151_669
    assert (qwen_tok.eos_token, qwen_tok.pad_token, qwen_tok.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    # the BPE ranks are the real ones: a few well-known Qwen ids
    assert qwen_tok.encode("Hello, world", add_special_tokens=False) == [9707, 11, 1879]
    assert qwen_tok.encode("12345", add_special_tokens=False) == [16, 17, 18, 19, 20]  # digits split one by one


def test_mixed_script_text_round_trips(qwen_tok):
    text = ("Grüße aus Köln — naïve café; 你好，世界！こんにちは、Привет, мир; مرحبا بالعالم; नमस्ते; "
            "emoji 🙂👍🏽, code `def f(x):\n\treturn x**2`  <think>why</think>\r\n\n  trailing  ")
    ids = qwen_tok.encode(text, add_special_tokens=False)
    assert qwen_tok.decode(ids) == text
    assert 151667 in ids and 151668 in ids  # added tokens are matched inside text
    assert qwen_tok.decode(ids, skip_special_tokens=True) == text  # think markers are not "special" in Qwen3


def test_chat_template_renders_chatml_like_qwen3(qwen_tok):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"}]
    full = qwen_tok.apply_chat_template(messages, tokenize=False)
    assert full == ("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                    "<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n")
    prompt = qwen_tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    no_think = qwen_tok.apply_chat_template(messages[1:2], tokenize=False, add_generation_prompt=True,
                                            enable_thinking=False)
    assert no_think == "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def test_chat_template_history_reasoning_and_tools(qwen_tok):
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "<think>\nold thoughts\n</think>\n\nA1"},  # before the last query
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
        {"role": "tool", "content": "42"},
        {"role": "tool", "content": "43"},
        {"role": "assistant", "content": "B", "reasoning_content": "used f"},
    ]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    got = qwen_tok.apply_chat_template(messages, tools=tools, tokenize=False)
    expected = (
        "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        + json.dumps(tools[0]) +
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
        "<args-json-object>}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\na<|im_end|>\n"
        "<|im_start|>assistant\nA1<|im_end|>\n"  # reasoning of turns before the last query is dropped
        "<|im_start|>user\nb<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n42\n</tool_response>\n<tool_response>\n43\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n<think>\nused f\n</think>\n\nB<|im_end|>\n"
    )
    assert got == expected


def test_demo_model_narrow_has_the_real_shape(narrow_model: Path):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(narrow_model)
    assert (config.model_type, config.vocab_size, config.hidden_size, config.intermediate_size) == (
        "qwen3", 151_936, 1024, 3072)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (16, 8, 128)
    assert 2 <= config.num_hidden_layers <= 4 and config.tie_word_embeddings
    assert config.rope_parameters["rope_theta"] == 1_000_000
    assert list(narrow_model.glob("*.safetensors")) and not list(narrow_model.glob("*.bin"))
    tok = AutoTokenizer.from_pretrained(narrow_model)
    assert type(tok).__name__ == "Qwen2Tokenizer" and len(tok) == 151_669
    assert (config.eos_token_id, config.pad_token_id) == (tok.eos_token_id, tok.pad_token_id)


def test_full_shape_config_is_qwen3_0_6b():
    """The full shape's config, without building 596M weights: the parameter count from a meta-device model."""
    import torch
    from transformers import Qwen3ForCausalLM

    from shared.realshape import qwen3_config

    config = qwen3_config()
    assert (config.num_hidden_layers, config.max_window_layers) == (28, 28)
    with torch.device("meta"):
        model = Qwen3ForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) == 596_049_920  # Qwen3-0.6B's count (tied embeddings)


def test_demo_model_rejects_an_unknown_shape(tmp_path: Path):
    cli = Path(sys.executable).with_name("trainyard")
    proc = subprocess.run([str(cli), "demo-model", str(tmp_path / "m"), "--shape", "qwen3-7b"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown --shape 'qwen3-7b'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists()


def test_plain_text_splits_on_qwen_token_boundaries(qwen_tok):
    from shared.modeling import render

    for text in ["The quick brown fox jumps over the lazy dog.", "Ünïcödé 日本語のテキスト 🦊 and more words to split"]:
        r = render(qwen_tok, [{"role": "assistant", "content": text}])
        ids = qwen_tok(text, add_special_tokens=False)["input_ids"]
        assert r.prompt + r.target == text + "<|im_end|>" and "<|im_start|>" not in r.prompt
        assert qwen_tok(r.prompt, add_special_tokens=False)["input_ids"] == ids[:len(ids) // 2]
