"""Dataset files by type: JSONL, a JSON array, CSV and Parquet, read into records that know where they are.

Every type yields the same records (a dict per example), so the formats are detected by the same field rules
(``services.trainer.records.detect_format``). A UTF-8 byte-order mark is accepted. In CSV and Parquet a
``messages``, ``conversations`` or ``tools`` cell may hold JSON text (a spreadsheet has no lists); the columns
tell the format, so a null Parquet value is reported as such. Places are named the way a user finds them: ``line 3`` (JSONL), ``item [2]
(line 14)`` (JSON array), ``row 4 (line 5)`` (CSV: the row under the header, and its line in the file),
``row 4`` (Parquet).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TYPES = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
ACCEPTED = "a dataset is .jsonl (one example per line), .json (a JSON array of examples), .csv or .parquet"
JSON_COLUMNS = ("messages", "conversations", "tools")
BOM = "\ufeff"
CSV_FIELD_LIMIT = 64 * 1024 * 1024  # a cell may hold a whole conversation as JSON (the csv default is 128 KiB)


class FileProblem(Exception):
    """The file as a whole cannot be read (the message names the place where it can)."""


@dataclass(frozen=True)
class Located:
    where: str  # "line 3", "item [2] (line 14)", "row 4 (line 5)", "row 4"
    number: int  # line (JSONL), item index (JSON), row (CSV, Parquet)
    default_id: str  # the example id when the record has none
    record: Any = None
    problem: str | None = None  # this record could not be parsed


def file_type(path: Path) -> str | None:
    """The type a file's extension names, or None for an extension that is not accepted."""
    return TYPES.get(path.suffix.lower())


def sniff(path: Path) -> str:
    """The type of a file by its content (for stored blobs, which have no meaningful extension)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    first = head.decode("utf-8", errors="replace").lstrip(BOM + " \t\r\n")[:1]
    return {"[": "json", "{": "jsonl"}.get(first, "csv" if first else "jsonl")


def read_records(path: Path, kind: str) -> Iterator[Located]:
    if kind == "parquet":
        yield from _parquet(path)
        return
    data = path.read_bytes()
    yield from {"jsonl": _jsonl, "json": _json_array, "csv": _csv}[kind](data)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FileProblem(f"line {line}: not UTF-8 (byte {exc.start})") from None


def _jsonl(data: bytes) -> Iterator[Located]:
    for lineno, raw in enumerate(data.splitlines(keepends=True), start=1):
        where = f"line {lineno}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Located(where, lineno, f"line-{lineno}", problem=f"not UTF-8 (byte {exc.start})")
            continue
        if lineno == 1:
            text = text.removeprefix(BOM)
        if not text.strip():
            continue
        try:
            yield Located(where, lineno, f"line-{lineno}", json.loads(text))
        except ValueError as exc:
            yield Located(where, lineno, f"line-{lineno}", problem=f"invalid JSON: {exc}")


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _json_array(data: bytes) -> Iterator[Located]:
    """Items of a JSON array one by one, each with its line (the decoder's own positions)."""
    text = _decode(data)
    decoder = json.JSONDecoder()
    i = _skip(text, 0)
    if text[i:i + 1] != "[":
        what = "a JSON object" if text[i:i + 1] == "{" else "not a JSON array"
        raise FileProblem(f"{what}: a .json dataset is a JSON array of examples (a JSON object is a job spec, "
                          "and goes beside its dataset under the same name)")
    i, n = _skip(text, i + 1), 0
    seen, line = 0, 1  # lines counted up to ``seen``, so that a large array is read in one pass
    while text[i:i + 1] != "]":
        line, seen = line + text.count("\n", seen, i), i
        try:
            item, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise FileProblem(f"item [{n}] (line {exc.lineno}): invalid JSON: {exc.msg} (column {exc.colno})") \
                from None
        yield Located(f"item [{n}] (line {line})", n, f"item-{n}", item)
        n, i = n + 1, _skip(text, i)
        if text[i:i + 1] == ",":
            i = _skip(text, i + 1)
        elif text[i:i + 1] != "]":
            raise FileProblem(f"line {text.count(chr(10), 0, i) + 1}: expected ',' or ']' after item [{n - 1}]")
    if _skip(text, i + 1) < len(text):
        raise FileProblem(f"line {text.count(chr(10), 0, i) + 1}: text after the end of the JSON array")


def _cells(row: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A row's values, JSON columns decoded; (record, problem)."""
    out = {}
    for key, value in row.items():
        if key in JSON_COLUMNS and isinstance(value, str) and value.strip():
            try:
                value = json.loads(value)
            except ValueError as exc:
                return out, f"column {key!r} must hold JSON (a list), and is not valid JSON: {exc}"
        out[key] = value
    return out, None


def _csv(data: bytes) -> Iterator[Located]:
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.DictReader(io.StringIO(_decode(data), newline=""))
    try:
        header = reader.fieldnames or []
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise FileProblem(f"line 1: the header repeats column(s) {', '.join(map(repr, dupes))}")
        row_no, last = 0, reader.line_num
        for row in reader:
            row_no += 1
            where = f"row {row_no} (line {last + 1})"
            last = reader.line_num
            if None in row or None in row.values():
                cells = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or [])
                yield Located(where, row_no, f"row-{row_no}", problem=f"{cells} cell(s), the header has {len(header)}")
                continue
            record, problem = _cells(row)
            yield Located(where, row_no, f"row-{row_no}", record, problem)
    except csv.Error as exc:
        raise FileProblem(f"line {reader.line_num}: not valid CSV ({exc})") from None


def _parquet(path: Path) -> Iterator[Located]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        batches = pf.iter_batches(batch_size=1024)
        row_no = 0
        for batch in batches:
            for row in batch.to_pylist():
                row_no += 1
                record, problem = _cells(row)
                yield Located(f"row {row_no}", row_no, f"row-{row_no}", record, problem)
    except (pa.ArrowException, OSError) as exc:
        raise FileProblem(f"not a readable Parquet file ({exc})") from None
