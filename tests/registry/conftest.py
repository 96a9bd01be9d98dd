"""Fixtures of the registry tests: the registry's command context on the test servers, with a replica bucket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from services.registry.context import Registry
from shared.settings import RegistrySettings
from tests.support.registry import dropped_after


@pytest.fixture
def reg(settings_kwargs: dict, r: redis.Redis, bucket: str) -> Iterator[Registry]:
    """``Registry.open`` on the test bucket and ``<bucket>-replica``; both buckets are dropped afterwards."""
    settings = RegistrySettings(**settings_kwargs, replica_bucket=f"{bucket}-replica")
    with dropped_after(Registry.open(settings, r)) as reg:
        yield reg
