"""One record (a JSONL line, a JSON array item, a CSV or Parquet row) to chat messages.

The format of a record is told by its fields (``detect_format``); ``to_messages`` converts it and raises
``BadRecord`` naming the field at fault. OpenAI content parts are joined (text parts only), and tool calls
(OpenAI ``tool_calls`` / ``tool`` replies, sharegpt ``function_call`` / ``observation``) are written in
Qwen3's format by ``services.trainer.toolcalls``.
"""

from __future__ import annotations

import json
from typing import Any

from services.trainer.spec import DatasetFormat
from services.trainer.toolcalls import (
    ToolFormatError,
    add_tools,
    assistant_text,
    merge_replies,
    parse_call,
    parse_tools,
)

CHAT_ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "model": "assistant", "function_call": "call",
                  "observation": "tool", "tool": "tool"}

Messages = list[dict[str, str]]
Turns = list[tuple[str, str]]  # (role, text); role "tool" for a tool reply, merged into user turns at the end


class BadRecord(Exception):
    """One record's problem (the message names the field)."""


def detect_format(record: Any) -> DatasetFormat | None:
    """The format of one parsed record, or None when no known format fits."""
    if not isinstance(record, dict):
        return None
    if "messages" in record:
        return DatasetFormat.chat
    if "conversations" in record:
        return DatasetFormat.sharegpt
    if "instruction" in record and "output" in record:
        return DatasetFormat.alpaca
    if "prompt" in record and "completion" in record:
        return DatasetFormat.prompt_completion
    if "text" in record:
        return DatasetFormat.text
    return None


def uses_tools(record: Any) -> bool:
    """Whether a record offers tools or holds tool calls or replies (shown as "with tool calls")."""
    if not isinstance(record, dict):
        return False
    if record.get("tools") not in (None, "", "[]", []):
        return True
    turns = record.get("messages", record.get("conversations"))
    return isinstance(turns, list) and any(isinstance(t, dict) and (t.get("tool_calls") or t.get("role") == "tool"
                                        or t.get("from") in ("function_call", "observation")) for t in turns)


