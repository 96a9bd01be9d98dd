"""The registry's adapters in one place: settings, Redis, the primary and the replica S3 clients.

``Registry.open(settings)`` is what the API, the CLI and other services (the deployer moving
``production:<target>``) pass to ``services.registry.commands``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import redis
from minio import Minio

from services.registry.client import RegistryClient
from shared import storage, streams
from shared.bus import publish
from shared.events import Event, Payload
from shared.runtime import connect_redis
from shared.settings import CommonSettings, RegistrySettings

# checkpoint/dataset event id -> version id, written in the same MULTI/EXEC as the version.stored XADD so a
# redelivered event never publishes a second version.stored.
PUBLISHED_KEY = streams.key("registry", "published")


def registry_settings(settings: CommonSettings) -> RegistrySettings:
    if isinstance(settings, RegistrySettings):
        return settings
    return RegistrySettings(**settings.model_dump())


def replica_client(settings: RegistrySettings) -> RegistryClient:
    s3 = Minio(
        settings.replica_endpoint or settings.s3_endpoint,
        access_key=settings.replica_access_key or settings.s3_access_key,
        secret_key=settings.replica_secret_key or settings.s3_secret_key,
        secure=settings.s3_secure, region=settings.s3_region,
    )
    return RegistryClient(s3, settings.replica_bucket, part_size_mb=settings.multipart_threshold_mb)


@dataclass
class Registry:
    settings: RegistrySettings
    r: redis.Redis
    primary: RegistryClient
    replica: RegistryClient

    @classmethod
    def open(cls, settings: CommonSettings, r: redis.Redis | None = None, *, ensure: bool = True) -> Registry:
        rs = registry_settings(settings)
        primary = RegistryClient(storage.s3_client(rs), rs.bucket, part_size_mb=rs.multipart_threshold_mb)
        reg = cls(rs, r if r is not None else connect_redis(rs.redis_url), primary, replica_client(rs))
        if ensure:
            primary.ensure_bucket()
            reg.replica.ensure_bucket()
        return reg

    @classmethod
    def attach(cls, settings: CommonSettings, r: redis.Redis, primary: RegistryClient) -> Registry:
        """The context over a primary client the caller already holds (the deployer moving its alias)."""
        rs = registry_settings(settings)
        return cls(rs, r, primary, replica_client(rs))

    @property
    def tmp_dir(self) -> Path:
        path = Path(self.settings.state_dir) / "registry" / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def emit(self, type_: str, payload: Payload, *, job_id: str | None = None, cause: Event | None = None) -> Event:
        event = Event.create(type_, payload, job_id=job_id, cause=cause)
        publish(self.r, event)
        return event
