"""scripts/size_check.py, run by `make lint`: modules over 300 lines and functions over 60 fail it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "size_check.py"


def _run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=60)


def test_small_code_passes(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("def f():\n" + "    x = 1\n" * 58 + "    return x\n")
    res = _run(tmp_path)
    assert res.returncode == 0, res.stdout
    assert "kept" in res.stdout


def test_long_module_and_long_function_fail(tmp_path: Path) -> None:
    (tmp_path / "big.py").write_text("x = 1\n" * 301)
    body = "".join(f"    v{i} = {i}\n" for i in range(60))
    (tmp_path / "fn.py").write_text(f"@staticmethod\ndef long_one():\n{body}")
    res = _run(tmp_path)
    assert res.returncode == 1
    assert f"{tmp_path / 'big.py'}: module has 301 lines (limit 300)" in res.stdout
    assert f"{tmp_path / 'fn.py'}:1: function long_one has 62 lines (limit 60)" in res.stdout
    assert "2 over" in res.stdout


def test_the_product_keeps_the_limits() -> None:
    res = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120,
                         cwd=SCRIPT.parents[1])
    assert res.returncode == 0, res.stdout
