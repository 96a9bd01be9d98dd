"""Tool calling in Qwen3's chat format, rendered into plain chat messages.

Qwen3's chat template (``Qwen/Qwen3-0.6B``, ``tokenizer_config.json``) writes tool use as text inside ordinary
ChatML turns:

* the tools go into the system turn: the system prompt (if any) and a blank line, then ``# Tools`` ... one
  ``<tools>`` line per tool (``tojson``) ... and the ``<tool_call>`` instructions;
* an assistant turn's calls follow its text, each ``<tool_call>\\n{"name": "NAME", "arguments": ARGS}\\n</tool_call>``
  on its own line (``ARGS`` verbatim when it is a string, else JSON);
* consecutive tool replies form one user turn, each ``<tool_response>\\nTEXT\\n</tool_response>``.

Rendering them here, as message text, gives exactly the template's tokens under any ChatML template (the tiny
test model's included) and keeps ``Messages`` plain strings for the trainer, the evaluator and the tracked
examples. Assistant turns, calls included, carry the loss; tool replies are user turns and never do.
"""

from __future__ import annotations

import json
from typing import Any

TOOLS_HEADER = ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
TOOLS_FOOTER = ("\n</tools>\n\nFor each function call, return a json object with function name and arguments "
                "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
                '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')

Messages = list[dict[str, str]]


class ToolFormatError(ValueError):
    """A tool definition, call or reply that cannot be rendered (the message names the field)."""


def tojson(value: Any) -> str:
    """JSON as transformers' chat templates write it (``tojson``: no ASCII escaping, keys in order)."""
    return json.dumps(value, ensure_ascii=False)


def parse_tools(raw: Any, where: str = "tools") -> list[dict[str, Any]]:
    """A ``tools`` field (a list, or a JSON string of one as LLaMA-Factory writes it) as tool definitions.

    A bare function definition (``{"name": ..., "parameters": ...}``) is wrapped as
    ``{"type": "function", "function": ...}``, the OpenAI shape the template expects.
    """
    if isinstance(raw, str):
        if not raw.strip():
            return []
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ToolFormatError(f"{where} is not valid JSON ({exc})") from None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ToolFormatError(f"{where} must be a list of tool definitions, got {type(raw).__name__}")
    tools = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise ToolFormatError(f"{where}[{i}] must be an object, got {type(tool).__name__}")
        fn = tool.get("function") if tool.get("type") == "function" else tool
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise ToolFormatError(f"{where}[{i}] has no function name")
        tools.append(tool if tool.get("type") == "function" else {"type": "function", "function": tool})
    return tools


def system_with_tools(system: str | None, tools: list[dict[str, Any]]) -> str:
    """The system turn's text when tools are offered (``system`` is None when the conversation has none)."""
    head = "" if system is None else system + "\n\n"
    return head + TOOLS_HEADER + "".join("\n" + tojson(t) for t in tools) + TOOLS_FOOTER


def parse_call(call: Any, where: str) -> tuple[str, str]:
    """(name, arguments text) of one call: OpenAI ``{"function": {...}}`` or a bare ``{"name", "arguments"}``."""
    if not isinstance(call, dict):
        raise ToolFormatError(f"{where} must be an object, got {type(call).__name__}")
    fn = call["function"] if isinstance(call.get("function"), dict) else call
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ToolFormatError(f"{where} has no function name")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            parsed = json.loads(args)
        except ValueError as exc:
            raise ToolFormatError(f"{where}.arguments is not valid JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise ToolFormatError(f"{where}.arguments must be a JSON object, got {type(parsed).__name__}")
        return name, args  # verbatim, as the template writes a string
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ToolFormatError(f"{where}.arguments must be an object or a JSON string, got {type(args).__name__}")
    return name, tojson(args)


def assistant_text(content: str, calls: list[tuple[str, str]]) -> str:
    """An assistant turn: its text, then each call on its own line."""
    out = content
    for i, (name, args) in enumerate(calls):
        if i > 0 or content:
            out += "\n"
        out += '<tool_call>\n{"name": "' + name + '", "arguments": ' + args + "}\n</tool_call>"
    return out


def responses_text(replies: list[str]) -> str:
    """The user turn that carries consecutive tool replies."""
    return "\n".join(f"<tool_response>\n{r}\n</tool_response>" for r in replies)


def add_tools(messages: Messages, tools: list[dict[str, Any]]) -> Messages:
    """Put the tools into the system turn (made when the conversation has none), as Qwen3 does."""
    if not tools:
        return messages
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": system_with_tools(messages[0]["content"], tools)}, *messages[1:]]
    return [{"role": "system", "content": system_with_tools(None, tools)}, *messages]


def merge_replies(turns: list[tuple[str, str]]) -> Messages:
    """(role, text) turns, role ``tool`` for replies, as chat messages: consecutive replies become one user turn."""
    out: Messages = []
    replies: list[str] = []
    for role, text in turns:
        if role == "tool":
            replies.append(text)
            continue
        if replies:
            out.append({"role": "user", "content": responses_text(replies)})
            replies = []
        out.append({"role": role, "content": text})
    if replies:
        out.append({"role": "user", "content": responses_text(replies)})
    return out
