"""Fixtures: a real redis-server and a real S3 server (SeaweedFS) on free loopback ports, a tiny model.

Servers are session-scoped with isolated data dirs; each test gets a flushed Redis database and a bucket of
its own, so tests do not see each other's state.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.stack.servers import RedisServer, S3Server
from shared.settings import CommonSettings

S3_ACCESS = "trainyard-test"
S3_SECRET = "trainyard-test-secret-" + uuid.uuid4().hex[:8]

os.environ.setdefault("TRAINYARD_DEV", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"), S3_ACCESS, S3_SECRET).start()
    yield server
    server.kill()  # a graceful SeaweedFS stop takes ~20 s; its data dir is thrown away anyway


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh bucket name; afterwards every bucket whose name starts with it is emptied and removed
    (SeaweedFS gives each bucket volumes of its own, so leftover buckets would exhaust the server)."""
    name = "ty-" + uuid.uuid4().hex[:12]
    yield name
    drop_buckets(s3_server, prefix=name)


def drop_buckets(s3_server: S3Server, prefix: str) -> None:
    from minio import Minio
    from minio.error import S3Error

    client = Minio(s3_server.endpoint, access_key=S3_ACCESS, secret_key=S3_SECRET, secure=False)
    try:
        for b in client.list_buckets():
            if not b.name.startswith(prefix):
                continue
            for obj in client.list_objects(b.name, recursive=True, include_version=True):
                client.remove_object(b.name, obj.object_name, version_id=obj.version_id)
            client.remove_bucket(b.name)
    except S3Error:
        pass


@pytest.fixture
def settings_kwargs(redis_url: str, s3_server: S3Server, bucket: str, tmp_path: Path) -> dict:
    """Keyword arguments every service's settings class accepts, pointing at the test servers."""
    return {
        "dev": True,
        "redis_url": redis_url,
        "s3_endpoint": s3_server.endpoint,
        "s3_access_key": S3_ACCESS,
        "s3_secret_key": S3_SECRET,
        "bucket": bucket,
        "state_dir": tmp_path / "state",
    }


@pytest.fixture
def common_settings(settings_kwargs: dict) -> CommonSettings:
    return CommonSettings(**settings_kwargs)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shared.modeling import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def narrow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real-vocabulary Qwen3 (width 1024, 151,936 rows, 2 layers, the real Qwen tokenizer), built once per
    session by the command a user runs: ``trainyard demo-model DIR --shape qwen3-0.6b-narrow``."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("narrow") / "model"
    cli = Path(sys.executable).with_name("trainyard")
    proc = subprocess.run([str(cli), "demo-model", str(out), "--shape", "qwen3-0.6b-narrow"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out
