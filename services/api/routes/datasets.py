"""Datasets: the dataset versions in the registry, and upload (validated, stored, content-addressed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from services.api import backends as b
from services.api import uploads
from services.api.deps import READ, WRITE, PageDep, RedisDep, RegistryDep, SettingsDep
from services.api.exceptions import NotFound
from services.api.problems import NOT_FOUND, READ_ERRORS, WRITE_ERRORS
from services.api.schemas import DatasetStoredPublic, ManifestPublic, Page, VersionPublic, paginate
from shared.bus import publish
from shared.events import DatasetStored, Event

router = APIRouter(prefix="/api/datasets", tags=["datasets"])


@router.get("", response_model=Page[VersionPublic], dependencies=READ, responses=READ_ERRORS)
def list_datasets(r: RedisDep, page: PageDep) -> dict:
    items = b.call(b.REGISTRY_PROJECTION, "list_versions", r, kind="dataset")
    return paginate(items, *page)


@router.get("/{version_id}", response_model=ManifestPublic, dependencies=READ, responses={**READ_ERRORS, **NOT_FOUND})
def get_dataset(version_id: str, registry: RegistryDep) -> dict:
    manifest = registry.get_json(f"manifests/{version_id}.json")
    if manifest is None or manifest.get("kind") != "dataset":
        raise NotFound(f"no dataset version {version_id}")
    return manifest


@router.post("", response_model=DatasetStoredPublic, status_code=201, dependencies=WRITE, responses=WRITE_ERRORS)
def upload_dataset(
    settings: SettingsDep, r: RedisDep, registry: RegistryDep,
    file: Annotated[UploadFile, File(description="dataset: .jsonl, .json (an array), .csv or .parquet")],
    name: Annotated[str | None, Form(max_length=200)] = None,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> dict[str, Any]:
    """Validate a dataset (line-numbered errors) and store it in the registry as a dataset version."""
    upload = uploads.save(settings.uploads_dir, file)
    with uploads.named_as_sent(upload):
        validated = b.call(b.TRAINER_DATASETS, "load_and_validate", upload.path)
    manifest = registry.store_dataset(upload.path, name=name or upload.stem, note=note)
    digest = manifest["files"][0]["sha256"]
    publish(r, Event.create("dataset.stored", DatasetStored(version_id=manifest["version_id"], sha256=digest,
                                                              name=manifest["name"])))
    n = getattr(validated, "n_examples", None) or len(getattr(validated, "examples", []) or [])
    return {"version_id": manifest["version_id"], "sha256": digest, "name": manifest["name"], "n_examples": n,
            "format": validated.format.value, "file_type": validated.file_type, "detected": validated.detected}
