"""A version made by the trainer holds training_args.bin and optimizer/scheduler/RNG state beside its adapter:
merging it into its base loads only the adapter's safetensors, and pickled weights are still refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.registry.exceptions import PickledWeightsError
from services.registry.transfer import merge_adapter
from tests.support.lora import make_lora_adapter


def test_merge_ignores_training_state_and_refuses_pickled_weights(tmp_path: Path, tiny_model: Path) -> None:
    adapter = make_lora_adapter(tiny_model, tmp_path / "ckpt")
    for name in ("training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (adapter / name).write_bytes(b"\x80\x04pickled training state, never loaded")
    merge_adapter(tiny_model, adapter, tmp_path / "merged")
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    (adapter / "adapter_model.bin").write_bytes(b"\x80\x04pickled weights")
    with pytest.raises(PickledWeightsError):
        merge_adapter(tiny_model, adapter, tmp_path / "merged2")
