"""Pull declared upload files from URLs (registry presigned GETs) instead of receiving them."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from services.inference.exceptions import BadRequestError, FetchError, UploadTooLargeError
from services.inference.uploads import UploadStore

CHUNK = 1 << 20


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequestError(f"only http(s) URLs can be fetched, not {url[:80]!r}")
    return url


async def fetch_files(store: UploadStore, upload_id: str, urls: dict[str, str], timeout_s: float) -> None:
    """Download each ``path -> url`` into the upload (from byte 0); the commit verifies them."""
    targets = {path: (store.target_path(upload_id, path), check_url(url)) for path, url in urls.items()}
    sizes = {f["path"]: f["size"] for f in store.status(upload_id)["files"]}
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=True, max_redirects=3) as client:
        for path, (target, url) in targets.items():
            limit = sizes[path]
            try:
                async with client.stream("GET", url) as resp:
                    if resp.status_code != 200:
                        body = (await resp.aread())[:200].decode("utf-8", "replace")
                        raise FetchError(f"fetching {path}: HTTP {resp.status_code} from "
                                         f"{urlsplit(url).netloc}: {body}")
                    written = 0
                    with open(target, "wb") as f:
                        async for chunk in resp.aiter_bytes(CHUNK):
                            written += len(chunk)
                            if written > limit:
                                f.truncate(0)
                                raise UploadTooLargeError(f"{path}: the URL serves more than the declared "
                                                          f"{limit} bytes")
                            f.write(chunk)
            except httpx.HTTPError as exc:
                raise FetchError(f"fetching {path} from {urlsplit(url).netloc} failed: {exc}") from exc
