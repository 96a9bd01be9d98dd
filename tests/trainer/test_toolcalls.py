"""Tool calling rendered in Qwen3's format, checked token by token on hand-written conversations.

The expected texts below are written out by hand from Qwen3's chat template (Qwen/Qwen3-0.6B): tools in the
system turn, ``<tool_call>`` lines in assistant turns, ``<tool_response>`` blocks in one user turn per run of
replies. Each case is cut into the spans that carry the loss (assistant turns, calls included) and those that
do not (system, user, tool replies, headers); the tokens and labels the trainer builds must equal those spans
tokenised one by one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.trainer.datasets import load_and_validate
from services.trainer.exceptions import DatasetError
from services.trainer.features import IGNORE, tokenize
from shared.modeling import render

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TOOLS_TEXT = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    '{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", '
    '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n'
    "</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')

OPENAI = {"tools": [WEATHER], "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
    {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": '{"temp": 25}'}]},
    {"role": "assistant", "content": "Paris 21 °C, Rome 25 °C."}]}

# (text, carries the loss) in order; "\n" after each <|im_end|> belongs to the next prompt, as in inference
OPENAI_SPANS = [
    ("<|im_start|>system\nYou are terse.\n\n" + TOOLS_TEXT + "<|im_end|>\n"
     "<|im_start|>user\nWeather in Paris and Rome?<|im_end|>\n<|im_start|>assistant\n", False),
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
     '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>', True),
    ('\n<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>\n'
     '<tool_response>\n{"temp": 25}\n</tool_response><|im_end|>\n<|im_start|>assistant\n', False),
    ("Paris 21 °C, Rome 25 °C.<|im_end|>", True),
]

SHAREGPT = {  # LLaMA-Factory's layout: tools as a JSON string of bare function definitions
    "tools": json.dumps([WEATHER["function"]]),
    "conversations": [
        {"from": "human", "value": "Is it warm in Oslo?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})},
        {"from": "observation", "value": "3 degrees, snow"},
        {"from": "gpt", "value": "No: 3 °C and snowing."}]}

SHAREGPT_SPANS = [
    ("<|im_start|>system\n" + TOOLS_TEXT + "<|im_end|>\n<|im_start|>user\nIs it warm in Oslo?<|im_end|>\n"
     "<|im_start|>assistant\n", False),
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call><|im_end|>', True),
    ("\n<|im_start|>user\n<tool_response>\n3 degrees, snow\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
     False),
    ("No: 3 °C and snowing.<|im_end|>", True),
]

TEXT_AND_CALL = {"messages": [  # an assistant turn with text and a call: the call on the next line
    {"role": "user", "content": "Paris?"},
    {"role": "assistant", "content": "Let me check.",
     "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
    {"role": "tool", "content": "sunny"},
    {"role": "assistant", "content": "Sunny."}]}

TEXT_AND_CALL_SPANS = [
    ("<|im_start|>user\nParis?<|im_end|>\n<|im_start|>assistant\n", False),
    ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {}}\n</tool_call><|im_end|>', True),
    ("\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n", False),
    ("Sunny.<|im_end|>", True),
]


@pytest.fixture(scope="module")
def tok(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def messages_of(tmp_path: Path, record: dict) -> list[dict[str, str]]:
    path = tmp_path / "calls.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    ds = load_and_validate(path)
    assert ds.n_tool_examples == 1
    return ds.examples[0].messages


@pytest.mark.parametrize(("record", "spans"), [(OPENAI, OPENAI_SPANS), (SHAREGPT, SHAREGPT_SPANS),
                                               (TEXT_AND_CALL, TEXT_AND_CALL_SPANS)],
                         ids=["openai", "sharegpt", "text-and-call"])
def test_tool_calls_render_as_qwen3_and_train_on_assistant_turns_only(tok, tmp_path: Path, record: dict,
                                                                       spans: list[tuple[str, bool]]) -> None:
    messages = messages_of(tmp_path, record)
    full = tok.apply_chat_template(messages, tokenize=False)
    assert full == "".join(text for text, _ in spans) + "\n"  # the rendered text, character for character
    rendered = render(tok, messages)
    assert rendered.target == spans[-1][0]  # what the evaluator compares predictions against

    feats = tokenize(tok, messages, 4096)
    assert feats is not None
    ids: list[int] = []
    labels: list[int] = []
    for text, loss in spans:  # the trainer's tokens and loss mask, token by token
        chunk = tok(text, add_special_tokens=False)["input_ids"]
        ids += chunk
        labels += chunk if loss else [IGNORE] * len(chunk)
    assert feats["input_ids"] == ids
    assert feats["labels"] == labels
    trained = tok.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE])
    assert "<tool_response>" not in trained and "# Tools" not in trained
    assert trained == "".join(text for text, loss in spans if loss)


def test_a_conversation_may_end_with_a_call(tok, tmp_path: Path) -> None:
    """Teaching when to call: the last turn is the call itself, and it is the target."""
    record = {"tools": [WEATHER], "messages": [{"role": "user", "content": "Weather in Oslo?"}, {
        "role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}]}
    messages = messages_of(tmp_path, record)
    assert render(tok, messages).target == \
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call><|im_end|>'


@pytest.mark.parametrize(("record", "reason"), [
    ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "r"},
                   {"role": "assistant", "content": "y"}]},
     "line 1: messages[1] is a tool reply with no tool call before it"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"function": {"name": "f", "arguments": "{not json"}}]}, {"role": "tool", "content": "r"},
        {"role": "assistant", "content": "y"}]},
     "line 1: messages[1].tool_calls[0].arguments is not valid JSON"),
    ({"messages": [{"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f"}}]},
                   {"role": "assistant", "content": "y"}]},
     "line 1: messages[0].tool_calls is only allowed on an assistant message, not 'user'"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"function": {}}]},
                   {"role": "tool", "content": "r"}, {"role": "assistant", "content": "y"}]},
     "line 1: messages[1].tool_calls[0] has no function name"),
    ({"tools": "[{broken", "conversations": SHAREGPT["conversations"]}, "line 1: tools is not valid JSON"),
    ({"conversations": [{"from": "human", "value": "x"}, {"from": "function_call", "value": "get_weather"},
                        {"from": "observation", "value": "r"}, {"from": "gpt", "value": "y"}]},
     "line 1: conversations[1].value (a function call) is not valid JSON"),
])
def test_bad_tool_calls_are_refused_naming_the_field(tmp_path: Path, record: dict, reason: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_and_validate(path)
    assert info.value.report[0].startswith(reason), info.value.report
