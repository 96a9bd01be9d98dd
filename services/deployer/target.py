"""HTTP adapter for one deployment target (a Trainyard inference server or a vLLM server).

Maps transport and status errors onto the deployer's exceptions so the deployment logic can tell "nothing
changed on the target" (``TargetError``) from everything else. All calls carry the target's bearer token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from services.deployer.exceptions import (
    IncompatibleAdapterError,
    TargetAuthError,
    TargetError,
    TargetOutOfMemoryError,
    TargetUnreachableError,
    UploadRejectedError,
)
from shared.settings import TargetConfig


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    if isinstance(body, dict):
        detail = body.get("detail", body.get("error", body.get("message", body)))
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        return str(detail)[:300]
    return str(body)[:300]


def _is_oom(resp: httpx.Response) -> bool:
    return resp.status_code == 507 or "out of memory" in resp.text.lower()


@dataclass
class Completion:
    text: str
    latency_ms: float


@dataclass
class TargetClient:
    """Speaks the inference HTTP contract (health, models, completions, adapter admin and uploads)."""

    config: TargetConfig
    timeout_s: float = 60.0
    transport: httpx.BaseTransport | None = None
    _http: httpx.Client | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
            self._http = httpx.Client(base_url=self.config.url.rstrip("/"), headers=headers,
                                      timeout=self.timeout_s, transport=self.transport)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- plumbing -----------------------------------------------------------------------------------
    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise TargetUnreachableError(f"target {self.name} ({self.config.url}) timed out on {what}") from exc
        except httpx.TransportError as exc:
            raise TargetUnreachableError(
                f"target {self.name} ({self.config.url}) is unreachable on {what}: {exc}") from exc
        if resp.status_code in (401, 403):
            raise TargetAuthError(f"target {self.name} refused the token on {what} (HTTP {resp.status_code})")
        return resp

    def _check(self, resp: httpx.Response, what: str) -> httpx.Response:
        if resp.is_success:
            return resp
        detail = _detail(resp)
        if _is_oom(resp):
            raise TargetOutOfMemoryError(f"target {self.name} is out of memory on {what}: {detail}")
        raise TargetError(f"target {self.name}: {what} failed (HTTP {resp.status_code}): {detail}")

    # -- health and inference -----------------------------------------------------------------------
    def health(self) -> None:
        """Raise unless ``/health`` and ``/ready`` answer 200, then check the token on ``/v1/models``."""
        for path in ("/health", "/ready"):
            self._check(self._call("GET", path, f"GET {path}"), f"GET {path}")
        self.models()

    def models(self) -> list[str]:
        resp = self._check(self._call("GET", "/v1/models", "GET /v1/models"), "GET /v1/models")
        return [m.get("id", "") for m in resp.json().get("data", [])]

    def complete(self, model: str, prompt: str, max_tokens: int) -> Completion:
        body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
        t0 = time.perf_counter()
        resp = self._check(self._call("POST", "/v1/completions", "completion", json=body), "completion")
        latency = (time.perf_counter() - t0) * 1000
        return Completion(text=str(resp.json()["choices"][0]["text"]), latency_ms=latency)

    # -- adapter admin ------------------------------------------------------------------------------
    def load_adapter(self, name: str, lora_path: str) -> None:
        what = f"loading adapter {name!r}"
        body: dict[str, Any] = {"lora_name": name, "lora_path": lora_path}
        if self.config.kind == "vllm":
            body["load_inplace"] = True  # vLLM >= 0.9 replaces an adapter of the same name in place
        resp = self._call("POST", "/v1/load_lora_adapter", what, json=body)
        if resp.is_success:
            return
        if _is_oom(resp):
            raise TargetOutOfMemoryError(f"target {self.name} ran out of memory {what}: {_detail(resp)}")
        if resp.status_code in (400, 404, 409, 422):
            raise IncompatibleAdapterError(
                f"target {self.name} refused {what} (HTTP {resp.status_code}): {_detail(resp)}")
        self._check(resp, what)

    def unload_adapter(self, name: str) -> bool:
        """Unload ``name``; False if the target did not have it."""
        what = f"unloading adapter {name!r}"
        resp = self._call("POST", "/v1/unload_lora_adapter", what, json={"lora_name": name})
        if resp.status_code in (400, 404):
            return False
        self._check(resp, what)
        return True

    # -- uploads ------------------------------------------------------------------------------------
    def create_upload(self, files: list[dict[str, Any]]) -> str:
        resp = self._call("POST", "/v1/adapter_uploads", "creating an upload", json={"files": files})
        return str(self._upload_check(resp, "creating an upload").json()["upload_id"])

    def upload_status(self, upload_id: str) -> dict[str, Any] | None:
        """The upload's state, or None if the target no longer knows it."""
        resp = self._call("GET", f"/v1/adapter_uploads/{upload_id}", "reading upload state")
        if resp.status_code == 404:
            return None
        return self._check(resp, "reading upload state").json()

    def put_chunk(self, upload_id: str, path: str, offset: int, data: bytes) -> int:
        url = f"/v1/adapter_uploads/{upload_id}/files/{quote(path)}"
        what = f"uploading {path} at offset {offset}"
        resp = self._call("PUT", url, what, params={"offset": offset}, content=data,
                          headers={"Content-Type": "application/octet-stream"})
        return int(self._upload_check(resp, what).json()["received"])

    def fetch_upload(self, upload_id: str, urls: dict[str, str]) -> None:
        resp = self._call("POST", f"/v1/adapter_uploads/{upload_id}/fetch", "fetching by URL", json={"urls": urls})
        self._upload_check(resp, "fetching by URL")

    def commit_upload(self, upload_id: str) -> str:
        resp = self._call("POST", f"/v1/adapter_uploads/{upload_id}/commit", "committing the upload")
        return str(self._upload_check(resp, "committing the upload").json()["lora_path"])

    def _upload_check(self, resp: httpx.Response, what: str) -> httpx.Response:
        if resp.status_code in (400, 409, 413, 422):
            raise UploadRejectedError(
                f"target {self.name} rejected the upload when {what} (HTTP {resp.status_code}): {_detail(resp)}")
        return self._check(resp, what)
