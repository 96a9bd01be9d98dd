"""Dataset validation with numbered places, and conversion to chat messages.

Files (``services.trainer.filetypes``): ``.jsonl`` (one example per line), ``.json`` (a JSON array of
examples), ``.csv`` (a header row of field names) and ``.parquet``; a UTF-8 byte-order mark is accepted.

Formats (told by each example's fields, the same for every file type; overridable per job):
  chat               {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", ...}]}
                     (OpenAI content parts of type text are joined; tool_calls, tool replies and ``tools``)
  prompt_completion  {"prompt": "...", "completion": "..."}
  alpaca             {"instruction": "...", "input": "...", "output": "..."}
  sharegpt           {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", ...}]}
                     (function_call / observation turns, ``system`` and ``tools`` fields)
  text               {"text": "..."}  (plain text: one assistant turn, trained as language modelling)

Everything becomes a list of chat messages ending with the assistant's turn (``services.trainer.records``; tool
use in Qwen3's format, ``services.trainer.toolcalls``); ``shared.modeling.render`` turns it into prompt and
target text, and the loss covers assistant/completion tokens only (plain text, a lone assistant turn, is
language modelling with loss on every token: see ``services.trainer.features``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.trainer.exceptions import DatasetError
from services.trainer.filetypes import ACCEPTED, FileProblem, Located, file_type, read_records, sniff
from services.trainer.records import BadRecord, detect_format, to_messages, uses_tools
from services.trainer.spec import DatasetFormat
from shared.storage import sha256_file

__all__ = ["DatasetError", "Example", "ValidatedDataset", "describe", "detect_format", "load_and_validate"]

MAX_REPORTED = 200  # problems listed in a report (the count is always exact)
DEFAULT_MAX_CHARS = 100_000  # an example longer than this (all message text) is refused
KIND_WORDS = {"jsonl": "a JSONL file", "json": "a JSON array", "csv": "a CSV file", "parquet": "a Parquet file"}
NOUNS = {"jsonl": "line", "json": "item", "csv": "row", "parquet": "row"}

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Example:
    line: int  # its line (JSONL), item index (JSON array) or row (CSV, Parquet)
    id: str
    messages: Messages
    where: str = ""  # its place as reports name it: "line 3", "item [2] (line 14)", "row 4 (line 5)", "row 4"


@dataclass
class ValidatedDataset:
    path: Path
    format: DatasetFormat
    sha256: str
    examples: list[Example] = field(default_factory=list)
    file_type: str = "jsonl"  # jsonl | json | csv | parquet
    n_tool_examples: int = 0  # examples that offer tools or hold tool calls

    @property
    def n_examples(self) -> int:
        return len(self.examples)

    @property
    def detected(self) -> str:
        return describe(self.format.value, self.file_type, self.n_examples, self.n_tool_examples)


def describe(fmt: str, file_type: str, n_examples: int, n_tool_examples: int = 0) -> str:
    """What was detected, in words: ``sharegpt in a CSV file, 12 examples (3 with tool calls)``."""
    tools = f" ({n_tool_examples} with tool calls)" if n_tool_examples else ""
    return f"{fmt} in {KIND_WORDS.get(file_type, file_type)}, {n_examples} example(s){tools}"


class _Collector:
    """The examples of one file and the report of its problems, one located record at a time."""

    def __init__(self, kind: str, forced: DatasetFormat | None, max_chars: int) -> None:
        self.kind, self.forced, self.max_chars = kind, forced, max_chars
        self.file_fmt = forced
        self.problems: list[str] = []
        self.count = 0
        self.examples: list[Example] = []
        self.first_at: dict[str, str] = {}  # explicit example id -> where first used (tracked rows are keyed by id)
        self.n_tools = 0

    def bad(self, where: str | None, reason: str) -> None:
        self.count += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(f"{where}: {reason}" if where else reason)

    def report(self) -> list[str]:
        more = self.count - len(self.problems)
        return self.problems + ([f"... and {more} more problem(s)"] if more else [])

    def add(self, loc: Located) -> None:
        if loc.problem is not None:
            return self.bad(loc.where, loc.problem)
        record = loc.record
        rec_fmt = detect_format(record)
        if rec_fmt is None:
            what = "a JSON object" if isinstance(record, dict) else type(record).__name__
            return self.bad(loc.where, f"unknown format ({what} without messages/conversations/prompt+completion/"
                                       "instruction+output/text fields)")
        if self.file_fmt is None:
            self.file_fmt = rec_fmt
        elif rec_fmt != self.file_fmt and self.forced is None:
            return self.bad(loc.where, f"mixed formats: this {NOUNS[self.kind]} is {rec_fmt.value}, "
                                       f"the file is {self.file_fmt.value}")
        try:
            messages = to_messages(record, self.file_fmt)
        except BadRecord as exc:
            return self.bad(loc.where, str(exc))
        size = sum(len(m["content"]) for m in messages)
        if size > self.max_chars:
            return self.bad(loc.where, f"over-long example ({size} characters, limit {self.max_chars})")
        ex_id = record.get("id")
        explicit = isinstance(ex_id, str | int) and not isinstance(ex_id, bool)
        if explicit:
            first = self.first_at.setdefault(str(ex_id), loc.where)
            if first != loc.where:
                return self.bad(loc.where, f"duplicate id {str(ex_id)!r} (first used on {first})")
        self.n_tools += uses_tools(record)
        self.examples.append(Example(loc.number, str(ex_id) if explicit else loc.default_id, messages, loc.where))
        return None


def load_and_validate(path: Path, fmt: DatasetFormat | str | None = None, *, kind: str | None = None,
                      max_chars: int = DEFAULT_MAX_CHARS) -> ValidatedDataset:
    """Parse and validate a dataset file; raise DatasetError whose report names every bad place and why.

    ``kind`` is the file type (``jsonl``, ``json``, ``csv``, ``parquet``), from the extension when not given
    (``sniff`` tells it from the content). The file itself is never modified. Blank lines are ignored. The
    format is ``fmt`` when given, otherwise the format of the first recognisable example; an example in
    another format is a "mixed formats" error.
    """
    path = Path(path)
    kind = kind or file_type(path)
    if kind is None:
        raise DatasetError([f"unsupported file type {path.suffix or '(no extension)'!r}: {ACCEPTED}"], str(path))
    found = _Collector(kind, DatasetFormat(fmt) if fmt else None, max_chars)
    try:
        for loc in read_records(path, kind):
            found.add(loc)
    except FileProblem as exc:
        found.bad(None, str(exc))
    except OSError as exc:
        raise DatasetError([f"cannot read file: {exc.strerror or exc}"], str(path)) from None
    if not found.examples and not found.count:
        found.bad(None, "no examples (the file is empty)")
    if found.count:
        raise DatasetError(found.report(), str(path))
    assert found.file_fmt is not None
    return ValidatedDataset(path=path, format=found.file_fmt, sha256=sha256_file(path), examples=found.examples,
                            file_type=kind, n_tool_examples=found.n_tools)


def load_stored(path: Path, fmt: DatasetFormat | str | None = None) -> ValidatedDataset:
    """A dataset blob stored by digest (no meaningful extension): its type told by its content."""
    return load_and_validate(path, fmt, kind=sniff(path))
