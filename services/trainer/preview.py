"""What the model trains on: the first examples exactly as the trainer receives them.

The preview runs the training code path itself: ``features.features`` renders and tokenises each example
(chat template, loss only on answer tokens, cut at ``max_seq_len``) and the job's own collator
(``features.collator``) batches them, so which tokens carry loss is read from the collated ``labels``, not
recomputed. With packing on, the collator's ``layout`` says which examples share a row.

    preview_examples(tokenizer, spec, dataset.examples, n=8)   # a JSON-ready dict
    job_preview(settings, s3, spec_dict, n=8)                   # a queued job's stored dataset

The examples come in dataset order, batched by ``batch_size``; training shuffles them (seeded) each epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minio import Minio

from services.registry.api import RegistryClient
from services.trainer import admission, features, trainability
from services.trainer.datasets import Example, ValidatedDataset, load_and_validate
from services.trainer.exceptions import DatasetError
from services.trainer.spec import JobSpec
from shared import storage
from shared.settings import CommonSettings

MAX_PREVIEW = 64  # examples shown with their tokens
MAX_MEASURED = 5000  # examples measured for the histogram and the counts
HIST_BINS = 8
UNLIMITED = 1 << 30


def _tokens(tokenizer: Any, ids: Sequence[int], loss: Sequence[bool]) -> list[dict[str, Any]]:
    return [{"id": int(i), "text": tokenizer.decode([int(i)]), "loss": bool(m)} for i, m in zip(ids, loss, strict=True)]


def _loss_masks(collate: Any, batch: list[dict[str, list[int]]]) -> tuple[list[list[bool]], list[dict]]:
    """Each feature's loss mask as the collator labels it, and (packing) the rows it lays them out in."""
    out = collate(batch)
    labels = out["labels"].tolist()
    lengths = [len(f["input_ids"]) for f in batch]
    if not isinstance(collate, features.PackCollator):
        return [[x != features.IGNORE for x in labels[i][:n]] for i, n in enumerate(lengths)], []
    masks: list[list[bool]] = [[] for _ in batch]
    rows = []
    width = len(labels[0]) if labels else 0
    for r, row in enumerate(collate.layout(lengths)):
        at = 0
        for i in row:
            masks[i] = [x != features.IGNORE for x in labels[r][at:at + lengths[i]]]
            at += lengths[i]
        rows.append({"members": row, "tokens": at, "padding": width - at})
    return masks, rows


