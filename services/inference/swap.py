"""Adapter load, replace and unload, run by the engine's one worker thread (peft mutates modules in place).

A load under an existing name loads the new weights under a fresh internal name first, then swaps the name
over in one reference swap; a failed load is undone and the previous adapter keeps serving. The engine
(services/inference/engine.py) holds the state these methods use: ``_base_model``, ``_peft``, ``_adapters``,
``_serial``, ``metrics`` and ``device``.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import torch

from services.inference.adapters import CheckedAdapter, LoadedAdapter
from services.inference.exceptions import AdapterLoadError, ModelNotFoundError, OutOfMemoryError

log = logging.getLogger("services.inference.engine")


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError | MemoryError) or "out of memory" in str(exc).lower()


class AdapterSwaps:
    _base_model: Any
    _peft: Any
    _adapters: dict[str, LoadedAdapter]
    _serial: int
    metrics: Any
    device: str

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
            if is_oom(exc):
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
