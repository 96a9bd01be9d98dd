"""The registry commands of the CLI as the user runs them (subprocesses of the real console script): every
one but ``registry import|rebuild`` goes through the REST API (a real gateway on loopback, real Redis and S3);
each prints JSON with ``--json`` and one line on an error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from services.api.client import ApiClient
from services.api.main import create_app
from services.registry import commands
from services.registry.context import Registry
from services.registry.projection import VersionsProjection
from shared.projection import ProjectionRunner
from shared.settings import ApiSettings, RegistrySettings
from tests.support.registry import dropped_after
from tests.support.servers import serve_app

TRAINYARD = str(Path(sys.executable).parent / "trainyard")
TOKEN = "cli-registry-token"


def trainyard(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([TRAINYARD, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def as_json(res: subprocess.CompletedProcess) -> object:
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def one_line_error(res: subprocess.CompletedProcess, *words: str) -> str:
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    for w in words:
        assert w in res.stderr, res.stderr
    return res.stderr


@contextmanager
def running_gateway(settings_kwargs: dict, r: redis.Redis, bucket: str, tmp_path: Path,
                    **registry: object) -> Iterator[dict]:
    """A running gateway whose registry has a replica bucket (and ``registry`` settings), and the environment a
    user's shell would have: the API's URL and token, plus Redis and S3 for the commands that need the bucket."""
    reg_settings = RegistrySettings(**settings_kwargs, replica_bucket=f"{bucket}-replica", **registry)
    with dropped_after(Registry.open(reg_settings, r)) as reg:
        application = create_app(ApiSettings(**settings_kwargs, api_token=TOKEN, uploads_dir=tmp_path / "up"),
                                 targets=[])
        application.state.registry_ctx = reg
        with serve_app(application) as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
            env.update({f"TRAINYARD_{k.upper()}": str(v) for k, v in settings_kwargs.items()})
            env.update(TRAINYARD_DEV="1", TRAINYARD_REPLICA_BUCKET=f"{bucket}-replica", HOME=str(tmp_path),
                       TRAINYARD_API_URL=server.url, TRAINYARD_API_TOKEN=TOKEN, XDG_CONFIG_HOME=str(tmp_path))
            yield {"env": env, "reg": reg, "url": server.url}


@pytest.fixture
def gateway(settings_kwargs: dict, r: redis.Redis, bucket: str, tmp_path: Path) -> Iterator[dict]:
    with running_gateway(settings_kwargs, r, bucket, tmp_path) as gw:
        yield gw


def test_import_gc_inventory_backup_versions(gateway: dict, tiny_model: Path, tmp_path: Path) -> None:
    env, reg = gateway["env"], gateway["reg"]
    model_copy = tmp_path / "models" / "qwen-copy"
    shutil.copytree(tiny_model, model_copy)
    vid = as_json(trainyard(env, "registry", "import", str(model_copy), "--name", "tiny", "--note", "<b>x</b>",
                            "--json"))["version_id"]
    stray = tmp_path / "models" / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("not stored anywhere")

    res = trainyard(env, "gc", str(model_copy), str(stray))
    assert res.returncode == 0 and "keeping" in res.stdout, res.stderr
    out = " ".join(res.stdout.split())  # rich wraps long lines
    assert "notes.txt is in no stored version" in out and model_copy.exists()
    assert "has a verified replica copy yet" in out and "would remove" not in out
    items = as_json(trainyard(env, "gc", str(model_copy), "--apply", "--json"))  # the only other copy: kept
    assert [i["removed"] for i in items] == [False] and model_copy.exists()

    inv = as_json(trainyard(env, "registry", "inventory", "--json"))
    assert inv["count"] == 1 and inv["versions"][0]["note"] == "<b>x</b>"
    backup = as_json(trainyard(env, "backup", "status", "--json"))
    assert backup["pending"][0]["version_id"] == vid and backup["replicated"] == 0
    commands.replicate_pending(reg)
    assert as_json(trainyard(env, "backup", "status", "--json"))["pending"] == []
    res = trainyard(env, "backup", "status")
    assert "1/1 versions copied" in res.stdout or "1 of 1" in res.stdout, res.stdout
    items = as_json(trainyard(env, "gc", str(model_copy), str(stray), "--apply", "--json"))
    assert [i["removed"] for i in items] == [True, False] and not model_copy.exists() and stray.exists()

    ProjectionRunner(reg.r, VersionsProjection()).catch_up()
    assert [v["version_id"] for v in as_json(trainyard(env, "versions", "list", "--json"))] == [vid]
    assert as_json(trainyard(env, "versions", "show", vid, "--json"))["manifest"]["name"] == "tiny"
    assert as_json(trainyard(env, "versions", "protect", vid, "--reason", "base", "--json"))["version_id"] == vid
    one_line_error(trainyard(env, "versions", "trash", vid), "protected", "409")
    report = as_json(trainyard(env, "registry", "verify", "--json"))
    assert report["checked_blobs"] >= 3 and report["ok"]
    ProjectionRunner(reg.r, VersionsProjection()).catch_up()
    assert ApiClient(gateway["url"]).version(vid)["pinned"]


def test_version_mutations_print_json_and_export_over_rest(gateway: dict, tiny_model: Path, tmp_path: Path) -> None:
    env, reg = gateway["env"], gateway["reg"]
    vid = as_json(trainyard(env, "registry", "import", str(tiny_model), "--json"))["version_id"]
    ProjectionRunner(reg.r, VersionsProjection()).catch_up()
    for args, action in ((("protect", vid), "protect"), (("unprotect", vid), "unprotect"),
                         (("trash", vid), "trash"), (("restore", vid), "restore"),
                         (("alias", "mine", vid), "move_alias")):
        doc = as_json(trainyard(env, "versions", *args, "--json"))
        assert doc["version_id"] == vid and doc["action"] == action, doc
        ProjectionRunner(reg.r, VersionsProjection()).catch_up()
    # not in the trash: the registry refuses the purge, and the CLI says why in one line
    one_line_error(trainyard(env, "versions", "purge", vid, "--json"), vid)
    # a wrong token: 401 in one line
    one_line_error(trainyard({**env, "TRAINYARD_API_TOKEN": "wrong"}, "versions", "trash", vid), "401")

    dest = tmp_path / "exported"
    doc = as_json(trainyard(env, "versions", "export", vid, str(dest), "--json"))
    assert doc["dest"] == str(dest) and doc["aliases"] == ["mine"]
    got = {p.relative_to(dest): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == {p.relative_to(tiny_model): p.read_bytes() for p in tiny_model.rglob("*") if p.is_file()}
    one_line_error(trainyard(env, "versions", "export", vid, str(dest)), "not empty")


def test_purge_over_rest_after_the_trash(gateway: dict, tiny_model: Path) -> None:
    env, reg = gateway["env"], gateway["reg"]
    vid = as_json(trainyard(env, "registry", "import", str(tiny_model), "--json"))["version_id"]
    commands.replicate_pending(reg)
    ProjectionRunner(reg.r, VersionsProjection()).catch_up()
    as_json(trainyard(env, "versions", "trash", vid, "--json"))
    one_line_error(trainyard(env, "versions", "purge", vid), "retention")
    res = as_json(trainyard(env, "versions", "purge", vid, "--force", vid, "--json"))
    assert res["version_id"] == vid and res["override"] and res["blobs_deleted"] >= 3
    assert not reg.primary.has_manifest(vid)
