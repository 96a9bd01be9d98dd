"""HTTP client of the REST API for the CLI: bearer token, problem+json errors as one-line exceptions."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from services.api.exceptions import ApiClientError

DEFAULT_URL = "http://127.0.0.1:8080"


class ProgressReader:
    """A file wrapper that reports how many bytes were read (for upload progress bars)."""

    def __init__(self, f: IO[bytes], on_read: Callable[[int], None]) -> None:
        self.f = f
        self.on_read = on_read

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.on_read(len(data))
        return data


class ApiClient:
    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            res = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiClientError(f"cannot reach the API at {self.url} ({type(exc).__name__}: {exc})") from exc
        if res.status_code >= 400:
            raise ApiClientError(_problem_line(res))
        if "json" in res.headers.get("content-type", ""):
            return res.json()
        return res.text

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body or {})

    def upload(self, path: str, file: Path, data: dict[str, str], on_read: Callable[[int], None]) -> Any:
        with file.open("rb") as f:
            return self.request("POST", path, files={"file": (file.name, ProgressReader(f, on_read))}, data=data)

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
        except httpx.HTTPError as exc:
            raise ApiClientError(f"live feed from {self.url} broke off ({type(exc).__name__}: {exc})") from exc


def _problem_line(res: httpx.Response) -> str:
    try:
        body = res.json()
        detail = body.get("detail") if isinstance(body, dict) else None
    except ValueError:
        detail = None
    detail = detail or res.text.strip()[:200] or res.reason_phrase
    return f"{detail} (HTTP {res.status_code})".replace("\n", " ")
