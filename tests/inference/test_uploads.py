"""Adapter uploads against a real server: resumable chunks, verification, fetch by presigned S3 URL."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from shared.settings import CommonSettings
from shared.storage import ensure_bucket, s3_client
from tests.support import inference as helpers
from tests.support.inference import Running

PROMPT = "The quick brown fox"


def _declare(src: Path) -> list[dict]:
    return [{"path": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "size": p.stat().st_size}
            for p in sorted(src.iterdir()) if p.is_file()]


def _complete(server: Running, model: str) -> str:
    resp = server.client().post("/v1/completions", json={"model": model, "prompt": PROMPT, "max_tokens": 8})
    assert resp.status_code == 200, resp.text
    return resp.json()["choices"][0]["text"]


def test_resumable_upload_then_commit_and_load(server: Running, lora_adapters: dict[str, Path]) -> None:
    http = server.client()
    src = lora_adapters["one"]
    upload_id = http.post("/v1/adapter_uploads", json={"files": _declare(src)}).json()["upload_id"]
    weights = (src / "adapter_model.safetensors").read_bytes()
    half = len(weights) // 2
    url = f"/v1/adapter_uploads/{upload_id}/files/adapter_model.safetensors"
    assert http.put(url, params={"offset": 0}, content=weights[:half]).json()["received"] == half

    status = http.get(f"/v1/adapter_uploads/{upload_id}").json()
    by_path = {f["path"]: f for f in status["files"]}
    assert by_path["adapter_model.safetensors"]["received"] == half and not status["complete"]
    early = http.post(f"/v1/adapter_uploads/{upload_id}/commit")
    assert early.status_code == 422 and "size mismatch" in early.json()["error"]["message"]
    short = {m["file"]: m["actual_size"] for m in early.json()["error"]["mismatches"]}
    assert short["adapter_model.safetensors"] == half

    skipped = http.put(url, params={"offset": half + 10}, content=weights[half + 10:])  # a gap is refused
    assert skipped.status_code == 409 and skipped.json()["error"]["received"] == half
    resumed = by_path["adapter_model.safetensors"]["received"]
    assert http.put(url, params={"offset": resumed}, content=weights[resumed:]).json()["received"] == len(weights)
    for f in _declare(src):
        if f["path"] != "adapter_model.safetensors":
            http.put(f"/v1/adapter_uploads/{upload_id}/files/{f['path']}", content=(src / f["path"]).read_bytes())
    assert http.get(f"/v1/adapter_uploads/{upload_id}").json()["complete"]

    commit = http.post(f"/v1/adapter_uploads/{upload_id}/commit")
    assert commit.status_code == 200, commit.text
    lora_path = commit.json()["lora_path"]
    assert Path(lora_path) == (server.adapters_dir / upload_id).resolve()
    assert (Path(lora_path) / "adapter_model.safetensors").read_bytes() == weights
    assert http.post(f"/v1/adapter_uploads/{upload_id}/commit").json()["lora_path"] == lora_path  # idempotent
    load = http.post("/v1/load_lora_adapter", json={"lora_name": "uploaded", "lora_path": lora_path})
    assert load.status_code == 200, load.text
    assert _complete(server, "uploaded").strip() == helpers.reference(
        Path(server.settings.base_model), src, PROMPT, 8)
    http.post("/v1/unload_lora_adapter", json={"lora_name": "uploaded"})


def test_corrupted_chunk_is_rejected_and_previous_adapter_keeps_serving(
        server: Running, lora_adapters: dict[str, Path]) -> None:
    http = server.client()
    serving = server.install(lora_adapters["one"], "serving")
    assert http.post("/v1/load_lora_adapter", json={"lora_name": "prod", "lora_path": str(serving)}).status_code == 200
    before = _complete(server, "prod")

    src = lora_adapters["two"]
    upload_id = http.post("/v1/adapter_uploads", json={"files": _declare(src)}).json()["upload_id"]
    for f in _declare(src):
        data = bytearray((src / f["path"]).read_bytes())
        if f["path"] == "adapter_model.safetensors":
            data[len(data) // 2] ^= 0xFF  # one flipped byte in one chunk
        http.put(f"/v1/adapter_uploads/{upload_id}/files/{f['path']}", content=bytes(data))
    resp = http.post(f"/v1/adapter_uploads/{upload_id}/commit")
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["file"] == "adapter_model.safetensors" and "sha256 mismatch" in err["message"]
    assert not (server.adapters_dir / upload_id).exists()  # nothing moved into place
    staged = server.adapters_dir / ".uploads" / upload_id / "files"
    refused = http.post("/v1/load_lora_adapter", json={"lora_name": "prod", "lora_path": str(staged)})
    assert refused.status_code == 400
    status = http.get(f"/v1/adapter_uploads/{upload_id}").json()
    assert {f["path"]: f["received"] for f in status["files"]}["adapter_model.safetensors"] == 0  # send again
    assert [m["id"] for m in http.get("/v1/models").json()["data"]][1:] == ["prod"]
    assert _complete(server, "prod") == before

    # sending the good bytes again makes the same upload committable
    http.put(f"/v1/adapter_uploads/{upload_id}/files/adapter_model.safetensors",
             content=(src / "adapter_model.safetensors").read_bytes())
    assert http.post(f"/v1/adapter_uploads/{upload_id}/commit").status_code == 200
    http.post("/v1/unload_lora_adapter", json={"lora_name": "prod"})


def test_bad_declarations_and_oversized_chunks(server: Running) -> None:
    http = server.client()
    digest = "0" * 64
    for path in ("../evil", "/abs", "a/../../b", ".hidden", "a\\b", ""):
        resp = http.post("/v1/adapter_uploads", json={"files": [{"path": path, "sha256": digest, "size": 1}]})
        assert resp.status_code == 400, path
    dup = [{"path": "a", "sha256": digest, "size": 1}] * 2
    assert http.post("/v1/adapter_uploads", json={"files": dup}).status_code == 400
    assert http.post("/v1/adapter_uploads", json={"files": [{"path": "a", "sha256": "xyz", "size": 1}]}
                     ).status_code == 400
    upload_id = http.post("/v1/adapter_uploads", json={"files": [{"path": "a.json", "sha256": digest, "size": 4}]}
                          ).json()["upload_id"]
    big = http.put(f"/v1/adapter_uploads/{upload_id}/files/a.json", content=b"123456")
    assert big.status_code == 413
    assert http.get(f"/v1/adapter_uploads/{upload_id}").json()["files"][0]["received"] == 0
    assert http.put(f"/v1/adapter_uploads/{upload_id}/files/other.json", content=b"1").status_code == 400
    assert http.get("/v1/adapter_uploads/" + "f" * 32).status_code == 404
    assert http.get("/v1/adapter_uploads/..%2F..%2Fetc").status_code == 404
    assert http.delete(f"/v1/adapter_uploads/{upload_id}").json()["deleted"] is True
    assert http.get(f"/v1/adapter_uploads/{upload_id}").status_code == 404


def test_fetch_by_presigned_url_from_s3(server: Running, lora_adapters: dict[str, Path],
                                       common_settings: CommonSettings) -> None:
    s3 = s3_client(common_settings)
    ensure_bucket(s3, common_settings.bucket)
    src = lora_adapters["two"]
    urls = {}
    for f in _declare(src):
        key = f"blobs/{f['sha256']}"
        s3.fput_object(common_settings.bucket, key, str(src / f["path"]))
        urls[f["path"]] = s3.presigned_get_object(common_settings.bucket, key, expires=timedelta(minutes=5))
    http = server.client()
    upload_id = http.post("/v1/adapter_uploads", json={"files": _declare(src)}).json()["upload_id"]
    assert http.post(f"/v1/adapter_uploads/{upload_id}/fetch", json={"urls": {"x": "file:///etc/passwd"}}
                     ).status_code == 400
    broken = http.post(f"/v1/adapter_uploads/{upload_id}/fetch",
                       json={"urls": {"adapter_config.json": urls["adapter_config.json"] + "tampered"}})
    assert broken.status_code == 502 and "HTTP 403" in broken.json()["error"]["message"]
    status = http.post(f"/v1/adapter_uploads/{upload_id}/fetch", json={"urls": urls})
    assert status.status_code == 200, status.text
    assert status.json()["complete"]
    lora_path = http.post(f"/v1/adapter_uploads/{upload_id}/commit").json()["lora_path"]
    assert http.post("/v1/load_lora_adapter", json={"lora_name": "fetched", "lora_path": lora_path}
                     ).status_code == 200
    assert _complete(server, "fetched").strip() == helpers.reference(
        Path(server.settings.base_model), src, PROMPT, 8)
    http.post("/v1/unload_lora_adapter", json={"lora_name": "fetched"})
