"""The evaluator's remote backend: loss and greedy predictions from an OpenAI-compatible server (vLLM, or
Trainyard's own inference server), behind the same interface as ``Engine``.

* The checkpoint's adapter is loaded under its content-addressed version id (``load_adapter``: vLLM's
  ``POST /v1/load_lora_adapter``), and every request names it as its ``model``.
* Prompts go as token ids, tokenised here exactly as ``Engine`` tokenises them, so both backends score and
  continue the same tokens.
* Loss: ``/v1/completions`` over prompt + target ids with ``max_tokens`` 1 and vLLM's ``prompt_logprobs`` 0;
  the target's log-probabilities are the last entries (teacher forcing, one request per batch of rows).
* Predictions: greedy (``temperature`` 0), one request per row with the row's own token limit (the server
  batches concurrent requests), ``finish_reason`` "length" meaning the limit was hit.

The server's arithmetic is its own (vLLM: its kernels, bf16 on a GPU), so predictions are not promised to be
identical to the naive loop; ``bench.bench_evalremote`` measures how often they agree with ``Engine``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from services.evaluator.exceptions import RemoteError
from services.evaluator.results import EngineStats, Generated, Item, Scored


def _check(resp: httpx.Response, url: str, what: str) -> dict[str, Any]:
    if resp.status_code >= 400:
        raise RemoteError(f"{what} at {url} failed with {resp.status_code}: {resp.text[:200]}")
    return resp.json()


class Remote:
    """An OpenAI-compatible server: ``url`` is its root (``http://box:8000``), ``token`` its bearer token."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 600.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def post(self, path: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            resp = self.http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach the inference server at {self.url}: {type(exc).__name__}") from None
        return _check(resp, self.url, what)

    def load_adapter(self, name: str, path: str) -> None:
        """Load (or replace) the adapter directory ``path`` (on the server's machine) under ``name``."""
        self.post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": path}, f"loading adapter {name}")

    def close(self) -> None:
        self.http.close()


class RemoteEngine:
    """``Engine``'s ``evaluate``/``score``/``generate`` on a remote server's ``model`` (base or adapter name)."""

    def __init__(self, remote: Remote, model: str, tokenizer: Any, *, max_new_tokens: int = 48,
                 batch_size: int = 16, answer_room: int | None = None, max_ctx: int | None = None) -> None:
        self.remote, self.model, self.tok = remote, model, tokenizer
        self.max_new_tokens, self.answer_room = max_new_tokens, answer_room
        self.batch_size = max(1, batch_size)
        self.max_ctx = max_ctx or tokenizer_context(tokenizer)
        self.stats = EngineStats()

    def limit(self, n_target_tokens: int) -> int:
        if self.answer_room is None:
            return self.max_new_tokens
        return max(1, min(self.max_new_tokens, n_target_tokens + self.answer_room))

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tok(list(texts), add_special_tokens=False)["input_ids"] if texts else []

    def evaluate(self, items: Sequence[Item]) -> tuple[list[Scored], list[Generated]]:
        scored = self.score(items)
        targets = self._ids([x.target for x in items])
        return scored, self._generate([x.prompt for x in items], [self.limit(len(t)) for t in targets])

    def score(self, items: Sequence[Item]) -> list[Scored]:
        prompts, targets = self._ids([x.prompt for x in items]), self._ids([x.target for x in items])
        rows, out = [], []
        for p, t in zip(prompts, targets, strict=True):
            cut = len(p) + len(t) > self.max_ctx
            t = t[: self.max_ctx - 1]
            rows.append((p[-(self.max_ctx - len(t)):] + t, len(t), cut))
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start:start + self.batch_size]
            body = {"model": self.model, "prompt": [ids for ids, _, _ in batch], "max_tokens": 1,
                    "temperature": 0, "prompt_logprobs": 0}
            choices = sorted(self.remote.post("/v1/completions", body, "scoring")["choices"], key=lambda c: c["index"])
            self.stats.batches += 1
            for (ids, n, cut), choice in zip(batch, choices, strict=True):
                out.append(_scored(ids, n, cut, choice.get("prompt_logprobs")))
        return out

    def generate(self, prompts: Sequence[str]) -> list[Generated]:
        return self._generate(prompts, [self.max_new_tokens] * len(prompts))

    def _generate(self, prompts: Sequence[str], limits: list[int]) -> list[Generated]:
        room = max(1, self.max_ctx - self.max_new_tokens)
        ids = self._ids(prompts)
        with ThreadPoolExecutor(max_workers=self.batch_size) as pool:
            return list(pool.map(lambda p, n: self._one(p[-room:], len(p) > room, n), ids, limits))

    def _one(self, ids: list[int], truncated: bool, limit: int) -> Generated:
        body = {"model": self.model, "prompt": ids, "max_tokens": limit, "temperature": 0}
        resp = self.remote.post("/v1/completions", body, "generation")
        choice = resp["choices"][0]
        n = int(resp.get("usage", {}).get("completion_tokens", 0))
        self.stats.decode_steps += n
        return Generated(choice["text"].strip(), n, choice.get("finish_reason") == "length", truncated)


def tokenizer_context(tokenizer: Any) -> int:
    """The context length the tokenizer declares (2048 where it declares none)."""
    most = getattr(tokenizer, "model_max_length", None)
    return most if isinstance(most, int) and 0 < most < 1_000_000 else 2048


def _scored(ids: list[int], n: int, cut: bool, logprobs: list | None) -> Scored:
    if n == 0:
        return Scored(math.nan, math.nan, 0, cut)
    if not logprobs or len(logprobs) != len(ids):
        raise RemoteError("the server returned no prompt_logprobs (vLLM and Trainyard's inference server do)")
    lps = [float(entry[str(tok)]["logprob"]) for tok, entry in zip(ids[-n:], logprobs[-n:], strict=True)]
    return Scored(-sum(lps) / n, sum(math.exp(x) for x in lps) / n, n, cut)
