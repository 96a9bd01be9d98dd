"""Benchmark helpers: repeat a measurement, record figures in bench/results.json and bench/RESULTS.md.

Every benchmark measures its named baseline in the same run and records min/median/max of its repeats::

    record("bus_throughput", value=12000, unit="events/s", baseline=20000, ratio=0.6,
           target=">= 5000 events/s and >= 0.5x bare loop", runs=[...], baseline_name="bare redis-py loop",
           command="python -m bench.bench_bus")
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).parent
RESULTS_JSON = BENCH_DIR / "results.json"
RESULTS_MD = BENCH_DIR / "RESULTS.md"


def machine() -> str:
    import os

    cpu = f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
    import torch

    return f"{cpu}, {torch.cuda.get_device_name()}" if torch.cuda.is_available() else cpu


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def noise(runs: list[float]) -> str:
    if not runs:
        return ""
    return f"min {min(runs):.4g} / median {statistics.median(runs):.4g} / max {max(runs):.4g}"


def record(
    key: str,
    *,
    value: float,
    unit: str,
    baseline: float | None,
    ratio: float | None,
    target: str,
    runs: list[float],
    command: str,
    baseline_name: str = "",
    met: bool | None = None,
    notes: str = "",
) -> dict:
    data = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    entry = {
        "value": round(value, 6),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 6),
        "ratio": None if ratio is None else round(ratio, 4),
        "target": target,
        "runs": [round(x, 6) for x in runs],
        "baseline_name": baseline_name,
        "met": met,
        "machine": machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "command": command,
        "notes": notes,
    }
    data[key] = entry
    RESULTS_JSON.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    write_markdown(data)
    print(f"{key}: {value:.4g} {unit}; baseline {baseline} ({baseline_name}); ratio {ratio}; target {target}; "
          f"runs {noise(runs)}; met={met}")
    return entry


def write_markdown(data: dict) -> None:
    lines = [
        "# Benchmark results",
        "",
        "Written by the benchmarks themselves (`make bench` runs them all). Each figure's baseline is measured",
        "in the same run; runs give min / median / max of the repeats.",
        "",
        "| benchmark | value | baseline | ratio | target | met | runs | machine | date | command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(data):
        e = data[key]
        base = "" if e.get("baseline") is None else f"{e['baseline']:.4g} ({e.get('baseline_name', '')})"
        ratio = "" if e.get("ratio") is None else f"{e['ratio']:.3g}"
        met = {True: "yes", False: "**no**", None: ""}[e.get("met")]
        lines.append(
            f"| `{key}` | {e['value']:.4g} {e['unit']} | {base} | {ratio} | {e['target']} | {met} | "
            f"{noise(e.get('runs', []))} | {e.get('machine', '')} | {e.get('date', '')} | `{e.get('command', '')}` |"
        )
    notes = [f"- `{k}`: {data[k]['notes']}" for k in sorted(data) if data[k].get("notes")]
    if notes:
        lines += ["", "## Notes", "", *notes]
    RESULTS_MD.write_text("\n".join(lines) + "\n")
