"""Checks a job must pass before it is queued, beyond the spec's own field bounds (they touch the disk).

* ``base_model``: a local path must be a directory holding ``config.json`` and a tokenizer whose ids all fit
  the architecture's embedding rows (``vocab_size``; a model may pad rows, as Qwen3's 151,936 for 151,669
  tokens, but not lack them, nor hold a tokenizer of under half its rows); a hub id must look like
  ``org/name`` and be reachable: with ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set, only a model in the
  local Hugging Face cache is. The spec's default base model is the operator's configuration and is not
  checked here (the worker reports it if it cannot be loaded).
* ``tracked.heldout_path``: a held-out file is read and stored in the registry, so it must lie inside an
  allowed root (the dataset's directory, the inbox, the uploads directory); ``..``, symbolic links and
  paths outside those roots are refused. A relative path is looked up in each root in that order.
* GPU memory: a spec that does not train on the CPU must fit the training GPU
  (``TRAINYARD_GPU_MEMORY_GB``, default 24; ``services.trainer.memory``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from services.trainer import memory
from services.trainer.exceptions import SpecError
from services.trainer.spec import JobSpec
from shared.settings import TrainerSettings

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
DEFAULT_BASE_MODEL = str(JobSpec.model_fields["base_model"].default)
_TRUE = {"1", "on", "yes", "true"}


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - an unreadable cache is the same as no cache
        return False
    return isinstance(found, str)


def check_base_model(base_model: str) -> None:
    """Raise SpecError naming ``base_model`` when the model cannot be loaded by a worker."""
    local = Path(base_model).expanduser()
    looks_local = base_model.startswith(("/", ".", "~")) or local.exists() or base_model.count("/") > 1
    if looks_local:
        if not local.is_dir():
            raise SpecError(f"invalid job spec: base_model: local model directory {base_model!r} does not exist")
        if not (local / "config.json").is_file():
            raise SpecError(f"invalid job spec: base_model: {base_model!r} is not a model directory "
                            "(no config.json in it)")
        check_tokenizer(local, base_model)
        return
    if not HUB_ID.match(base_model):
        raise SpecError(f"invalid job spec: base_model: {base_model!r} is neither a local model directory nor "
                        "a hub id like 'org/name'")
    if offline() and not _in_hub_cache(base_model):
        raise SpecError(f"invalid job spec: base_model: {base_model!r} is not a local model directory and cannot "
                        "be reached offline (HF_HUB_OFFLINE is set and it is not in the local model cache)")


def _json(path: Path, base_model: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"invalid job spec: base_model: {path.name} of {base_model!r} is not readable JSON "
                        f"({type(exc).__name__})") from None


def tokenizer_size(model_dir: Path, base_model: str) -> int | None:
    """One more than the largest token id of the directory's tokenizer; None for a tokenizer whose size cannot
    be read without loading it (sentencepiece); SpecError when there is no tokenizer at all."""
    if (model_dir / "tokenizer.json").is_file():
        doc = _json(model_dir / "tokenizer.json", base_model)
        vocab = (doc.get("model") or {}).get("vocab") or {}
        ids = list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab)))
        ids += [int(t["id"]) for t in doc.get("added_tokens") or []]
        return max(ids) + 1 if ids else 0
    if (model_dir / "vocab.json").is_file():
        ids = [int(i) for i in _json(model_dir / "vocab.json", base_model).values()]
        config = _json(model_dir / "tokenizer_config.json", base_model) if (
            model_dir / "tokenizer_config.json").is_file() else {}
        ids += [int(i) for i in (config.get("added_tokens_decoder") or {})]
        return max(ids) + 1 if ids else 0
    if (model_dir / "tokenizer.model").is_file():
        return None
    raise SpecError(f"invalid job spec: base_model: {base_model!r} has no tokenizer (no tokenizer.json, "
                    "vocab.json or tokenizer.model in it): save the tokenizer beside the weights")


def check_tokenizer(model_dir: Path, base_model: str) -> None:
    """The tokenizer exists and its ids fit the embedding rows of the architecture."""
    size = tokenizer_size(model_dir, base_model)
    config = _json(model_dir / "config.json", base_model)
    rows = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    if size is None or not isinstance(rows, int):
        return
    if size > rows:
        raise SpecError(f"invalid job spec: base_model: the tokenizer of {base_model!r} has ids up to {size - 1} "
                        f"but its architecture has {rows} embedding rows (vocab_size): tokenizer and weights "
                        "do not belong together")
    if size * 2 < rows:
        raise SpecError(f"invalid job spec: base_model: the tokenizer of {base_model!r} has {size} tokens but "
                        f"its architecture has {rows} embedding rows (vocab_size): tokenizer and weights do "
                        "not belong together")


def allowed_roots(settings: TrainerSettings, dataset_path: Path) -> list[Path]:
    """Where a held-out file may live: the dataset's directory, the inbox, the uploads directory."""
    roots = [Path(dataset_path).parent, Path(settings.inbox_dir), Path(settings.state_dir) / "uploads"]
    out: list[Path] = []
    for root in roots:
        resolved = root.resolve()
        if resolved not in out:
            out.append(resolved)
    return out


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_heldout(heldout_path: str, roots: Sequence[Path]) -> Path:
    """The held-out file ``heldout_path`` names inside one of ``roots``; SpecError naming the field if not."""
    field = "invalid job spec: tracked.heldout_path"
    raw = Path(heldout_path)
    where = ", ".join(str(r) for r in roots)
    if not heldout_path.strip() or "\x00" in heldout_path:
        raise SpecError(f"{field}: must be a file name")
    if ".." in raw.parts:
        raise SpecError(f"{field}: {heldout_path!r} contains '..' (held-out files must lie in: {where})")
    if raw.is_absolute():
        candidates = [(root, Path(os.path.normpath(raw))) for root in roots if _inside(Path(os.path.normpath(raw)), root)]
        if not candidates:
            raise SpecError(f"{field}: {heldout_path!r} is outside the allowed directories ({where})")
    else:
        candidates = [(root, root / raw) for root in roots]
    for root, candidate in candidates:
        if not (candidate.exists() or candidate.is_symlink()):
            continue
        # every component from the root down must be a real directory or file: no symbolic link anywhere
        part = candidate
        while part != root:
            if part.is_symlink():
                raise SpecError(f"{field}: {heldout_path!r} is (or goes through) a symbolic link, which is refused")
            part = part.parent
        if not candidate.is_file():
            raise SpecError(f"{field}: {heldout_path!r} is not a regular file")
        if not _inside(candidate.resolve(), root):
            raise SpecError(f"{field}: {heldout_path!r} is outside the allowed directories ({where})")
        return candidate
    raise SpecError(f"{field}: {heldout_path!r} not found in the allowed directories ({where})")


def check(settings: TrainerSettings, spec: JobSpec, dataset_path: Path) -> Path | None:
    """Every admission check of ``spec``; returns the held-out file to read (None without one)."""
    if spec.base_model != DEFAULT_BASE_MODEL:
        check_base_model(spec.base_model)
    if spec.device != "cpu":
        memory.check_fits(spec, settings.gpu_memory_gb)
    if spec.tracked.heldout_path is None:
        return None
    return resolve_heldout(spec.tracked.heldout_path, allowed_roots(settings, dataset_path))
