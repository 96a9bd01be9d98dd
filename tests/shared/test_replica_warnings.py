"""Which replica settings are not a backup: none configured, or the primary's own server (any bucket)."""

from __future__ import annotations

import pytest

from shared.settings import CommonSettings, same_server


def test_no_replica_configured_is_not_a_backup() -> None:
    (line,) = CommonSettings(dev=True, s3_endpoint="10.0.0.5:9000").replica_warnings()
    assert "no replica is configured" in line and "10.0.0.5:9000" in line and "not a backup" in line


@pytest.mark.parametrize("replica", ["10.0.0.5:9000", "http://10.0.0.5:9000/", "HTTPS://10.0.0.5:9000"])
def test_same_server_in_another_bucket_is_not_a_backup(replica: str) -> None:
    settings = CommonSettings(dev=True, s3_endpoint="10.0.0.5:9000", replica_endpoint=replica,
                              replica_bucket="elsewhere")
    (line,) = settings.replica_warnings()
    assert "primary's own server" in line and "'elsewhere'" in line and "not a backup" in line


def test_another_server_is_fine() -> None:
    assert CommonSettings(dev=True, s3_endpoint="10.0.0.5:9000", replica_endpoint="10.0.0.6:9000").replica_warnings() == []
    assert same_server("localhost:8333", "127.0.0.1:8333") and not same_server("127.0.0.1:8333", "127.0.0.1:8334")
