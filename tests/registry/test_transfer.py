"""Import, export (byte-identical and merged), gc, inventory and the CLI, with a real tiny Qwen3 + LoRA."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.registry import commands
from services.registry.context import Registry
from services.registry.exceptions import InvalidInputError, PickledWeightsError
from services.registry.projection import list_versions
from shared import storage
from shared.bus import publish
from tests.support.lora import make_lora_adapter
from tests.support.registry import checkpoint_event, running, wait_for


def _same_tree(a: Path, b: Path) -> bool:
    fa = {p.relative_to(a): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b): p.read_bytes() for p in b.rglob("*") if p.is_file()}
    return fa == fb


def test_import_dedups_export_is_byte_identical_and_merged_loads(reg: Registry, tiny_model: Path,
                                                               tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = commands.import_dir(reg, tiny_model, name="tiny-qwen3", note="the base")
    assert base["kind"] == "base" and base["bytes_uploaded"] == base["size"] > 0
    again = commands.import_dir(reg, tiny_model, name="other name")
    assert again["version_id"] == base["version_id"] and again["bytes_uploaded"] == 0 and not again["created"]
    adapter_dir = make_lora_adapter(tiny_model, tmp_path / "adapter")
    adapter = commands.import_dir(reg, adapter_dir, name="old adapter", note="from 2024")
    assert adapter["kind"] == "adapter" and adapter["lineage"]["base_version_id"] == base["version_id"]

    out = commands.export(reg, adapter["version_id"], tmp_path / "exported")
    assert _same_tree(out, adapter_dir)
    with pytest.raises(InvalidInputError, match="not empty"):
        commands.export(reg, adapter["version_id"], tmp_path / "exported")

    merged = commands.export(reg, adapter["version_id"], tmp_path / "merged", merged=True)
    assert sorted(p.suffix for p in merged.iterdir() if "model" in p.name) == [".safetensors"]
    tokens = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        want = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), out)(tokens).logits
        got = AutoModelForCausalLM.from_pretrained(merged, use_safetensors=True)(tokens).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model)(tokens).logits
    assert torch.allclose(got, want, atol=1e-4) and not torch.allclose(got, plain, atol=1e-4)


def test_pickled_weights_and_bad_directories_are_refused(reg: Registry, tmp_path: Path) -> None:
    bad = tmp_path / "old"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    (bad / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(PickledWeightsError, match="pytorch_model.bin"):
        commands.import_dir(reg, bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="holds no files"):
        commands.import_dir(reg, tmp_path / "empty", kind="base")
    assert reg.primary.list_version_ids() == []


def test_deleting_local_checkpoints_mid_job_loses_nothing(reg: Registry, tiny_model: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ckpts = tmp_path / "checkpoints"
    originals = {}
    with running(reg):
        for step in (10, 20, 30):
            d = make_lora_adapter(tiny_model, ckpts / f"checkpoint-{step}", seed=step)
            originals[step] = {p.name: p.read_bytes() for p in d.iterdir()}
            files = [{"path": p.name, "sha256": storage.sha256_file(p), "size": p.stat().st_size}
                     for p in sorted(d.iterdir())]
            publish(reg.r, checkpoint_event("job-x", d, step, files, base_model=str(tiny_model)))
            if step == 20:  # someone deletes the trainer's checkpoint directory mid-job
                wait_for(lambda: len(list_versions(reg.r)) == 2, what="two versions")
                shutil.rmtree(ckpts)
        wait_for(lambda: len(list_versions(reg.r)) == 3, what="three versions")
    assert not (ckpts / "checkpoint-10").exists()
    for v in list_versions(reg.r):
        out = reg.primary.materialize(v["version_id"], tmp_path / "restored" / v["version_id"])
        assert {p.name: p.read_bytes() for p in out.iterdir()} == originals[v["step"]]
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), out)  # loadable
