"""``init_from``: a job that starts from a stored version's weights, checked at submit.

The version is named by id or alias and resolved to its id (an alias may move later; the job keeps the weights
it was submitted with). Refused, with the reason: no such version or alias, a version that is trashed, one that
holds no trainable weights (a dataset, a base or merged model), one trained from another base model than the
job's, and a LoRA job from a full version (its adapter would belong to no stored base model).
"""

from __future__ import annotations

from pathlib import Path

from services.registry.client import RegistryClient
from services.trainer.exceptions import SpecError
from services.trainer.spec import JobSpec, TrainMethod
from shared import storage

STARTABLE_KINDS = ("adapter", "full")


def same_model(a: str | None, b: str | None) -> bool:
    """Two base-model references name the same model (a local directory by its resolved path)."""
    if not a or not b:
        return False

    def norm(x: str) -> str:
        p = Path(x).expanduser()
        return str(p.resolve()) if p.exists() else x

    return norm(a) == norm(b)


def resolve_version(registry: RegistryClient, ref: str) -> str:
    """The version id ``ref`` names: a version id, else an alias."""
    if registry.get_json(storage.manifest_key(ref)) is not None:
        return ref
    alias = registry.get_alias(ref) if ref and "/" not in ref else None
    if alias and alias.get("version_id"):
        return str(alias["version_id"])
    raise SpecError(f"invalid job spec: init_from: {ref!r} is neither a stored version id nor an alias")


def resolve(registry: RegistryClient, spec: JobSpec) -> JobSpec:
    """``spec`` with ``init_from`` resolved to a version id it may start from; SpecError saying why not."""
    if not spec.init_from:
        return spec
    field = "invalid job spec: init_from"
    version_id = resolve_version(registry, spec.init_from)
    manifest = registry.get_json(storage.manifest_key(version_id))
    if manifest is None:
        raise SpecError(f"{field}: version {version_id} (alias {spec.init_from!r}) is not in the registry")
    if registry.get_state(version_id).get("trashed_at"):
        raise SpecError(f"{field}: version {version_id} is in the trash; restore it first "
                        f"(`trainyard versions restore {version_id}`)")
    kind = manifest.get("kind")
    if kind not in STARTABLE_KINDS:
        raise SpecError(f"{field}: version {version_id} is a {kind} version; only adapter and full versions "
                        "(training checkpoints) can be continued")
    base = (manifest.get("lineage") or {}).get("base_model")
    if not same_model(base, spec.base_model):
        raise SpecError(f"{field}: version {version_id} was trained from base model {base!r}, not from this job's "
                        f"base_model {spec.base_model!r}")
    if kind == "full" and spec.method == TrainMethod.lora:
        raise SpecError(f"{field}: version {version_id} is a full fine-tune; continue it with method: full "
                        "(a LoRA on it would belong to no stored base model)")
    return spec.model_copy(update={"init_from": version_id})
