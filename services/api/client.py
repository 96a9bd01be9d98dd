"""The typed client of the REST API, used by the CLI and the tests: bearer token, problem+json errors as
one-line exceptions, and an unreachable API as one line that says what to run.

    api = ApiClient.discover()               # URL and token as in services/api/connect.py
    api.trash("v-1234")                     # -> {"version_id": ..., "action": "trash", "result": ...}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from services.api.connect import DEFAULT_URL, Endpoint, resolve
from services.api.exceptions import ApiClientError, ApiUnreachable

__all__ = ["DEFAULT_URL", "ApiClient", "ProgressReader"]

Json = Any
SLOW = httpx.Timeout(10, read=None)  # rehashing or listing a whole bucket takes as long as it takes


class ProgressReader:
    """A file wrapper that reports how many bytes were read (for upload progress bars)."""

    def __init__(self, f: IO[bytes], on_read: Callable[[int], None]) -> None:
        self.f = f
        self.on_read = on_read

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.on_read(len(data))
        return data


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if "name or service" in text or "nodename" in text or "resolution" in text:
        return "unknown host"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}".rstrip(": ")


class ApiClient:
    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 60.0,
                 endpoint: Endpoint | None = None) -> None:
        self.endpoint = endpoint or Endpoint(url.rstrip("/"), token, "--api-url")
        self.url = self.endpoint.url
        headers = {"Authorization": f"Bearer {self.endpoint.token}"} if self.endpoint.token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @classmethod
    def discover(cls, api_url: str | None = None, token: str | None = None, state_dir: Path | None = None,
                 timeout: float = 60.0) -> ApiClient:
        """A client for the stack found from the flags, environment, stack.json or config file."""
        endpoint = resolve(api_url, token, state_dir)
        return cls(endpoint.url, endpoint.token, timeout=timeout, endpoint=endpoint)

    def close(self) -> None:
        self.http.close()

    def unreachable(self, exc: httpx.HTTPError) -> ApiUnreachable:
        via = "" if self.endpoint.source in ("--api-url", "the default") else f"; URL from {self.endpoint.source}"
        return ApiUnreachable(f"cannot reach the API at {self.url} ({_reason(exc)}{via}); {self.endpoint.hint()}")

    # -- transport ---------------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Json:
        try:
            res = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from exc
        if res.status_code >= 400:
            raise ApiClientError(_problem_line(res))
        if "json" in res.headers.get("content-type", ""):
            return res.json()
        return res.text

    def get(self, path: str, **params: Any) -> Json:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None, timeout: httpx.Timeout | None = None,
             **params: Any) -> Json:
        extra = {"timeout": timeout} if timeout else {}
        return self.request("POST", path, json=body or {}, params={k: v for k, v in params.items() if v is not None},
                            **extra)

    def upload(self, path: str, file: Path, data: dict[str, str], on_read: Callable[[int], None]) -> Json:
        with file.open("rb") as f:
            return self.request("POST", path, files={"file": (file.name, ProgressReader(f, on_read))}, data=data)

    def download(self, url: str, dest: Path, on_read: Callable[[int], None] | None = None) -> None:
        """Stream ``url`` (a download link the API handed out) into ``dest``."""
        try:
            with httpx.stream("GET", url, timeout=httpx.Timeout(30, read=300)) as res:
                if res.status_code >= 400:
                    raise ApiClientError(f"download of {dest.name} failed (HTTP {res.status_code})")
                with dest.open("wb") as f:
                    for chunk in res.iter_bytes(1 << 20):
                        f.write(chunk)
                        if on_read:
                            on_read(len(chunk))
        except httpx.HTTPError as exc:
            host = httpx.URL(url).host
            raise ApiUnreachable(f"cannot reach the object store at {host} for {dest.name} ({_reason(exc)}); "
                                 "the API's download links point at its S3 endpoint") from exc

    def events(self, *, job_id: str | None = None, types: str | None = None, since: str | None = None
               ) -> Iterator[dict[str, Any]]:
        """Follow the live feed; yields event envelopes (with ``entry_id``)."""
        params = {k: v for k, v in {"job_id": job_id, "types": types, "since": since}.items() if v}
        try:
            with self.http.stream("GET", "/api/events/stream", params=params,
                                  timeout=httpx.Timeout(10, read=None)) as res:
                if res.status_code >= 400:
                    res.read()
                    raise ApiClientError(_problem_line(res))
                data: list[str] = []
                for line in res.iter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif not line and data:
                        yield json.loads("\n".join(data))
                        data = []
        except httpx.ConnectError as exc:
            raise self.unreachable(exc) from exc
        except httpx.HTTPError as exc:
            raise ApiClientError(f"live feed from {self.url} broke off ({_reason(exc)})") from exc

    # -- jobs --------------------------------------------------------------------------------------------
    def jobs(self, state: str | None = None, limit: int = 50) -> Json:
        return self.get("/api/jobs", state=state, limit=limit)

    def job(self, job_id: str) -> Json:
        return self.get(f"/api/jobs/{job_id}")

    def queue(self, limit: int = 1000) -> Json:
        return self.get("/api/queue", limit=limit)

    def control(self, job_id: str, action: str) -> Json:
        return self.post(f"/api/jobs/{job_id}/{action}")

    def set_priority(self, job_id: str, priority: str, front: bool = False) -> Json:
        return self.post(f"/api/jobs/{job_id}/priority", {"priority": priority, "front": front})

    def past_events(self, job_id: str | None = None, types: str | None = None, limit: int = 5000) -> Json:
        return self.get("/api/events", job_id=job_id, types=types, limit=limit)

    # -- versions ----------------------------------------------------------------------------------------
    def versions(self, kind: str | None = None, job_id: str | None = None, include_trashed: bool = False,
                 limit: int = 1000) -> Json:
        return self.get("/api/versions", kind=kind, job_id=job_id, include_trashed=include_trashed or None,
                        limit=limit)

    def version(self, version_id: str) -> Json:
        return self.get(f"/api/versions/{version_id}")

    def aliases(self) -> Json:
        return self.get("/api/versions/aliases")

    def protect(self, version_id: str, reason: str = "") -> Json:
        return self.post(f"/api/versions/{version_id}/protect", {"reason": reason})

    def unprotect(self, version_id: str) -> Json:
        return self.post(f"/api/versions/{version_id}/unprotect")

    def trash(self, version_id: str) -> Json:
        return self.post(f"/api/versions/{version_id}/trash")

    def restore(self, version_id: str) -> Json:
        return self.post(f"/api/versions/{version_id}/restore")

    def purge(self, version_id: str, force: str | None = None) -> Json:
        return self.post(f"/api/versions/{version_id}/purge", {"force": force}, timeout=SLOW)

    def move_alias(self, alias: str, version_id: str) -> Json:
        return self.post(f"/api/versions/{version_id}/aliases", {"alias": alias})

    def download_links(self, version_id: str) -> Json:
        return self.get(f"/api/versions/{version_id}/download")

    # -- registry ----------------------------------------------------------------------------------------
    def inventory(self) -> Json:
        return self.request("GET", "/api/registry/inventory", timeout=SLOW)

    def verify(self, repair: bool = False) -> Json:
        return self.post("/api/registry/verify", timeout=SLOW, repair=repair or None)

    def backup_status(self) -> Json:
        return self.get("/api/registry/backup")

    def storage_plan(self) -> Json:
        return self.get("/api/storage/plan")

    def storage_apply(self) -> Json:
        return self.post("/api/storage/apply")

    def gc_check(self, dirs: list[dict[str, Any]]) -> Json:
        return self.post("/api/registry/gc-check", {"dirs": dirs}, timeout=SLOW)

    # -- evolution and deployments -----------------------------------------------------------------------
    def evolution(self) -> Json:
        return self.get("/api/evolution")

    def compare(self, job_ids: list[str], fmt: str = "json") -> Json:
        """``GET /api/evolution/compare``: the JSON document, or the CSV text with ``fmt="csv"``."""
        return self.get("/api/evolution/compare", jobs=",".join(job_ids), fmt=fmt)

    def curve(self, job_id: str) -> Json:
        return self.get(f"/api/evolution/{job_id}/curve")

    def examples(self, job_id: str, sort: str | None = None, limit: int = 50) -> Json:
        return self.get(f"/api/evolution/{job_id}/examples", sort=sort, limit=limit)

    def example(self, job_id: str, idx: int) -> Json:
        return self.get(f"/api/evolution/{job_id}/examples/{idx}")

    def deploy(self, version_id: str, target: str) -> Json:
        return self.post("/api/deployments", {"version_id": version_id, "target": target})

    def rollback(self, target: str, to: str | None = None) -> Json:
        return self.post(f"/api/targets/{target}/rollback", {"to_deployment_id": to})

    def deployments(self, target: str | None = None, limit: int = 100) -> Json:
        return self.get("/api/deployments", target=target, limit=limit)

    def targets(self) -> Json:
        return self.get("/api/targets")


def _problem_line(res: httpx.Response) -> str:
    try:
        body = res.json()
        detail = body.get("detail") if isinstance(body, dict) else None
    except ValueError:
        detail = None
    detail = detail or res.text.strip()[:200] or res.reason_phrase
    return f"{detail} (HTTP {res.status_code})".replace("\n", " ")
