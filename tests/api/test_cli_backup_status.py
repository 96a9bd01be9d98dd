"""`trainyard backup status` (a REST client) prints the API's summary sentence and its warnings: with no
replica endpoint configured, the copies live on the primary's own server, which is not a backup."""

from __future__ import annotations

import json

from tests.api.test_cli_registry import gateway, trainyard  # noqa: F401 - gateway is a fixture

__all__ = ["gateway"]


def test_backup_status_says_the_replica_is_not_a_backup(gateway: dict) -> None:  # noqa: F811
    env = gateway["env"]
    res = trainyard(env, "backup", "status")
    assert res.returncode == 0, res.stderr
    assert "0 of 0" not in res.stdout and "No versions stored yet" in res.stdout, res.stdout
    err = " ".join(res.stderr.split())  # rich wraps long lines
    assert "warning: no replica is configured" in err and "not a backup" in err, res.stderr
    body = json.loads(trainyard(env, "backup", "status", "--json").stdout)
    assert body["summary"].startswith("No versions stored yet") and len(body["warnings"]) == 1
