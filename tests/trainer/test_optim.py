"""AdamW with fp32 states for bf16 weights: the states are fp32, and updates below bf16's resolution still land."""

from __future__ import annotations

import torch

from services.trainer.optim import AdamWFp32States, stochastic_round_


def test_states_are_fp32_for_bf16_weights_and_small_updates_are_applied_in_expectation() -> None:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.ones(20_000, dtype=torch.bfloat16))
    plain = torch.nn.Parameter(torch.ones(20_000, dtype=torch.bfloat16))
    ours, theirs = AdamWFp32States([w], lr=1e-3), torch.optim.AdamW([plain], lr=1e-3, weight_decay=0.0)
    for _ in range(3):
        for p, opt in ((w, ours), (plain, theirs)):
            p.grad = torch.ones_like(p)
            opt.step()
    state = ours.state[w]
    assert state["exp_avg"].dtype == torch.float32 and state["exp_avg_sq"].dtype == torch.float32
    assert w.dtype == torch.bfloat16
    # bf16 steps are 2**-8 below 1.0: three updates of 1e-3 each round away to nothing in plain bf16 AdamW ...
    assert torch.all(plain == 1.0)
    # ... and land on average with stochastic rounding
    assert abs(w.float().mean().item() - (1.0 - 3e-3)) < 3e-4


def test_fp32_weights_follow_torch_adamw_exactly() -> None:
    torch.manual_seed(1)
    a = torch.nn.Parameter(torch.randn(64))
    b = torch.nn.Parameter(a.detach().clone())
    ours, ref = AdamWFp32States([a], lr=1e-2, weight_decay=0.1), torch.optim.AdamW([b], lr=1e-2, weight_decay=0.1)
    for i in range(5):
        g = torch.randn(64, generator=torch.Generator().manual_seed(i))
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    assert torch.allclose(a, b, atol=1e-6)


def test_stochastic_rounding_stays_between_the_two_neighbours() -> None:
    value = torch.full((1000,), 1.0 + 2**-10)
    out = torch.empty(1000, dtype=torch.bfloat16)
    stochastic_round_(out, value)
    assert set(out.float().unique().tolist()) <= {1.0, 1.0 + 2**-7}