def _measure(tokenizer: Any, examples: Sequence[Example], spec: JobSpec) -> dict[str, Any]:
    """Lengths before the cut, how many are cut (or split, plain text with packing), dropped, histogram."""
    lengths: list[int] = []
    cut = split = 0
    dropped: list[str] = []
    for ex in examples[:MAX_MEASURED]:
        try:
            kept = features.features(tokenizer, ex.messages, spec.max_seq_len, spec.packing)
            full = features.features(tokenizer, ex.messages, UNLIMITED)
        except Exception:  # noqa: BLE001 - a template error is this example's problem, told by its line
            kept = full = []
        if not kept:
            dropped.append(f"line {ex.line}: {trainability.problem(tokenizer, ex.messages, spec.max_seq_len)}")
        n = len(full[0]["input_ids"]) if full else 0
        lengths.append(n)
        if n > spec.max_seq_len:
            split += len(kept) > 1
            cut += len(kept) == 1
    width = max(1, -(-spec.max_seq_len // HIST_BINS))
    bins = [{"from": k * width, "to": min((k + 1) * width, spec.max_seq_len), "count": 0} for k in range(HIST_BINS)]
    bins.append({"from": spec.max_seq_len + 1, "to": max(lengths, default=0), "count": 0, "over": True})
    for n in lengths:
        bins[min(n // width, HIST_BINS - 1) if n <= spec.max_seq_len else HIST_BINS]["count"] += 1
    return {"measured": len(lengths), "n_examples": len(examples), "cut": cut, "split": split,
            "dropped": len(dropped), "dropped_reasons": dropped[:20], "histogram": bins,
            "max_length": max(lengths, default=0),
            "mean_length": round(sum(lengths) / len(lengths), 1) if lengths else 0}


def preview_examples(tokenizer: Any, spec: JobSpec, examples: Sequence[Example], n: int = 8) -> dict[str, Any]:
    """The first ``n`` examples' training features, their loss masks and rows, and the dataset's lengths."""
    n = max(1, min(n, MAX_PREVIEW))
    collate = features.collator(tokenizer, spec.packing)
    feats: list[dict[str, Any]] = []
    for ex in examples[:n]:
        for chunk, f in enumerate(features.features(tokenizer, ex.messages, spec.max_seq_len, spec.packing)):
            feats.append({"line": ex.line, "id": ex.id, "chunk": chunk, "feature": f})
    rows: list[dict[str, Any]] = []
    for start in range(0, len(feats), spec.batch_size):
        batch = feats[start:start + spec.batch_size]
        masks, batch_rows = _loss_masks(collate, [x["feature"] for x in batch])
        for x, mask in zip(batch, masks, strict=True):
            x["loss"] = mask
        for row in batch_rows:
            rows.append({"batch": start // spec.batch_size, "tokens": row["tokens"], "padding": row["padding"],
                         "examples": [{"line": batch[i]["line"], "chunk": batch[i]["chunk"],
                                       "tokens": len(batch[i]["feature"]["input_ids"])} for i in row["members"]]})
    shown = [{"line": x["line"], "id": x["id"], "chunk": x["chunk"],
              "text": tokenizer.decode(x["feature"]["input_ids"]),
              "n_tokens": len(x["feature"]["input_ids"]), "n_loss_tokens": sum(x["loss"]),
              "tokens": _tokens(tokenizer, x["feature"]["input_ids"], x["loss"])} for x in feats]
    return {"base_model": spec.base_model, "max_seq_len": spec.max_seq_len, "packing": spec.packing,
            "batch_size": spec.batch_size, "examples": shown, "count": len(shown), "rows": rows,
            "stats": _measure(tokenizer, examples, spec)}


def preview_dataset(spec: JobSpec, dataset: ValidatedDataset, n: int = 8) -> dict[str, Any]:
    """A validated dataset's preview under ``spec`` (SpecError when the tokenizer cannot be loaded)."""
    tokenizer = trainability.load_tokenizer(spec.base_model)
    out = preview_examples(tokenizer, spec, dataset.examples, n)
    out["format"] = dataset.format.value
    return out


def preview_file(path: Path, spec: JobSpec, n: int = 8) -> dict[str, Any]:
    """Preview an uploaded, not submitted dataset (validated first: DatasetError names its bad lines).

    A base model other than the default must pass the same check as at submit (``admission``)."""
    if spec.base_model != admission.DEFAULT_BASE_MODEL:
        admission.check_base_model(spec.base_model)
    try:
        dataset = load_and_validate(path, spec.dataset_format)
    except DatasetError as exc:
        raise DatasetError(exc.report, path.name) from None  # the file's name only: no server path
    return preview_dataset(spec, dataset, n)


def job_preview(settings: CommonSettings, s3: Minio, spec_dict: dict[str, Any], cache_dir: Path,
                n: int = 8) -> dict[str, Any]:
    """A submitted job's preview: its stored dataset blob (fetched once into ``cache_dir``) under its spec."""
    spec = JobSpec.model_validate(spec_dict)
    if not spec.dataset_sha256:
        raise LookupError("the job has no stored dataset")
    path = cache_dir / f"{spec.dataset_sha256}.jsonl"
    if not (path.is_file() and storage.sha256_file(path) == spec.dataset_sha256):
        RegistryClient(s3, settings.bucket).fetch_blob(spec.dataset_sha256, path)
    fmt = spec.dataset_format.value if spec.dataset_format else None
    return preview_dataset(spec, load_and_validate(path, fmt), n)
