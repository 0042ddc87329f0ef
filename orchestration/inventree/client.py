"""InvenTree behind one small class, over the `inventree` client library (0.25, server API 479).

Contract: tests/contracts/inventree/CONTRACT.md. What this class adds to the library:
- lookups always raise on HTTP errors (the library's list() returns [] otherwise, which would
  make a failed lookup look like "not found" and breed duplicates);
- idempotent calls (lookups, PATCHes) are retried on connection errors and 5xx; creates are
  not: the caller looks the object up again before creating it;
- every library exception becomes one of ours with a message that names the setting to fix
  and never the token (HTTPError args carry the request headers, token included);
- parameters through inventree.base.Parameter/ParameterTemplate (the part.PartParameter
  classes refuse API 479), values sent with their unit;
- a count of HTTP calls, for the benchmark.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import requests
import urllib3
from inventree.api import InvenTreeAPI
from inventree.base import Parameter, ParameterTemplate
from inventree.part import Part, PartCategory
from inventree.stock import StockItem, StockLocation

from orchestration.settings import VALID_STOCK_STATUSES, retry_delay

from .text import clean_line, clean_notes

log = logging.getLogger(__name__)
T = TypeVar("T")

# Field errors that point at a setting rather than at the print.
FIELD_SETTINGS = {"category": "INVENTREE_PART_CATEGORY_ID", "location": "INVENTREE_STOCK_LOCATION_ID",
                  "status": "INVENTREE_STOCK_STATUS", "template": "the Weight/PrintTime parameter templates"}


class _RedactSecret(logging.Filter):
    """The library logs request headers (DEBUG) and HTTPError dicts (ERROR) with the token in
    clear: scrub it from every record of the `inventree` logger."""

    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret and self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), ()
        return True


def _protect(token: str) -> None:
    library_log = logging.getLogger("inventree")
    if not any(isinstance(f, _RedactSecret) and f.secret == token for f in library_log.filters):
        library_log.addFilter(_RedactSecret(token))


class InvenTreeError(Exception):
    """Base of every InvenTree failure; the message never contains the token."""


class InvenTreeAuthError(InvenTreeError):
    pass


class InvenTreeUnreachable(InvenTreeError):
    pass


class InvenTreeValidationError(InvenTreeError):
    def __init__(self, message: str, fields: dict[str, Any] | None = None):
        super().__init__(message)
        self.fields = fields or {}


class InvenTreeNotFound(InvenTreeError):
    pass


class InvenTreeServerError(InvenTreeError):
    pass


class InvenTreeConnectionLost(InvenTreeServerError):
    """Connected, then the answer never came (reset, read timeout): transient, unlike a server
    that cannot be reached at all; a create may still have been committed."""


def _never_connected(exc: requests.exceptions.RequestException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3 MaxRetryError wraps the cause
    return isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.NameResolutionError,
                               ConnectionRefusedError))


@dataclass
class PartRef:
    pk: int
    ipn: str
    name: str
    image: str | None


@dataclass
class StockRef:
    pk: int
    part: int
    batch: str
    quantity: float
    status: int


class InvenTreeClient:
    def __init__(self, base_url: str, token: str, timeout: float = 20.0, retries: int = 3, backoff: float = 0.5):
        if not base_url:
            raise InvenTreeUnreachable("INVENTREE_BASE_URL is not set: point it at your InvenTree, e.g. http://inventree:8000")
        if not token:
            raise InvenTreeAuthError("INVENTREE_TOKEN is not set: create an API token in InvenTree "
                                     "(user settings > API tokens) and put it in INVENTREE_TOKEN")
        self.base_url = base_url.rstrip("/")
        self._token = token
        _protect(token)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.calls = 0
        self._api: InvenTreeAPI | None = None

    @classmethod
    def from_settings(cls, settings) -> "InvenTreeClient":
        return cls(settings.inventree_base_url, settings.inventree_token, timeout=settings.http_timeout_seconds,
                   retries=settings.http_retries, backoff=settings.http_retry_backoff_seconds)

    # --- plumbing -----------------------------------------------------------------------
    @property
    def api(self) -> InvenTreeAPI:
        if self._api is None:
            # retried like any idempotent call: one 502 while connecting must not fail a whole run
            self._api = self._read(self._connect, "connect", http_calls=2)
        return self._api

    def _connect(self) -> InvenTreeAPI:
        """The library's two connection calls (GET /api/, GET /api/user/me/), the second one made
        directly: the library's testAuth() reports a 5xx as a wrong token."""
        api = InvenTreeAPI(self.base_url, token=self._token, timeout=self.timeout, use_token_auth=True, connect=False)
        if not api.testServer():
            raise InvenTreeUnreachable(f"cannot reach InvenTree at {api.base_url}: check INVENTREE_BASE_URL and "
                                       "that InvenTree is up")
        api.connected = True
        api.get("user/me/")  # a 401 becomes InvenTreeAuthError in _guard, a 5xx a retried server error
        return api

    def _guard(self, call: Callable[[], T], what: str) -> T:
        try:
            return call()
        except requests.exceptions.HTTPError as exc:
            raise self._http_error(exc, what) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            if not _never_connected(exc):
                raise InvenTreeConnectionLost(f"InvenTree at {self.base_url} dropped the connection during {what} "
                                              f"({type(exc).__name__}); retried on the next run") from None
            raise InvenTreeUnreachable(f"cannot reach InvenTree at {self.base_url} during {what} "
                                       f"({type(exc).__name__}): check INVENTREE_BASE_URL and that InvenTree is up") from None
        except ConnectionRefusedError:
            raise InvenTreeUnreachable(f"cannot reach InvenTree at {self.base_url} during {what}: check "
                                       "INVENTREE_BASE_URL and that InvenTree is up") from None
        except ConnectionError:  # the library's "Authentication at InvenTree server failed"
            raise InvenTreeAuthError("InvenTree rejected the token (401): check INVENTREE_TOKEN "
                                     "(an API token of a user who may add parts and stock)") from None
        except requests.exceptions.RequestException as exc:
            raise InvenTreeUnreachable(f"InvenTree at {self.base_url} did not answer properly during {what} "
                                       f"({type(exc).__name__}): check INVENTREE_BASE_URL") from None

    def _http_error(self, exc: requests.exceptions.HTTPError, what: str) -> InvenTreeError:
        info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        status = int(info.get("status_code") or 0)
        body = info.get("body")
        try:
            fields = json.loads(body) if isinstance(body, str) else (body or {})
        except ValueError:
            fields = {"detail": str(body)[:200]}
        detail = json.dumps(fields)[:500].replace(self._token, "***")
        if status == 401:
            return InvenTreeAuthError(f"InvenTree rejected the token during {what} (401): check INVENTREE_TOKEN")
        if status == 403:
            return InvenTreeAuthError(f"the INVENTREE_TOKEN user may not {what} (403): give it the part and stock "
                                      f"permissions. {detail}")
        if status == 404:
            return InvenTreeNotFound(f"InvenTree: not found during {what}: {detail}")
        if status >= 500:
            return InvenTreeServerError(f"InvenTree answered {status} during {what}: {detail}")
        hints = [f"{name} is wrong ({FIELD_SETTINGS[name]})" for name in fields if name in FIELD_SETTINGS] \
            if isinstance(fields, dict) else []
        hint = f" - {'; '.join(hints)}" if hints else ""
        return InvenTreeValidationError(f"InvenTree refused {what} ({status}): {detail}{hint}",
                                        fields if isinstance(fields, dict) else {})

    def _read(self, call: Callable[[], T], what: str, http_calls: int = 1) -> T:
        """Idempotent calls: retried on connection errors and 5xx with backoff."""
        attempt = 0
        while True:
            self.calls += http_calls
            try:
                return self._guard(call, what)
            except (InvenTreeUnreachable, InvenTreeServerError):
                attempt += 1
                if attempt > self.retries:
                    raise
                time.sleep(retry_delay(self.backoff, attempt))

    def _write(self, call: Callable[[], T], what: str) -> T:
        """Creates: one attempt. A lost answer is healed by the caller's lookup on the next run."""
        self.calls += 1
        return self._guard(call, what)

    # --- checks -------------------------------------------------------------------------
    def check(self) -> None:
        """Server reachable and token valid (the library's own connect does exactly that)."""
        _ = self.api

    def category_exists(self, pk: int) -> bool:
        return self._exists(lambda: PartCategory(self.api, pk=pk), "read the part category")

    def location_exists(self, pk: int) -> bool:
        return self._exists(lambda: StockLocation(self.api, pk=pk), "read the stock location")

    def _exists(self, call: Callable[[], Any], what: str) -> bool:
        try:
            self._read(call, what)
            return True
        except InvenTreeNotFound:
            return False

    # --- parts --------------------------------------------------------------------------
    def find_parts_by_ipn(self, ipn: str) -> list[PartRef]:
        """Every part with this IPN (duplicates are allowed), lowest pk first."""
        api = self.api
        ipn = clean_line(ipn, 100)  # looked up as it is stored
        parts = self._read(lambda: Part.list(api, IPN=ipn, raise_error=True), "look up parts by IPN")
        # the server filter is case-insensitive exact; say so explicitly here too
        found = [_part(p) for p in parts if str(p["IPN"] or "").lower() == ipn.lower()]
        return sorted(found, key=lambda p: p.pk)

    def create_part(self, *, name: str, ipn: str, description: str, category: int | None) -> PartRef:
        # every text through the server's rules (text.py), so a print name never gets a 400
        data = {"name": clean_line(name, 100), "IPN": clean_line(ipn, 100), "description": clean_line(description, 250),
                "active": True,
                "component": True, "trackable": False, "purchaseable": False, "salable": False, "assembly": False}
        if category is not None:
            data["category"] = category
        api = self.api
        return _part(self._write(lambda: Part.create(api, data), "create a part"))

    # --- stock --------------------------------------------------------------------------
    def find_stock_by_batch(self, batch: str, part: int | None = None) -> list[StockRef]:
        batch = clean_line(batch, 100)  # looked up as it is stored
        params: dict[str, Any] = {"batch": batch, "raise_error": True}
        if part is not None:
            params["part"] = part
        api = self.api
        items = self._read(lambda: StockItem.list(api, **params), "look up stock items by batch")
        return sorted((_stock(i) for i in items if str(i["batch"] or "").lower() == batch.lower()),
                      key=lambda s: s.pk)

    def create_stock_item(self, *, part: int, quantity: float, location: int | None, status: int, batch: str,
                          notes: str) -> StockRef:
        if status not in VALID_STOCK_STATUSES:
            # InvenTree would silently store 10 (CONTRACT.md surprise 3)
            raise InvenTreeValidationError(f"stock status {status} is not valid: fix INVENTREE_STOCK_STATUS")
        data = {"part": part, "quantity": quantity, "batch": clean_line(batch, 100), "status": status,
                "notes": clean_notes(notes)[:50000]}
        if location is not None:
            data["location"] = location
        api = self.api
        created = self._write(lambda: StockItem.create(api, data), "create a stock item")
        return _stock(created[0] if isinstance(created, list) else created)  # the server answers a list

    # --- parameters ---------------------------------------------------------------------
    def parameter_templates(self, names: tuple[str, ...] = ("Weight", "PrintTime")) -> dict[str, int]:
        api = self.api
        templates = self._read(lambda: ParameterTemplate.list(api, raise_error=True), "list parameter templates")
        wanted = {n.lower(): n for n in names}
        return {wanted[t["name"].lower()]: t.pk for t in templates if t["name"].lower() in wanted}

    def part_parameters(self, part_pk: int) -> dict[int, tuple[int, str]]:
        """template pk -> (parameter pk, data)."""
        api = self.api
        params = self._read(lambda: Parameter.list(api, model_type="part", model_id=part_pk, raise_error=True),
                            "list part parameters")
        return {int(p["template"]): (p.pk, str(p["data"])) for p in params}

    def set_parameter(self, part_pk: int, template_pk: int, value: str,
                      existing: tuple[int, str] | None = None) -> tuple[int, str] | None:
        """Create the value, or PATCH it when it differs; never a second value per template.
        Returns the (pk, data) now stored, or None when nothing had to change."""
        api = self.api
        if existing is not None:
            pk, data = existing
            if data == value:
                return None
            param = Parameter(api, pk=pk, data={"pk": pk, "data": data})
            self._read(lambda: param.save(data={"data": value}), "update a part parameter")
            return pk, value
        created = self._write(lambda: Parameter.create(api, {"model_type": "part", "model_id": part_pk,
                                                             "template": template_pk, "data": value}),
                              "create a part parameter")
        return created.pk, value

    # --- images -------------------------------------------------------------------------
    @staticmethod
    def part_has_image(part: PartRef) -> bool:
        return bool(part.image)

    def upload_part_image(self, part: PartRef | int, image: bytes, filename: str) -> PartRef:
        pk = part.pk if isinstance(part, PartRef) else int(part)
        api = self.api
        obj = Part(api, pk=pk, data={"pk": pk})  # no GET: PATCH needs only the pk
        # the library uploads from a path only (CONTRACT.md: TypeError for bytes)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, os.path.basename(filename) or "thumbnail.png")
            with open(path, "wb") as handle:
                handle.write(image)
            self._read(lambda: obj.uploadImage(path), "upload the part image")
        updated = _part(obj)
        if isinstance(part, PartRef):
            part.image = updated.image
        return updated

    @staticmethod
    def part_web_url(pk: int, web_base: str) -> str:
        return f"{web_base.rstrip('/')}/web/part/{pk}/"


def _part(obj: Any) -> PartRef:
    return PartRef(pk=int(obj.pk), ipn=str(obj["IPN"] or ""), name=str(obj["name"] or ""), image=obj["image"] or None)


def _stock(obj: Any) -> StockRef:
    return StockRef(pk=int(obj.pk), part=int(obj["part"]), batch=str(obj["batch"] or ""),
                    quantity=float(obj["quantity"] or 0), status=int(obj["status"] or 0))