def _text(record: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    if key not in record:
        raise BadRecord(f"missing field {key!r}")
    value = record[key]
    if value is None:
        raise BadRecord(f"field {key!r} is null")
    if not isinstance(value, str):
        raise BadRecord(f"field {key!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise BadRecord(f"field {key!r} is empty")
    return value


def content_text(value: Any, where: str) -> str:
    """A message's content: a string, or OpenAI content parts whose text parts are joined."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise BadRecord(f"{where} must be a string or a list of text parts, got {type(value).__name__}")
    parts = []
    for j, part in enumerate(value):
        if not isinstance(part, dict):
            raise BadRecord(f"{where}[{j}] must be a content part object, got {type(part).__name__}")
        kind = part.get("type")
        if kind != "text":
            raise BadRecord(f"{where}[{j}] is a content part of type {kind!r}; only 'text' parts are accepted")
        if not isinstance(part.get("text"), str):
            raise BadRecord(f"{where}[{j}].text must be a string, got {type(part.get('text')).__name__}")
        parts.append(part["text"])
    return "".join(parts)  # as the inference server joins them


def check_turns(turns: Turns, field: str) -> None:
    """The conversation rules, reported with the record's own indices."""
    if not turns:
        raise BadRecord("empty conversation")
    if turns[-1][0] not in ("assistant", "call"):  # a conversation may end with a call: it teaches calling
        raise BadRecord("the last message must be the assistant's answer")
    users = [i for i, (role, _) in enumerate(turns) if role in ("user", "tool")]
    if not users and len(turns) > 1:
        raise BadRecord("conversation has no user message")
    for i, (role, text) in enumerate(turns):
        if role == "tool" and (i == 0 or turns[i - 1][0] not in ("tool", "call")):
            raise BadRecord(f"{field}[{i}] is a tool reply with no tool call before it")
        if role not in ("assistant", "call"):
            continue
        if users and i < users[0]:
            raise BadRecord(f"roles out of order: {field}[{i}] is an assistant turn before any user turn")
        if role == "assistant" and not text.strip():
            raise BadRecord(f"empty assistant turn: {field}[{i}].content is blank")


def _finish(turns: Turns, field: str, tools_raw: Any, offset: int = 0) -> Messages:
    check_turns(turns[offset:], field)  # turns[:offset]: a system turn made from a record-level field
    try:
        tools = parse_tools(tools_raw)
    except ToolFormatError as exc:
        raise BadRecord(str(exc)) from None
    plain = [("assistant" if role == "call" else role, text) for role, text in turns]
    return add_tools(merge_replies(plain), tools)


def _calls(raw: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise BadRecord(f"{where} must be a non-empty list of calls")
    try:
        return [parse_call(c, f"{where}[{j}]") for j, c in enumerate(raw)]
    except ToolFormatError as exc:
        raise BadRecord(str(exc)) from None


def chat_messages(record: dict[str, Any]) -> Messages:
    """OpenAI chat: ``messages`` with optional ``tool_calls`` on assistant turns, ``tool`` replies, ``tools``."""
    raw = record.get("messages")
    if not isinstance(raw, list):
        raise BadRecord("field 'messages' must be a list")
    turns: Turns = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRecord(f"{where} must be an object")
        role, calls = m.get("role"), m.get("tool_calls")
        if role not in CHAT_ROLES:
            raise BadRecord(f"{where}.role must be one of {sorted(CHAT_ROLES)}, got {role!r}")
        if calls and role != "assistant":
            raise BadRecord(f"{where}.tool_calls is only allowed on an assistant message, not {role!r}")
        content = m.get("content")
        text = "" if content is None and calls else content_text(content, f"{where}.content")
        if calls:
            turns.append(("call", assistant_text(text, _calls(calls, f"{where}.tool_calls"))))
        else:
            turns.append((role, text))
    return _finish(turns, "messages", record.get("tools"))


def sharegpt_messages(record: dict[str, Any]) -> Messages:
    """sharegpt: ``conversations`` of from/value turns, ``function_call`` / ``observation`` turns, ``tools``."""
    raw = record.get("conversations")
    if not isinstance(raw, list):
        raise BadRecord("field 'conversations' must be a list")
    turns: Turns = []
    system = record.get("system")
    if system is not None and not isinstance(system, str):
        raise BadRecord(f"field 'system' must be a string, got {type(system).__name__}")
    if system and not (raw and isinstance(raw[0], dict) and raw[0].get("from") == "system"):
        turns.append(("system", system))
    for i, m in enumerate(raw):
        where = f"conversations[{i}]"
        if not isinstance(m, dict):
            raise BadRecord(f"{where} must be an object")
        role, value = m.get("from"), m.get("value")
        if role not in SHAREGPT_ROLES:
            raise BadRecord(f"{where}.from must be one of {sorted(SHAREGPT_ROLES)}, got {role!r}")
        if not isinstance(value, str):
            raise BadRecord(f"{where}.value must be a string, got {type(value).__name__}")
        if SHAREGPT_ROLES[role] == "call":
            try:
                call = json.loads(value)
            except ValueError as exc:
                raise BadRecord(f"{where}.value (a function call) is not valid JSON ({exc})") from None
            turns.append(("call", assistant_text("", _calls(call if isinstance(call, list) else [call], where))))
        else:
            turns.append((SHAREGPT_ROLES[role], value))
    return _finish(turns, "conversations", record.get("tools"), offset=len(turns) - len(raw))


def to_messages(record: Any, fmt: DatasetFormat) -> Messages:
    """Convert one record of format ``fmt`` to chat messages; raise BadRecord naming the problem."""
    if not isinstance(record, dict):
        raise BadRecord(f"expected a JSON object, got {type(record).__name__}")
    if fmt == DatasetFormat.chat:
        return chat_messages(record)
    if fmt == DatasetFormat.sharegpt:
        return sharegpt_messages(record)
    if fmt == DatasetFormat.alpaca:
        instruction = _text(record, "instruction")
        extra = _text(record, "input", allow_empty=True) if record.get("input") is not None else ""
        output = _text(record, "output")
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    if fmt == DatasetFormat.prompt_completion:
        return [{"role": "user", "content": _text(record, "prompt")},
                {"role": "assistant", "content": _text(record, "completion")}]
    return [{"role": "assistant", "content": _text(record, "text")}]
