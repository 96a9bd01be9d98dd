"""Child process of ``bench_realshape --only rss``: the evaluator engine's peak memory on one snapshot.

``python -m bench.realshape_rss MODEL_DIR DEVICE DTYPE N TOKENS BUDGET_MB`` prints one JSON line: the peak RSS
(CPU; on CUDA the peak allocated GPU memory) of the snapshot, the RSS before the model was loaded and before
the snapshot (model loaded, one warm-up row evaluated), the model's bytes, the budget, the rows per batch and
the seconds. A fresh process, so nothing else counts in its peak.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time

WORDS = ("Trainyard keeps every checkpoint, watches the model learn and deploys it safely; "
         "Qwen3 liest 151 936 Token, 你好世界, привет мир. ")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _reset_peak() -> bool:
    """Start the kernel's peak-RSS counter (VmHWM) over from the current RSS (Linux clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _items(tok, n: int, tokens: int):  # noqa: ANN001, ANN202
    from services.evaluator.engine import Item
    from shared.modeling import render

    filler = tok(WORDS * (tokens // 8 + 8), add_special_tokens=False)["input_ids"]
    items = []
    for i in range(n):
        answer = f"Answer {i}: " + tok.decode(filler[i: i + 48])
        msgs = [{"role": "user", "content": ""}, {"role": "assistant", "content": answer}]
        overhead = len(tok(render(tok, msgs).prompt + render(tok, msgs).target, add_special_tokens=False)["input_ids"])
        question = f"Question {i}: " + tok.decode(filler[i: i + max(1, tokens - overhead - 6)])
        rendered = render(tok, [{"role": "user", "content": question}, msgs[1]])
        items.append(Item(rendered.prompt, rendered.target))
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("model_dir", "device", "dtype"):
        ap.add_argument(name)
    for name in ("n", "tokens", "budget_mb"):
        ap.add_argument(name, type=int)
    a = ap.parse_args()
    model_dir, device, dtype, n, tokens, budget_mb = a.model_dir, a.device, a.dtype, a.n, a.tokens, a.budget_mb
    import torch

    from services.evaluator.engine import Engine
    from shared.modeling import load_base

    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = _rss_bytes()
    model, tok = load_base(model_dir, device=device, dtype=dtype or None)
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    items = _items(tok, n, tokens)
    lengths = [len(tok(x.prompt + x.target, add_special_tokens=False)["input_ids"]) for x in items]
    engine = Engine(model, tok, max_new_tokens=8, batch_size=64, memory_budget_mb=budget_mb)
    # one warm-up row first: one-time buffers of the first forward pass (kernels' packed weights, workspaces)
    # belong to the loaded process, not to a snapshot's working memory
    Engine(model, tok, max_new_tokens=2, batch_size=1, memory_budget_mb=budget_mb).evaluate(items[:1])
    loaded = _rss_bytes()  # the model and the process, before the snapshot's own memory
    reset = _reset_peak()  # the peak of the snapshot alone (loading converts bf16 to fp32: a transient copy)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    engine.evaluate(items)
    seconds = time.perf_counter() - t0
    if device.startswith("cuda"):
        peak, start, loaded = torch.cuda.max_memory_allocated(), 0, model_bytes
    else:
        peak = _peak_rss_bytes()
    print(json.dumps({"peak_bytes": peak, "start_bytes": start, "loaded_bytes": loaded, "peak_reset": reset,
                      "model_bytes": model_bytes,
                      "budget_bytes": budget_mb * 2**20, "rows": math.ceil(n / max(1, engine.stats.batches)),
                      "seconds": seconds, "tokens_min": min(lengths), "tokens_max": max(lengths)}))


if __name__ == "__main__":
    main()
