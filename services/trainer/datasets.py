"""Dataset formats, validation with line numbers, and conversion to chat messages.

Formats (detected per line, overridable per file):
  chat               {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", ...}]}
  prompt_completion  {"prompt": "...", "completion": "..."}
  alpaca             {"instruction": "...", "input": "...", "output": "..."}
  sharegpt           {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", ...}]}
  text               {"text": "..."}  (plain text: one assistant turn, trained as language modelling)

Everything becomes a list of chat messages ending with the assistant's turn; ``shared.modeling.render``
turns it into prompt and target text, and the loss covers assistant/completion tokens only (plain text, a
lone assistant turn, is language modelling with loss on every token: see ``services.trainer.features``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.trainer.exceptions import DatasetError
from services.trainer.spec import DatasetFormat
from shared.storage import sha256_file

MAX_REPORTED = 200  # problems listed in a report (the count is always exact)
DEFAULT_MAX_CHARS = 100_000  # an example longer than this (all message text) is refused
ROLES = {"system", "user", "assistant"}
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "model": "assistant"}

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Example:
    line: int
    id: str
    messages: Messages


@dataclass
class ValidatedDataset:
    path: Path
    format: DatasetFormat
    sha256: str
    examples: list[Example] = field(default_factory=list)

    @property
    def n_examples(self) -> int:
        return len(self.examples)


class _Bad(Exception):
    """One line's problem (internal)."""


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


def detect_file_format(path: Path) -> DatasetFormat | None:
    """The format of a file's first parseable record."""
    with open(path, "rb") as f:
        for raw in f:
            try:
                fmt = detect_format(json.loads(raw))
            except ValueError:
                continue
            if fmt is not None:
                return fmt
    return None


def _text(record: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    if key not in record:
        raise _Bad(f"missing field {key!r}")
    value = record[key]
    if not isinstance(value, str):
        raise _Bad(f"field {key!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise _Bad(f"field {key!r} is empty")
    return value


def _check_conversation(messages: Messages, field_name: str = "messages") -> Messages:
    if not messages:
        raise _Bad("empty conversation")
    if messages[-1]["role"] != "assistant":
        raise _Bad("the last message must be the assistant's answer")
    if not any(m["role"] == "user" for m in messages) and len(messages) > 1:
        raise _Bad("conversation has no user message")
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        if first_user is not None and i < first_user:
            raise _Bad(f"roles out of order: {field_name}[{i}] is an assistant turn before any user turn")
        if not m["content"].strip():
            raise _Bad(f"empty assistant turn: {field_name}[{i}].content is blank")
    return messages


def _turns(record: dict, field: str, role_key: str, text_key: str, roles: dict[str, str]) -> Messages:
    """A list of turns under ``field`` (chat ``messages`` or sharegpt ``conversations``) as chat messages."""
    raw = record.get(field)
    if not isinstance(raw, list):
        raise _Bad(f"field '{field}' must be a list")
    out: Messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise _Bad(f"{field}[{i}] must be an object")
        role, content = m.get(role_key), m.get(text_key)
        if role not in roles:
            raise _Bad(f"{field}[{i}].{role_key} must be one of {sorted(roles)}, got {role!r}")
        if not isinstance(content, str):
            raise _Bad(f"{field}[{i}].{text_key} must be a string, got {type(content).__name__}")
        out.append({"role": roles[role], "content": content})
    return _check_conversation(out, field)


def to_messages(record: Any, fmt: DatasetFormat) -> Messages:
    """Convert one record of format ``fmt`` to chat messages; raise _Bad naming the problem."""
    if not isinstance(record, dict):
        raise _Bad(f"expected a JSON object, got {type(record).__name__}")
    if fmt == DatasetFormat.chat:
        return _turns(record, "messages", "role", "content", {r: r for r in ROLES})
    if fmt == DatasetFormat.sharegpt:
        return _turns(record, "conversations", "from", "value", SHAREGPT_ROLES)
    if fmt == DatasetFormat.alpaca:
        instruction = _text(record, "instruction")
        extra = _text(record, "input", allow_empty=True) if "input" in record else ""
        output = _text(record, "output")
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    if fmt == DatasetFormat.prompt_completion:
        return [{"role": "user", "content": _text(record, "prompt")},
                {"role": "assistant", "content": _text(record, "completion")}]
    return [{"role": "assistant", "content": _text(record, "text")}]


def load_and_validate(path: Path, fmt: DatasetFormat | str | None = None, *,
                      max_chars: int = DEFAULT_MAX_CHARS) -> ValidatedDataset:
    """Parse and validate a .jsonl file; raise DatasetError whose report names every bad line and why.

    The file itself is never modified. Blank lines are ignored. The format is ``fmt`` when given, otherwise
    the format of the first recognisable line; a line in another format is a "mixed formats" error.
    """
    path = Path(path)
    forced = DatasetFormat(fmt) if fmt else None
    problems: list[str] = []
    n_problems = 0
    examples: list[Example] = []
    id_lines: dict[str, int] = {}  # explicit example id -> first line (tracked rows are keyed by id)
    file_fmt = forced

    def bad(lineno: int, reason: str) -> None:
        nonlocal n_problems
        n_problems += 1
        if len(problems) < MAX_REPORTED:
            problems.append(f"line {lineno}: {reason}")

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError([f"cannot read file: {exc.strerror or exc}"], str(path)) from None
    for lineno, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad(lineno, f"not UTF-8 (byte {exc.start})")
            continue
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            bad(lineno, f"invalid JSON: {exc}")
            continue
        line_fmt = detect_format(record)
        if line_fmt is None:
            what = "a JSON object" if isinstance(record, dict) else type(record).__name__
            bad(lineno, f"unknown format ({what} without messages/conversations/prompt+completion/"
                        "instruction+output/text fields)")
            continue
        if file_fmt is None:
            file_fmt = line_fmt
        elif line_fmt != file_fmt and forced is None:
            bad(lineno, f"mixed formats: this line is {line_fmt.value}, the file is {file_fmt.value}")
            continue
        try:
            messages = to_messages(record, file_fmt)
        except _Bad as exc:
            bad(lineno, str(exc))
            continue
        size = sum(len(m["content"]) for m in messages)
        if size > max_chars:
            bad(lineno, f"over-long example ({size} characters, limit {max_chars})")
            continue
        ex_id = record.get("id")
        if isinstance(ex_id, str | int) and not isinstance(ex_id, bool):
            first = id_lines.setdefault(str(ex_id), lineno)
            if first != lineno:
                bad(lineno, f"duplicate id {str(ex_id)!r} (first used on line {first})")
                continue
        examples.append(Example(lineno, str(ex_id) if isinstance(ex_id, str | int) else f"line-{lineno}",
                                messages))
    if not examples and not n_problems:
        bad(0, "no examples (the file is empty)")
    if n_problems:
        if n_problems > len(problems):
            problems.append(f"... and {n_problems - len(problems)} more problem(s)")
        raise DatasetError(problems, str(path))
    assert file_fmt is not None
    return ValidatedDataset(path=path, format=file_fmt, sha256=sha256_file(path), examples=examples)
