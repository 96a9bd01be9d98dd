"""Into and out of the registry: adopt an existing directory as a version, export a version to disk
(byte-identical, or with the adapter merged into its base as safetensors)."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from services.registry.context import PUBLISHED_KEY, Registry
from services.registry.exceptions import InvalidInputError, NotFoundError, PickledWeightsError
from services.registry.handlers import find_base_version, publish_stored
from services.registry.projection import get_version
from services.registry.store import FileProgress, describe_dir, store_version
from services.registry.versioning import VersionKind, refuse_pickled

log = logging.getLogger(__name__)


def detect_kind(path: Path) -> VersionKind:
    if (path / "adapter_config.json").is_file():
        return VersionKind.ADAPTER
    if (path / "config.json").is_file():
        return VersionKind.BASE
    raise InvalidInputError(f"{path}: cannot tell its kind (no adapter_config.json or config.json); "
                            "pass kind= (base | adapter | merged | dataset)")


def import_dir(reg: Registry, path: Path, name: str | None = None, note: str = "",
               kind: VersionKind | str | None = None, progress: FileProgress | None = None) -> dict[str, Any]:
    """Adopt an existing model/adapter/dataset directory as a version (idempotent by content)."""
    path = Path(path).expanduser()
    kind = VersionKind(kind) if kind else detect_kind(path)
    files = describe_dir(path, progress=progress)
    lineage: dict[str, Any] = {"source_path": str(path.resolve()), "imported": True}
    if kind is VersionKind.ADAPTER:
        config = json.loads((path / "adapter_config.json").read_text())
        base = config.get("base_model_name_or_path")
        lineage.update(base_model=base, base_version_id=find_base_version(reg, base))
    stored = store_version(reg.primary, path, files, kind=kind, name=name or path.name, note=note, lineage=lineage)
    vid = stored.manifest["version_id"]
    source = f"import:{vid}"
    if not reg.r.hexists(PUBLISHED_KEY, source) and get_version(reg.r, vid) is None:
        publish_stored(reg, source, stored)
    return {**stored.manifest, "bytes_uploaded": stored.bytes_uploaded, "created": stored.created}


def _empty_or_absent(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInputError(f"{dest} exists and is not empty: export into a new directory")


def export(reg: Registry, version_id: str, dest: Path, merged: bool = False) -> Path:
    """Materialise a version into ``dest`` (byte-identical, hashes verified), or with ``merged`` the adapter
    merged into its base model and saved as safetensors (loadable by transformers alone)."""
    dest = Path(dest).expanduser()
    _empty_or_absent(dest)
    manifest = reg.primary.manifest(version_id)
    pickled = refuse_pickled(manifest["files"])
    if pickled:
        raise PickledWeightsError(f"{version_id} holds pickled weights {pickled}; refusing to export them")
    if not merged:
        return reg.primary.materialize(version_id, dest)
    if manifest["kind"] != VersionKind.ADAPTER.value:
        raise InvalidInputError(f"--merged needs an adapter version; {version_id} is a {manifest['kind']}")
    with tempfile.TemporaryDirectory(dir=reg.tmp_dir) as tmp:
        adapter = reg.primary.materialize(version_id, Path(tmp) / "adapter")
        base = _base_dir(reg, manifest, adapter, Path(tmp) / "base")
        merge_adapter(base, adapter, dest)
    return dest


def _base_dir(reg: Registry, manifest: dict[str, Any], adapter: Path, scratch: Path) -> Path:
    lineage = manifest.get("lineage") or {}
    base_vid = lineage.get("base_version_id")
    if base_vid:
        return reg.primary.materialize(base_vid, scratch)
    candidates = [lineage.get("base_model")]
    config = adapter / "adapter_config.json"
    if config.is_file():
        candidates.append(json.loads(config.read_text()).get("base_model_name_or_path"))
    for c in candidates:
        if c:
            found = find_base_version(reg, c)
            if found:
                return reg.primary.materialize(found, scratch)
            if Path(c).is_dir():
                return Path(c)
    raise NotFoundError(f"base model {candidates[0] or candidates[-1]!r} of {manifest['version_id']} is neither "
                        "a stored base version nor a local directory: `trainyard registry import` it first")


def merge_adapter(base: Path, adapter: Path, dest: Path) -> None:
    """Merge a LoRA adapter directory into its base model and save the result to ``dest`` as safetensors."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if any(adapter.glob("*.bin")) or any(base.glob("*.bin")) or any(base.glob("*.pt")):
        raise PickledWeightsError("refusing to load pickled weights: only safetensors are loaded")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, use_safetensors=True)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(staging, safe_serialization=True)
    try:
        AutoTokenizer.from_pretrained(base).save_pretrained(staging)
    except (OSError, ValueError) as exc:
        log.warning("base %s has no loadable tokenizer (%s); exporting weights only", base, exc)
    if dest.exists():
        dest.rmdir()
    staging.rename(dest)
