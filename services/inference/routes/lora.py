"""vLLM-compatible adapter admin: ``POST /v1/load_lora_adapter`` and ``POST /v1/unload_lora_adapter``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from services.inference.adapters import check_adapter, check_name, resolve_adapter_dir
from services.inference.deps import Authorized, EngineDep, SettingsDep
from services.inference.exceptions import NotReadyError
from services.inference.schemas import LoadAdapterRequest, UnloadAdapterRequest

router = APIRouter(prefix="/v1", tags=["adapters"], dependencies=Authorized)


@router.post("/load_lora_adapter")
async def load_lora_adapter(body: LoadAdapterRequest, engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    if not engine.ready or engine.base_info is None:
        raise NotReadyError(engine.load_error or "the base model is still loading")
    name = check_name(body.lora_name, engine.served_name, engine.base_id)
    path = resolve_adapter_dir(body.lora_path, settings.adapters_dir)
    checked = await asyncio.to_thread(check_adapter, path, engine.base_info)
    replaced = name in {a.name for a in engine.adapters()}
    loaded = await asyncio.wrap_future(engine.load_adapter(name, checked))
    return {"status": "replaced" if replaced else "loaded", "lora_name": loaded.name, "lora_path": loaded.path,
            "base_model": engine.served_name, "declared_base_model": loaded.declared_base,
            "matched_by": loaded.matched_by}


@router.post("/unload_lora_adapter")
async def unload_lora_adapter(body: UnloadAdapterRequest, engine: EngineDep) -> dict[str, Any]:
    old = await asyncio.wrap_future(engine.unload_adapter(body.lora_name))
    return {"status": "unloaded", "lora_name": old.name, "lora_path": old.path}
