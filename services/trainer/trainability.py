"""Submit-time trainability: every accepted example must leave a loss token within ``max_seq_len``.

Validation (``datasets``) checks the shape of each line; this checks what the worker will do with it: render
it with the job's tokenizer (its chat template, or none for plain text) and tokenize it exactly as
``features`` does at step 0. An example that cannot be rendered, or whose answer starts beyond
``max_seq_len``, is refused here with its line number, so a job never fails at step 0 on data it accepted.

    trainability.check(spec, dataset)   # raises DatasetError naming each line

A dataset that passed is remembered (by its sha256, the tokenizer and ``max_seq_len``), so the inbox's check
before it accepts a file and ``submit_job``'s check after it cost one pass.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from services.trainer import features
from services.trainer.admission import DEFAULT_BASE_MODEL
from services.trainer.datasets import MAX_REPORTED, ValidatedDataset
from services.trainer.exceptions import DatasetError, SpecError
from services.trainer.spec import JobSpec
from shared.modeling import is_plain_text

log = logging.getLogger(__name__)
_PASSED: dict[tuple, None] = {}  # datasets that passed, most recent last
_PASSED_KEEP = 64


def _stamp(base_model: str) -> int | None:
    """Changes when a local model directory's tokenizer files change (a hub id's cache is immutable)."""
    config = Path(base_model).expanduser() / "tokenizer_config.json"
    try:
        return config.stat().st_mtime_ns
    except OSError:
        return None


@lru_cache(maxsize=4)
def _load(base_model: str, stamp: int | None) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model)


def load_tokenizer(base_model: str) -> Any:
    """The job's tokenizer; SpecError naming ``base_model`` when it cannot be loaded."""
    try:
        return _load(base_model, _stamp(base_model))
    except Exception as exc:  # noqa: BLE001 - any loader failure is the same answer to the user
        raise SpecError(f"invalid job spec: base_model: the tokenizer of {base_model!r} cannot be loaded "
                        f"({type(exc).__name__})") from None


def problem(tokenizer: Any, messages: list[dict[str, str]], max_len: int) -> str | None:
    """Why this example cannot train within ``max_len`` tokens, or None when it can."""
    try:
        if features.features(tokenizer, messages, max_len):
            return None
        if is_plain_text(messages):
            return f"no token to learn within max_seq_len ({max_len}): the text is too short"
        prompt = 0
        for text, is_loss in features.segments(tokenizer, messages):
            if is_loss:
                break
            prompt += len(tokenizer(text, add_special_tokens=False)["input_ids"])
    except Exception as exc:  # noqa: BLE001 - a template error names the example, never fails the check
        return f"cannot be rendered with the base model's chat template ({type(exc).__name__}: {exc})"
    return (f"no answer token within max_seq_len ({max_len}): the prompt before the first answer is "
            f"{prompt} tokens (shorten it or raise max_seq_len)")


def check(spec: JobSpec, dataset: ValidatedDataset) -> None:
    """Raise DatasetError listing (by place) every example that leaves no loss token within ``max_seq_len``.

    The spec's default base model is the operator's configuration (see ``admission``): when its tokenizer
    cannot be loaded here the check is skipped and the worker reports the model.
    """
    try:
        tokenizer = load_tokenizer(spec.base_model)
    except SpecError:
        if spec.base_model != DEFAULT_BASE_MODEL:
            raise
        log.warning("trainability check skipped: the default base model's tokenizer cannot be loaded here")
        return
    key = (dataset.sha256, dataset.format, spec.base_model, _stamp(spec.base_model), spec.max_seq_len)
    if key in _PASSED:
        return
    problems: list[str] = []
    n_problems = 0
    for ex in dataset.examples:
        why = problem(tokenizer, ex.messages, spec.max_seq_len)
        if why is not None:
            n_problems += 1
            if len(problems) < MAX_REPORTED:
                problems.append(f"{ex.where or f'line {ex.line}'}: {why}")
    if n_problems > len(problems):
        problems.append(f"... and {n_problems - len(problems)} more problem(s)")
    if problems:
        raise DatasetError(problems, Path(dataset.path).name)  # the name only: no server path for users
    _PASSED[key] = None
    while len(_PASSED) > _PASSED_KEEP:
        del _PASSED[next(iter(_PASSED))]
