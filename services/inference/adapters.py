"""Checks an adapter directory before peft ever touches it (pure functions, no model state).

* the path must resolve inside ``adapters_dir`` (no traversal, no symlink escape, not the upload area);
* weights must be ``adapter_model.safetensors`` (pickled ``.bin``/``.pt`` weights are refused);
* ``adapter_config.json`` must describe a LoRA adapter for the served base: its
  ``base_model_name_or_path`` names the base, or else every LoRA tensor's shape fits the base's modules
  (same architecture and hidden size under another name, e.g. a local copy of the hub model).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.inference.exceptions import (
    AdapterPathError,
    BadRequestError,
    IncompatibleAdapterError,
    PickledWeightsError,
)

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
UPLOADS_SUBDIR = ".uploads"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")
RESERVED_NAMES = {"base"}


@dataclass(frozen=True)
class BaseInfo:
    """What an adapter is checked against: the served base's id, type and module shapes."""

    name: str
    model_type: str
    hidden_size: int
    modules: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (in, out) / (vocab, dim)


@dataclass(frozen=True)
class CheckedAdapter:
    path: Path
    declared_base: str
    matched_by: str  # "name" | "shapes"
    rank: int


def base_info(name: str, model: Any) -> BaseInfo:
    """Describe a (not yet peft-wrapped) transformers model."""
    import torch

    modules: dict[str, tuple[int, int]] = {}
    for mod_name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            modules[mod_name] = (mod.in_features, mod.out_features)
        elif isinstance(mod, torch.nn.Embedding):
            modules[mod_name] = (mod.num_embeddings, mod.embedding_dim)
    cfg = model.config
    return BaseInfo(name=name, model_type=str(getattr(cfg, "model_type", "")),
                    hidden_size=int(getattr(cfg, "hidden_size", 0)), modules=modules)


def check_name(name: str, *base_names: str) -> str:
    if not NAME_RE.match(name):
        raise BadRequestError(
            f"invalid lora_name {name!r}: use 1-128 letters, digits and . _ : @ + - (starting with a letter or digit)")
    if name in RESERVED_NAMES or name in base_names:
        raise BadRequestError(f"lora_name {name!r} is reserved for the base model")
    return name


def resolve_adapter_dir(lora_path: str, adapters_dir: Path) -> Path:
    """The adapter directory, refusing anything that resolves outside ``adapters_dir``."""
    if "\x00" in lora_path:
        raise AdapterPathError("lora_path contains a NUL byte")
    root = adapters_dir.resolve()
    candidate = Path(lora_path)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise AdapterPathError(f"lora_path {lora_path!r} is outside the adapters directory {root}")
    if resolved.is_relative_to(root / UPLOADS_SUBDIR):
        raise AdapterPathError(f"lora_path {lora_path!r} is an unfinished upload; commit it first")
    if not resolved.is_dir():
        raise AdapterPathError(f"lora_path {lora_path!r} is not a directory")
    return resolved


def _read_config(path: Path) -> dict[str, Any]:
    cfg_file = path / CONFIG
    if not cfg_file.is_file():
        raise AdapterPathError(f"{CONFIG} is missing in {path.name}")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"{CONFIG} is not valid JSON: {exc}") from exc
    if not isinstance(cfg, dict):
        raise BadRequestError(f"{CONFIG} must be a JSON object")
    if str(cfg.get("peft_type", "")).upper() != "LORA":
        raise BadRequestError(f"only LoRA adapters are served; peft_type is {cfg.get('peft_type')!r}")
    return cfg


def _tensor_shapes(weights: Path) -> dict[str, list[int]]:
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - not a dict
    except Exception as exc:  # noqa: BLE001 - any parse failure is the client's bad file
        raise BadRequestError(f"{WEIGHTS} is not a readable safetensors file: {exc}") from exc


def shape_mismatches(shapes: dict[str, list[int]], base: BaseInfo) -> list[str]:
    """Human-readable reasons why these LoRA tensors cannot sit on ``base`` (empty list: they fit)."""
    problems: list[str] = []
    for key, shape in sorted(shapes.items()):
        name = key.removeprefix("base_model.model.")
        for suffix, axis, dim in ((".lora_A.weight", 1, 0), (".lora_B.weight", 0, 1),
                                  (".lora_embedding_A", 1, 0), (".lora_embedding_B", 0, 1)):
            if not name.endswith(suffix):
                continue
            module = name[: -len(suffix)]
            if module not in base.modules:
                problems.append(f"{module} does not exist in {base.model_type or 'the base'}")
            elif len(shape) != 2 or shape[axis] != base.modules[module][dim]:
                problems.append(f"{module}: adapter expects size {shape[axis] if len(shape) == 2 else shape}, "
                                f"base has {base.modules[module][dim]}")
    return problems


def _same_name(declared: str, served: str) -> bool:
    if not declared:
        return False
    a, b = declared.rstrip("/"), served.rstrip("/")
    return a == b or a.rsplit("/", 1)[-1].lower() == b.rsplit("/", 1)[-1].lower()


def _declared_config_conflict(declared: str, base: BaseInfo) -> str | None:
    """If the declared base is a readable local model directory, compare its type and hidden size."""
    try:
        cfg_file = Path(declared) / "config.json"
        if not declared or not cfg_file.is_file():
            return None
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    mt, hs = cfg.get("model_type"), cfg.get("hidden_size")
    if (mt and base.model_type and mt != base.model_type) or (hs and base.hidden_size and hs != base.hidden_size):
        return f"{declared} is a {mt} with hidden size {hs}; served base is a {base.model_type} with {base.hidden_size}"
    return None


def check_adapter(path: Path, base: BaseInfo) -> CheckedAdapter:
    """Validate an adapter directory against the served base; raise with the reason if it does not fit."""
    weights = path / WEIGHTS
    if not weights.is_file():
        pickled = sorted(p.name for p in path.iterdir() if p.name.startswith("adapter_model")
                         and p.suffix in PICKLE_SUFFIXES)
        if pickled:
            raise PickledWeightsError(
                f"pickled adapter weights ({', '.join(pickled)}) are refused; provide {WEIGHTS}")
        raise AdapterPathError(f"{WEIGHTS} is missing in {path.name}")
    cfg = _read_config(path)
    declared = str(cfg.get("base_model_name_or_path") or "")
    shapes = _tensor_shapes(weights)
    if not any(".lora_" in k for k in shapes):
        raise BadRequestError(f"{WEIGHTS} holds no LoRA tensors")
    problems = shape_mismatches(shapes, base)
    conflict = _declared_config_conflict(declared, base)
    if problems or conflict:
        reasons = ([conflict] if conflict else []) + problems[:3]
        raise IncompatibleAdapterError(
            f"adapter was made for base {declared or '(unknown)'!r}, not the served {base.name!r}: "
            + "; ".join(reasons))
    matched_by = "name" if _same_name(declared, base.name) else "shapes"
    return CheckedAdapter(path=path, declared_base=declared, matched_by=matched_by, rank=int(cfg.get("r", 0) or 0))
