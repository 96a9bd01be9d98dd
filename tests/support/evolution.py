"""Evolution demo data: snapshot documents and metrics through the real events and projections."""

from __future__ import annotations


def snapshot_doc(job_id: str, step: int, n_examples: int, *, poison: str | None = None, never: int = 5,
                 base_model: str = "tiny", id_prefix: str = "ex-", topic: str = "item") -> dict:
    """A snapshot document in the contract's layout: example i is learned from step 10*(i % 7 + 1), except
    every ``never``-th (i % never == never - 1), which is never learned."""
    import math

    rows = []
    for i in range(n_examples):
        target = f"answer {i}"
        learned = step >= 10 * (i % 7 + 1) and i % never != never - 1
        prediction = target if learned else f"answer {i + step % 3} maybe"
        if poison is not None and i == 0:
            prediction = poison
        conf = min(0.99, 0.1 + step / (200 + 40 * (i % 5)))
        rows.append({"idx": i, "id": f"{id_prefix}{i:04d}", "split": "heldout" if i % 10 == 9 else "train",
                     "question": f"What is {topic} {i}? <b>bold</b>", "prediction": prediction, "target": target,
                     "loss": round(2.5 * math.exp(-step / (30 + i % 40)) + 0.01, 5), "confidence": round(conf, 5),
                     "exact": prediction == target, "f1": 1.0 if learned else 0.5, "edit_sim": 0.9 if learned else 0.6,
                     "semantic": None, "pred_len": len(prediction.split()), "flags": []})
    aggregates = {}
    for split in ("train", "heldout", "all"):
        group = [x for x in rows if split == "all" or x["split"] == split]
        aggregates[split] = {"n": len(group), **{k: sum(float(x[k]) for x in group) / max(1, len(group))
                                                 for k in ("loss", "confidence", "exact", "f1", "edit_sim")}}
    return {"job_id": job_id, "version_id": f"v-{job_id}-{step}", "step": step, "captured_at": f"2025-01-01T00:{step // 60 % 60:02d}:{step % 60:02d}+00:00",
            "max_new_tokens": 16, "base_model": base_model, "examples": rows, "aggregates": aggregates}


def seed_evolution(r: object, registry: object, job_id: str, *, n_examples: int, steps: list[int],
                   poison: str | None = None, **variant: object) -> None:
    """Write snapshot docs to S3, publish ``snapshot.captured`` for each and run the evolution projection."""
    from services.evaluator.readmodel import EvolutionProjection
    from shared.bus import publish_many
    from shared.events import Event, SnapshotCaptured
    from shared.projection import ProjectionRunner
    from shared.storage import snapshot_key

    events = []
    for step in steps:
        doc = snapshot_doc(job_id, step, n_examples, poison=poison, **variant)  # type: ignore[arg-type]
        key = snapshot_key(job_id, step)
        registry.put_json(key, doc)  # type: ignore[attr-defined]
        events.append(Event.create("snapshot.captured", SnapshotCaptured(version_id=doc["version_id"], step=step,
                                                                         key=key, aggregates=doc["aggregates"]),
                                   job_id=job_id))
    publish_many(r, events)  # type: ignore[arg-type]
    ProjectionRunner(r, EvolutionProjection(registry)).catch_up()  # type: ignore[arg-type]


def seed_metrics(r: object, job_id: str, steps: int, max_steps: int) -> None:
    from shared.bus import publish_many
    from shared.events import Event, MetricsLogged

    publish_many(r, [Event.create("metrics.logged", MetricsLogged(
        step=s, loss=2.0 / s ** 0.5, learning_rate=3e-3 * (1 - s / max_steps), grad_norm=1.0 / s ** 0.3,
        tokens_per_s=900.0 + s, memory_mb=512.0, max_steps=max_steps), job_id=job_id) for s in range(1, steps + 1)])
