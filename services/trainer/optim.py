"""AdamW for full fine-tuning in bf16: the weights stay bf16, the optimizer states are fp32.

torch's AdamW keeps ``exp_avg``/``exp_avg_sq`` in the parameter's dtype; for bf16 weights that is 8 bits of
mantissa for the second moment, which stalls training. Here both moments are fp32, the update is computed in
fp32, and it is written back to the bf16 weight with stochastic rounding: an update smaller than half a bf16
step (lr 1e-5 on a weight of 0.02 is) would otherwise round away every time, and rounded stochastically it is
applied in expectation. fp32 parameters (training on the CPU) get the plain AdamW update.
Memory per parameter on the GPU: 2 (bf16 weight) + 2 (bf16 gradient) + 8 (two fp32 moments) bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


def stochastic_round_(target: torch.Tensor, value: torch.Tensor) -> None:
    """Write fp32 ``value`` into bf16 ``target``, rounding up or down with probability by distance."""
    bits = value.view(torch.int32)
    noise = torch.randint_like(bits, 0, 1 << 16)
    rounded = ((bits + noise) & -65536).view(torch.float32)  # keep the top 16 bits (bf16's) after the noise
    target.copy_(rounded)


class AdamWFp32States(torch.optim.Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                t = float(state["step"])
                grad = p.grad.float()
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias1, bias2 = 1 - beta1**t, 1 - beta2**t
                denom = (state["exp_avg_sq"] / bias2).sqrt_().add_(group["eps"])
                weight = p.float()
                weight.mul_(1 - group["lr"] * group["weight_decay"])
                weight.addcdiv_(state["exp_avg"], denom, value=-group["lr"] / bias1)
                if p.dtype == torch.bfloat16:
                    stochastic_round_(p, weight)
                else:
                    p.copy_(weight)
        return loss


def adamw_kwargs(lr: float, weight_decay: float) -> dict[str, Any]:
    return {"lr": lr, "weight_decay": weight_decay, "betas": (0.9, 0.999), "eps": 1e-8}


