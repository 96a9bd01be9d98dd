"""The model owner: one worker thread loads the base, then batches requests and applies adapter changes.

Everything that touches the model runs on this one thread, so an adapter load, replacement or unload
(peft mutates modules in place) happens *between* ``generate`` calls and never under a running one. A
request binds to an adapter when its batch starts; a replaced adapter is deleted only after the batch
that used it is over. Loading under an existing name loads the new weights under a fresh internal name
first and then swaps the name over: requests see the old adapter or the new one, never a mixture or a gap.

Batching: the worker takes the oldest waiting request, waits up to ``batch_wait_ms`` for more with the
same key (adapter, sampling settings and, unless ``batch_padding``, prompt length) and runs up to
``max_batch`` of them in one ``generate`` call.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch

from services.inference.adapters import BaseInfo, CheckedAdapter, base_info
from services.inference.exceptions import (
    AdapterLoadError,
    ModelNotFoundError,
    NotReadyError,
    OutOfMemoryError,
)
from services.inference.generation import GenRequest, run_batch
from services.inference.metrics import Metrics
from shared.modeling import load_base, pick_device
from shared.settings import InferenceSettings

log = logging.getLogger(__name__)
BASE = "base"
MAX_QUEUE = 4096


@dataclass(frozen=True)
class LoadedAdapter:
    name: str
    internal: str  # the peft adapter name (ModuleDict key)
    path: str
    declared_base: str
    matched_by: str
    loaded_at: float


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError | MemoryError) or "out of memory" in str(exc).lower()


class Engine:
    def __init__(self, settings: InferenceSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.device = pick_device(settings.device)
        self.base_id = settings.base_model  # where the base is loaded from (kept internal: a server path)
        self.served_name = settings.served_name()  # the base's public id
        self.tokenizer: Any = None
        self.base_info: BaseInfo | None = None
        self.load_error: str | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._pending: list[GenRequest] = []
        self._admin: list[tuple[Callable[[], Any], Future]] = []
        self._adapters: dict[str, LoadedAdapter] = {}
        self._base_model: Any = None
        self._peft: Any = None
        self._serial = 0
        self._thread = threading.Thread(target=self._run, name="inference-engine", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def _load(self) -> None:
        if self.settings.threads > 0:
            torch.set_num_threads(self.settings.threads)
        t0 = time.perf_counter()
        model, tokenizer = load_base(self.base_id, device=self.device)
        self._base_model, self.tokenizer = model, tokenizer
        self.base_info = base_info(self.base_id, model)
        eos = model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            self.eos_ids.add(tokenizer.eos_token_id)
        pad = model.generation_config.pad_token_id
        self.pad_id = pad if pad is not None else tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = next(iter(self.eos_ids))
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        log.info("loaded base %s on %s in %.1f s", self.base_id, self.device, time.perf_counter() - t0)

    # -- public API (any thread) --------------------------------------------------------------------
    def adapters(self) -> list[LoadedAdapter]:
        return sorted(self._adapters.values(), key=lambda a: a.name)

    def resolve(self, model: str) -> str:
        """The public model name a request's ``model`` field selects ("base" for the base)."""
        if not self.ready:
            raise NotReadyError(self.load_error or "the base model is still loading")
        if model in (BASE, self.served_name, self.base_id, ""):
            return BASE
        if model in self._adapters:
            return model
        raise ModelNotFoundError(f"model {model!r} is neither the base ({self.served_name!r}) nor a loaded adapter")

    def submit(self, req: GenRequest) -> None:
        with self._cond:
            if len(self._pending) >= MAX_QUEUE:
                raise NotReadyError("the request queue is full; retry later")
            self._pending.append(req)
            self._cond.notify_all()

    def load_adapter(self, name: str, checked: CheckedAdapter) -> Future:
        """Load (or atomically replace) adapter ``name``; the future gives its ``LoadedAdapter``."""
        return self._call(lambda: self._do_load(name, checked))

    def unload_adapter(self, name: str) -> Future:
        return self._call(lambda: self._do_unload(name))

    def _call(self, fn: Callable[[], Any]) -> Future:
        fut: Future = Future()
        with self._cond:
            self._admin.append((fn, fut))
            self._cond.notify_all()
        return fut

    # -- worker thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._load()
        except Exception as exc:  # noqa: BLE001 - reported on /ready, the process stays up for diagnosis
            log.exception("loading base model %s failed", self.base_id)
            self.load_error = f"loading base model {self.base_id!r} failed: {exc}"
            self._fail_everything(NotReadyError(self.load_error))
            return
        self._ready.set()
        while not self._stopping.is_set():
            with self._cond:
                while not (self._pending or self._admin or self._stopping.is_set()):
                    self._cond.wait(0.5)
            self._run_admin()
            batch = self._collect()
            if batch:
                self._execute(batch)
        self._fail_everything(NotReadyError("the server is shutting down"))

    def _fail_everything(self, exc: Exception) -> None:
        with self._cond:
            pending, self._pending = self._pending, []
            admin, self._admin = self._admin, []
        for req in pending:
            req.sink.fail(exc)
        for _, fut in admin:
            fut.set_exception(exc)

    def _run_admin(self) -> None:
        with self._cond:
            ops, self._admin = self._admin, []
        for fn, fut in ops:
            try:
                fut.set_result(fn())
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)

    def _collect(self) -> list[GenRequest]:
        s = self.settings
        by_length = not s.batch_padding
        with self._cond:
            self._pending = [r for r in self._pending if not r.cancelled.is_set()]
            if not self._pending:
                return []
            key = self._pending[0].batch_key(by_length)
            deadline = self._pending[0].enqueued_at + s.batch_wait_ms / 1000
            while not self._admin and not self._stopping.is_set():
                same = sum(1 for r in self._pending if r.batch_key(by_length) == key)
                left = deadline - time.monotonic()
                if same >= s.max_batch or left <= 0:
                    break
                self._cond.wait(left)
            batch = [r for r in self._pending if r.batch_key(by_length) == key][: s.max_batch]
            taken = set(map(id, batch))
            self._pending = [r for r in self._pending if id(r) not in taken]
        return batch

    def _execute(self, batch: list[GenRequest]) -> None:
        name = batch[0].model
        t0 = time.perf_counter()
        try:
            model = self._select(name)
            if name == BASE and self._peft is not None:
                with self._peft.disable_adapter():
                    tracker = self._generate(model, batch)
            else:
                tracker = self._generate(model, batch)
        except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
            if _is_oom(exc):
                self._empty_cache()
                exc = OutOfMemoryError(f"out of memory generating a batch of {len(batch)}: {exc}")
            elif not isinstance(exc, ModelNotFoundError):
                log.exception("generation failed for a batch of %d on %s", len(batch), name)
            for req in batch:
                req.sink.fail(exc)
            return
        self.metrics.observe_batch(len(batch), time.perf_counter() - t0, tracker.completion_tokens,
                                   sum(len(r.prompt_ids) for r in batch))

    def _generate(self, model: Any, batch: list[GenRequest]) -> Any:
        return run_batch(model, self.tokenizer, batch, device=self.device, pad_id=self.pad_id, eos_ids=self.eos_ids)

    def _select(self, name: str) -> Any:
        if name == BASE:
            return self._peft if self._peft is not None else self._base_model
        adapter = self._adapters.get(name)
        if adapter is None:
            raise ModelNotFoundError(f"adapter {name!r} was unloaded before the request ran")
        self._peft.set_adapter(adapter.internal)
        return self._peft

    def _empty_cache(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def _do_load(self, name: str, checked: CheckedAdapter) -> LoadedAdapter:
        from peft import PeftConfig, PeftModelForCausalLM

        self._serial += 1
        internal = f"adapter_{self._serial}"
        path = str(checked.path)
        t0 = time.perf_counter()
        created = self._peft is None
        try:
            if created:  # two steps (as PeftModel.from_pretrained does) so a failure can be undone
                config = PeftConfig.from_pretrained(path)
                config.inference_mode = True
                self._peft = PeftModelForCausalLM(self._base_model, config, adapter_name=internal)
                self._peft.load_adapter(path, adapter_name=internal)
                self._peft.eval()
            else:
                self._peft.load_adapter(path, adapter_name=internal)
        except Exception as exc:  # noqa: BLE001 - undo the half-load; the previous adapter keeps serving
            self._discard(internal, created)
            self.metrics.adapter_loads.labels(result="failed").inc()
            if _is_oom(exc):
                self._empty_cache()
                raise OutOfMemoryError(f"out of memory loading adapter {name!r}: {exc}") from exc
            raise AdapterLoadError(f"peft could not load adapter {name!r}: {exc}") from exc
        old = self._adapters.get(name)
        loaded = LoadedAdapter(name=name, internal=internal, path=path, declared_base=checked.declared_base,
                               matched_by=checked.matched_by, loaded_at=time.time())
        self._adapters = {**self._adapters, name: loaded}  # one reference swap: readers never see a gap
        if old is not None:
            self._delete(old.internal)
        self.metrics.adapter_loads.labels(result="replaced" if old else "loaded").inc()
        self.metrics.active_adapters.set(len(self._adapters))
        log.info("adapter %s %s from %s in %.0f ms", name, "replaced" if old else "loaded", path,
                 (time.perf_counter() - t0) * 1000)
        return loaded

    def _delete(self, internal: str) -> None:
        with warnings.catch_warnings():  # peft warns that the active adapter changes: we set it per batch
            warnings.simplefilter("ignore", UserWarning)
            self._peft.delete_adapter(internal)

    def _discard(self, internal: str, created: bool) -> None:
        try:
            if created and self._peft is not None:
                self._base_model = self._peft.unload()
                self._peft = None
            elif self._peft is not None and internal in self._peft.peft_config:
                self._delete(internal)
        except Exception:  # noqa: BLE001 - best effort; logged for the operator
            log.exception("could not discard half-loaded adapter %s", internal)

    def _do_unload(self, name: str) -> LoadedAdapter:
        old = self._adapters.get(name)
        if old is None:
            raise ModelNotFoundError(f"adapter {name!r} is not loaded")
        self._adapters = {k: v for k, v in self._adapters.items() if k != name}
        if self._adapters:
            self._delete(old.internal)
        else:  # last one: give the plain base model back (peft cannot run with zero adapters)
            self._base_model = self._peft.unload()
            self._peft = None
        self.metrics.adapter_loads.labels(result="unloaded").inc()
        self.metrics.active_adapters.set(len(self._adapters))
        log.info("adapter %s unloaded", name)
        return old
