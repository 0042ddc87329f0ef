"""Client of the Bambuddy HTTP API (contract: tests/contracts/bambuddy/CONTRACT.md).

BAMBUDDY_BASE_URL is the API root and ends in /api/v1 (http://bambuddy:8000/api/v1); the
server root alone is accepted too and normalised. Auth: an API key in X-API-Key (the key
needs `can_manage_archives` to write links). Thumbnails do not accept headers when auth is
on: they need a camera stream token in ?token= (CONTRACT.md "Thumbnails").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

API_SUFFIX = "/api/v1"
MAX_EXTERNAL_URL = 500      # String(500) column (CONTRACT.md PATCH notes)
PRINT_LOG_MAX_LIMIT = 500   # larger limits are a 422 (transcript 18)


class BambuddyError(Exception):
    """Base of every Bambuddy failure; messages name the setting to fix, never the key."""


class BambuddyAuthError(BambuddyError):
    pass


class BambuddyPermissionError(BambuddyError):
    pass


class ArchiveNotFound(BambuddyError):
    pass


class BambuddyUnreachable(BambuddyError):
    pass


class BambuddyServerError(BambuddyError):
    pass


class BambuddyRequestError(BambuddyError):
    pass


def normalise_base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url:
        raise BambuddyUnreachable("BAMBUDDY_BASE_URL is not set: point it at Bambuddy's API, e.g. http://bambuddy:8000/api/v1")
    if url.endswith("/api"):
        url += "/v1"
    elif not url.endswith(API_SUFFIX):
        url += API_SUFFIX
    return url


@dataclass
class PageStats:
    pages: int = 0
    items: int = 0


class BambuddyClient:
    def __init__(self, base_url: str, api_key: str = "", timeout: float = 20.0, page_size: int = 50,
                 retries: int = 3, backoff: float = 0.5):
        self.base_url = normalise_base_url(base_url)
        self.timeout = timeout
        self.page_size = page_size
        self._api_key = api_key
        self._stream_token: str | None = None
        self.calls = 0
        self.session = requests.Session()
        if api_key:
            self.session.headers["X-API-Key"] = api_key
        # Retry connection errors and 5xx, never 4xx. PATCH of external_url and POST of a stream
        # token are idempotent in effect (same value written / another token), so they retry too.
        retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
                      status_forcelist=(500, 502, 503, 504), allowed_methods=frozenset({"GET", "PATCH", "POST"}),
                      raise_on_status=False, respect_retry_after_header=False)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    @classmethod
    def from_settings(cls, settings) -> "BambuddyClient":
        return cls(settings.bambuddy_base_url, settings.bambuddy_api_key, timeout=settings.http_timeout_seconds,
                   page_size=settings.backfill_page_size, retries=settings.http_retries,
                   backoff=settings.http_retry_backoff_seconds)

    # --- transport ------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, archive_id: int | None = None, **kwargs) -> requests.Response:
        url = self.base_url + path
        self.calls += 1
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.exceptions.RetryError as exc:
            raise BambuddyServerError(f"Bambuddy kept failing on {method} {path} after retries ({type(exc).__name__}); "
                                      "check the Bambuddy server logs") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise BambuddyUnreachable(
                f"cannot reach Bambuddy at {self.base_url} ({type(exc).__name__}): check BAMBUDDY_BASE_URL "
                "and that Bambuddy is running") from None
        status = response.status_code
        if status < 400:
            return response
        detail = _detail(response)
        if self._api_key:  # a proxy or debug page may echo the request's X-API-Key back
            detail = detail.replace(self._api_key, "***")
        if status == 401:
            raise BambuddyAuthError(
                f"Bambuddy refused the request (401 {detail}): check BAMBUDDY_API_KEY "
                "(create an API key in Bambuddy under Settings > API keys)")
        if status == 403:
            raise BambuddyPermissionError(
                f"the Bambuddy API key may not do this (403 {detail}): give the key of BAMBUDDY_API_KEY the "
                "'can_manage_archives' permission, or set SYNC_ARCHIVE_EXTERNAL_LINK=false")
        if status == 404 and archive_id is not None:
            raise ArchiveNotFound(f"Bambuddy archive {archive_id} not found (deleted?)")
        if status >= 500:
            raise BambuddyServerError(f"Bambuddy answered {status} on {method} {path}: {detail}")
        raise BambuddyRequestError(f"Bambuddy rejected {method} {path} ({status}): {detail}")

    def _json(self, method: str, path: str, **kwargs) -> Any:
        return self._request(method, path, **kwargs).json()

    # --- archives -------------------------------------------------------------------------
    def list_archives(self, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        return self._json("GET", "/archives/", params={"limit": limit, "offset": offset})

    def iter_archives(self, page_size: int | None = None, stats: PageStats | None = None) -> Iterator[dict[str, Any]]:
        """Newest first (created_at DESC). The API gives no total: stop on a short page."""
        size = page_size or self.page_size
        offset = 0
        seen: set[int] = set()
        while True:
            page = self.list_archives(size, offset)
            if stats is not None:
                stats.pages += 1
            for archive in page:
                if archive["id"] not in seen:  # no id tiebreak in the ordering: skip repeats
                    seen.add(archive["id"])
                    if stats is not None:
                        stats.items += 1
                    yield archive
            if len(page) < size:
                return
            offset += size

    def get_archive(self, archive_id: int) -> dict[str, Any]:
        return self._json("GET", f"/archives/{int(archive_id)}", archive_id=archive_id)

    def archive_runs(self, archive_id: int) -> list[dict[str, Any]]:
        return self._json("GET", f"/archives/{int(archive_id)}/runs", archive_id=archive_id)["items"]

    def set_external_url(self, archive_id: int, url: str | None) -> dict[str, Any]:
        if url is not None and len(url) > MAX_EXTERNAL_URL:
            raise BambuddyRequestError(
                f"external_url of {len(url)} characters is longer than Bambuddy's {MAX_EXTERNAL_URL}: "
                "shorten INVENTREE_WEB_URL")
        return self._json("PATCH", f"/archives/{int(archive_id)}", archive_id=archive_id, json={"external_url": url})

    # --- print log ------------------------------------------------------------------------
    def list_print_runs(self, limit: int = 50, offset: int = 0, status: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": min(limit, PRINT_LOG_MAX_LIMIT), "offset": offset}
        if status:
            params["status"] = status
        return self._json("GET", "/print-log/", params=params)

    def iter_print_runs(self, page_size: int | None = None, stats: PageStats | None = None) -> Iterator[dict[str, Any]]:
        """Newest first; the print log has a total, but new runs may arrive while paging."""
        size = min(page_size or self.page_size, PRINT_LOG_MAX_LIMIT)
        offset = 0
        seen: set[int] = set()
        while True:
            page = self.list_print_runs(size, offset)
            if stats is not None:
                stats.pages += 1
            for entry in page["items"]:
                if entry["id"] not in seen:
                    seen.add(entry["id"])
                    yield entry
            if len(page["items"]) < size:
                return
            offset += size

    # --- printers and thumbnails ----------------------------------------------------------
    def list_printers(self) -> list[dict[str, Any]]:
        return self._json("GET", "/printers/")

    def download_thumbnail(self, archive_id: int) -> bytes:
        params = {}
        if self._api_key:
            params["token"] = self._token()
        try:
            return self._request("GET", f"/archives/{int(archive_id)}/thumbnail", archive_id=archive_id,
                                 params=params).content
        except BambuddyAuthError:
            if not self._api_key:
                raise
            self._stream_token = None  # tokens live 60 min: get a fresh one once
            params["token"] = self._token()
            return self._request("GET", f"/archives/{int(archive_id)}/thumbnail", archive_id=archive_id,
                                 params=params).content

    def _token(self) -> str:
        if self._stream_token is None:
            self._stream_token = self._json("POST", "/printers/camera/stream-token")["token"]
        return self._stream_token

    # --- checks ---------------------------------------------------------------------------
    def check(self, write: bool = False) -> None:
        """Reachable and the key valid; with write, the key may manage archives. Writes nothing:
        PATCH {} is a 200 no-op for a writer and a 403 for a read-only key (transcripts 25, 47)."""
        archives = self.list_archives(limit=1)
        if write and archives:
            self._request("PATCH", f"/archives/{int(archives[0]['id'])}", archive_id=archives[0]["id"], json={})


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    detail = body.get("detail") if isinstance(body, dict) else body
    return str(detail)[:300]
