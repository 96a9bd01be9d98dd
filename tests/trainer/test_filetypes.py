"""Datasets as they come: JSON arrays, CSV, Parquet, byte-order marks and OpenAI content parts.

Every type is detected with the same field rules as JSONL and reports problems by place: ``item [i] (line
n)`` in a JSON array, ``row r (line n)`` in a CSV file, ``row r`` in a Parquet file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.trainer.datasets import load_and_validate, load_stored
from services.trainer.exceptions import DatasetError
from services.trainer.spec import DatasetFormat

ALPACA = [{"instruction": "Capital of France?", "input": "", "output": "Paris"},
          {"instruction": "Translate", "input": "bonjour", "output": "hello"}]
CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
BOM = b"\xef\xbb\xbf"


def report(path: Path) -> list[str]:
    with pytest.raises(DatasetError) as info:
        load_and_validate(path)
    return info.value.report


def test_a_json_array_is_a_dataset_of_any_format(tmp_path: Path) -> None:
    path = tmp_path / "alpaca_en_demo.json"  # LLaMA-Factory ships its demo data as an indented JSON array
    path.write_text(json.dumps(ALPACA, indent=2), encoding="utf-8")
    ds = load_and_validate(path)
    assert (ds.format, ds.file_type, ds.n_examples) == (DatasetFormat.alpaca, "json", 2)
    assert ds.examples[1].messages == [{"role": "user", "content": "Translate\n\nbonjour"},
                                       {"role": "assistant", "content": "hello"}]
    assert [e.id for e in ds.examples] == ["item-0", "item-1"]
    assert ds.detected == "alpaca in a JSON array, 2 example(s)"
    assert load_stored(path.rename(tmp_path / "blob")).n_examples == 2  # a stored blob: told by its content


def test_json_array_errors_name_the_item_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text("[\n" + json.dumps(CHAT) + ",\n" + json.dumps({"prompt": "a"}) + ",\n  7\n]\n")
    assert report(path) == [
        "item [1] (line 3): unknown format (a JSON object without messages/conversations/prompt+completion/"
        "instruction+output/text fields)",
        "item [2] (line 4): unknown format (int without messages/conversations/prompt+completion/"
        "instruction+output/text fields)"]
    path.write_text("[\n" + json.dumps(CHAT) + ",\n" + '{"messages": [}' + "\n]")
    assert report(path) == ["item [1] (line 3): invalid JSON: Expecting value (column 15)"]
    path.write_text(json.dumps(CHAT))
    assert report(path)[0].startswith("a JSON object: a .json dataset is a JSON array of examples")
    path.write_text("[" + json.dumps(CHAT) + "] trailing")
    assert report(path) == ["line 1: text after the end of the JSON array"]
    path.write_text("[]")
    assert report(path) == ["no examples (the file is empty)"]


@pytest.mark.parametrize("name", ["d.jsonl", "d.json", "d.csv"])
def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path, name: str) -> None:
    body = {"d.jsonl": json.dumps(CHAT) + "\n" + json.dumps(CHAT) + "\n",
            "d.json": json.dumps([CHAT, CHAT]),
            "d.csv": "prompt,completion\r\nCapital of France?,Paris\r\n2+2?,4\r\n"}[name]
    path = tmp_path / name
    path.write_bytes(BOM + body.encode())
    ds = load_and_validate(path)
    assert ds.n_examples == 2
    assert path.read_bytes().startswith(BOM)  # the original is never modified


def test_csv_columns_follow_the_jsonl_rules(tmp_path: Path) -> None:
    path = tmp_path / "sheet.csv"
    path.write_text('instruction,input,output,id\nCapital of France?,,Paris,a\n"Say ""hi""\non two lines",x,hi,b\n')
    ds = load_and_validate(path)
    assert (ds.format, ds.file_type, [e.id for e in ds.examples]) == (DatasetFormat.alpaca, "csv", ["a", "b"])
    assert ds.examples[1].messages[0]["content"] == 'Say "hi"\non two lines\n\nx'
    # a messages column holds JSON text; a sharegpt sheet likewise
    chat = tmp_path / "chat.csv"
    chat.write_text('messages\n"' + json.dumps(CHAT["messages"]).replace('"', '""') + '"\n')
    assert load_and_validate(chat).examples[0].messages == CHAT["messages"]


def test_csv_errors_are_row_numbered(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('prompt,completion\nok,fine\n"two\nlines",\nonly one cell\na,b,c\nx,y\n')
    assert report(path) == ["row 2 (line 3): field 'completion' is empty",
                            "row 3 (line 5): 1 cell(s), the header has 2",
                            "row 4 (line 6): 3 cell(s), the header has 2"]
    path.write_text('messages\n"[{not json"\n')
    assert report(path)[0].startswith("row 1 (line 2): column 'messages' must hold JSON (a list), and is not "
                                      "valid JSON")
    path.write_text("question,answer\nq,a\n")
    assert report(path)[0].startswith("row 1 (line 2): unknown format")
    path.write_bytes(b"prompt,completion\nok,\xff\n")
    assert report(path) == ["line 2: not UTF-8 (byte 21)"]


def test_parquet_as_the_datasets_library_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    rows = [{"messages": CHAT["messages"]},
            {"messages": [{"role": "user", "content": "q"},
                          {"role": "assistant", "content": None, "tool_calls": [
                              {"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                          {"role": "tool", "content": "r"}, {"role": "assistant", "content": "done"}]}]
    pq.write_table(pa.Table.from_pylist(rows), path)  # structs: missing keys come back as nulls
    ds = load_and_validate(path)
    assert (ds.format, ds.file_type, ds.n_examples, ds.n_tool_examples) == (DatasetFormat.chat, "parquet", 2, 1)
    assert ds.examples[0].messages == CHAT["messages"]
    assert ds.detected == "chat in a Parquet file, 2 example(s) (1 with tool calls)"
    assert load_stored(path.rename(tmp_path / "blob.jsonl")).file_type == "parquet"


def test_parquet_errors_are_row_numbered(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": ""},
                                         {"prompt": None, "completion": "d"}]), path)
    assert report(path) == ["row 2: field 'completion' is empty", "row 3: field 'prompt' is null"]
    path.write_bytes(b"PAR1 this is not parquet")
    assert report(path)[0].startswith("not a readable Parquet file")


def test_openai_content_parts_are_joined_and_other_parts_refused(tmp_path: Path) -> None:
    path = tmp_path / "parts.jsonl"
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Capital "},
                                                       {"type": "text", "text": "of France?"}]},
                          {"role": "assistant", "content": [{"type": "text", "text": "Paris"}]}]}
    image = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                       {"type": "image_url", "image_url": {"url": "x"}}]},
                          {"role": "assistant", "content": "a cat"}]}
    path.write_text(json.dumps(parts) + "\n")
    assert load_and_validate(path).examples[0].messages == [{"role": "user", "content": "Capital of France?"},
                                                           {"role": "assistant", "content": "Paris"}]
    path.write_text(json.dumps(parts) + "\n" + json.dumps(image) + "\n")
    assert report(path) == ["line 2: messages[0].content[1] is a content part of type 'image_url'; only 'text' "
                            "parts are accepted"]


def test_an_unknown_extension_names_the_accepted_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text(json.dumps(CHAT) + "\n")
    assert report(path) == ["unsupported file type '.txt': a dataset is .jsonl (one example per line), .json "
                            "(a JSON array of examples), .csv or .parquet"]
