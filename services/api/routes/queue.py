"""The queue order across priorities (what the trainer's workers will take next)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.deps import READ, PageDep, RedisDep
from services.api.problems import READ_ERRORS
from services.api.schemas import JobPublic, Page, paginate
from services.trainer import api as trainer

router = APIRouter(prefix="/api/queue", tags=["queue"])


@router.get("", response_model=Page[JobPublic], dependencies=READ, responses=READ_ERRORS)
def queue_order(r: RedisDep, page: PageDep) -> dict:
    """Queued jobs in the order they will run (high, default, low; front-of-queue first)."""
    items = trainer.queue_order(r)
    return paginate([_with_id(i) for i in items], *page)


def _with_id(item: dict) -> dict:
    if "id" not in item and "job_id" in item:
        return {**item, "id": item["job_id"]}
    return item
