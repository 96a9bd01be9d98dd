"""The README's dataset examples are valid datasets of the format they illustrate (every format has one)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from services.trainer.datasets import load_and_validate
from services.trainer.spec import DatasetFormat

README = Path(__file__).resolve().parents[2] / "README.md"


def examples() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Training data and jobs"):]
    section = section[:section.index("\n## ", 10)]
    return [(lang, textwrap.dedent(body).strip()) for lang, body in re.findall(r"```(json|csv)\n(.*?)```", section, re.S)]


def as_file(tmp_path: Path, i: int, lang: str, body: str) -> Path:
    if lang == "csv":
        path = tmp_path / f"ex{i}.csv"
        path.write_text(body + "\n")
        return path
    try:
        whole = json.loads(body)
    except ValueError:  # one example per line
        path = tmp_path / f"ex{i}.jsonl"
        path.write_text(body + "\n")
        return path
    path = tmp_path / (f"ex{i}.json" if isinstance(whole, list) else f"ex{i}.jsonl")
    path.write_text(body + "\n" if isinstance(whole, list) else json.dumps(whole) + "\n")
    return path


def test_every_readme_example_is_a_valid_dataset_and_every_format_has_one(tmp_path: Path) -> None:
    found = examples()
    assert len(found) >= 9
    formats, tools, types = set(), 0, set()
    for i, (lang, body) in enumerate(found):
        assert len(body.splitlines()) == 3, body  # three lines each
        ds = load_and_validate(as_file(tmp_path, i, lang, body))
        formats.add(ds.format)
        types.add(ds.file_type)
        tools += ds.n_tool_examples
    assert formats == set(DatasetFormat)
    assert types == {"jsonl", "json", "csv"} and tools == 2  # OpenAI and sharegpt tool calling
