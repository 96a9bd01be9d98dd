"""Stack commands: up, down, status, demo, demo-model, rebuild."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def demo_model(out_dir: Path = typer.Argument(..., help="directory to write the tiny Qwen3 into")) -> None:
    """Build a tiny Qwen3 from config (random init) with a locally trained tokenizer."""
    from shared.modeling import build_tiny_model

    path = build_tiny_model(out_dir)
    console.print(f"tiny Qwen3 written to [bold]{path}[/bold]")


def register(app: typer.Typer) -> None:
    app.command("demo-model")(demo_model)
