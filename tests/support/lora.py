"""The one LoRA-adapter builder of the tests and benchmarks: a real peft adapter with non-zero B matrices."""

from __future__ import annotations

from pathlib import Path


def make_lora_adapter(base_model: Path, out_dir: Path, seed: int = 0, *, scale: float = 0.5, r: int = 4,
                      target_modules: tuple[str, ...] = ("q_proj", "v_proj")) -> Path:
    """A LoRA adapter on ``base_model`` saved as safetensors, configured like the trainer's (CAUSAL_LM).

    Its B matrices are random (seeded by ``seed``, times ``scale``), so it changes the model's output and
    merging it changes the weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32, use_safetensors=True)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target_modules), task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
    peft_model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir
