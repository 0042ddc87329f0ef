"""Settings of the sync pipeline (Dagster code location and sync API).

The environment variable names are those of the original Bambuddy -> InvenTree
sync sidecar, kept verbatim so an existing .env works unchanged. Everything is
validated once, at start, and every error names the setting and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

# Stock status codes InvenTree 1.4 accepts (CONTRACT.md, OPTIONS /api/stock/).
# An invalid code is silently stored as 10 on create, so we refuse it up front.
VALID_STOCK_STATUSES = {10: "OK", 50: "Attention needed", 55: "Damaged", 60: "Destroyed",
                        65: "Rejected", 70: "Lost", 75: "Quarantined", 85: "Returned"}
PART_KEY_CHOICES = ("content_hash", "filename", "print_name", "name")
SECRET_SETTINGS = ("BAMBUDDY_API_KEY", "INVENTREE_TOKEN", "SERVICE_API_TOKEN", "WEBHOOK_SHARED_SECRET")


def retry_delay(backoff: float, retry: int) -> float:
    """Seconds before retry `retry` (1, 2, ...) of a failed HTTP call: the first at once, then
    HTTP_RETRY_BACKOFF_SECONDS x 2, x 4, ... urllib3's Retry schedule, which the Bambuddy client
    uses; the InvenTree client and the in-place step retries follow it too."""
    return 0.0 if retry <= 1 else backoff * 2 ** (retry - 1)


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it and says how to fix it."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean: use true or false")


def _int(name: str, raw: str, *, minimum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}={value} must be >= {minimum}")
    return value


def _float(name: str, raw: str, *, minimum: float = 0.0) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value <= minimum:
        raise SettingsError(f"{name}={value} must be > {minimum}")
    return value


def _optional_int(name: str, raw: str) -> int | None:
    return _int(name, raw, minimum=1) if raw.strip() else None


def _url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and not value.startswith(("http://", "https://")):
        raise SettingsError(f"{name}={raw!r} must start with http:// or https://")
    return value


@dataclass(frozen=True)
class SyncSettings:
    bambuddy_base_url: str = ""          # BAMBUDDY_BASE_URL, ends in /api/v1 (normalised by the client)
    bambuddy_api_key: str = field(default="", repr=False)
    inventree_base_url: str = ""         # INVENTREE_BASE_URL, root or /api URL
    inventree_web_url: str = ""          # INVENTREE_WEB_URL, for links; falls back to the base URL
    inventree_token: str = field(default="", repr=False)
    inventree_part_category_id: int | None = None
    inventree_stock_location_id: int | None = None
    inventree_stock_status: int = 10
    service_api_token: str = field(default="", repr=False)
    webhook_shared_secret: str = field(default="", repr=False)
    sync_success_only: bool = True
    sync_part_images: bool = True
    overwrite_part_images: bool = False
    sync_archive_external_link: bool = True
    overwrite_archive_external_link: bool = False
    default_stock_quantity: int = 1
    part_ipn_prefix: str = "BMB"
    part_key_fields: tuple[str, ...] = PART_KEY_CHOICES
    backfill_page_size: int = 50
    poll_interval_seconds: int = 300
    sync_on_startup: bool = True
    http_timeout_seconds: float = 20.0
    http_retries: int = 3
    http_retry_backoff_seconds: float = 0.5
    match_window_minutes: int = 30           # an MQTT job and a Bambuddy run this close may be one print
    archive_grace_minutes: float = 5.0       # a completed job Bambuddy has not archived by then is stocked from MQTT
    sync_retry_base_seconds: float = 10.0    # a print that failed transiently waits this, doubling per attempt
    sync_retry_max_seconds: float = 1800.0   # ... up to this
    data_dir: Path = Path("data")

    @property
    def bambuddy_enabled(self) -> bool:
        return bool(self.bambuddy_base_url)

    @property
    def print_history_db(self) -> Path:
        return self.data_dir / "print_history.db"

    @property
    def warehouse_db(self) -> Path:
        return self.data_dir / "warehouse.db"

    @property
    def ledger_db(self) -> Path:
        return self.data_dir / "sync.sqlite3"

    @property
    def inventree_link_base(self) -> str:
        base = self.inventree_web_url or self.inventree_base_url
        return base[: -len("/api")] if base.endswith("/api") else base

    def redacted(self) -> dict[str, object]:
        """A dict safe to show in logs, metadata and API answers."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.upper() in SECRET_SETTINGS:
                value = "***" if value else ""
            out[f.name.upper()] = str(value) if isinstance(value, Path) else value
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SyncSettings":
        env = os.environ if environ is None else environ

        def get(name: str, default: str = "") -> str:
            return env.get(name, default)

        key_fields = tuple(k.strip() for k in get("PART_KEY_FIELDS", ",".join(PART_KEY_CHOICES)).split(",") if k.strip())
        unknown = [k for k in key_fields if k not in PART_KEY_CHOICES]
        if unknown or not key_fields:
            raise SettingsError(
                f"PART_KEY_FIELDS has unknown field(s) {unknown or '(empty)'}: use a comma list of {', '.join(PART_KEY_CHOICES)}")
        status = _int("INVENTREE_STOCK_STATUS", get("INVENTREE_STOCK_STATUS", "10"))
        if status not in VALID_STOCK_STATUSES:
            valid = ", ".join(f"{k} ({v})" for k, v in VALID_STOCK_STATUSES.items())
            raise SettingsError(
                f"INVENTREE_STOCK_STATUS={status} is not a stock status InvenTree knows "
                f"(it would silently store 10): use one of {valid}")
        prefix = get("PART_IPN_PREFIX", "BMB").strip()
        if not prefix or len(prefix) > 20:
            raise SettingsError("PART_IPN_PREFIX must be 1-20 characters (default BMB)")
        return cls(
            bambuddy_base_url=_url("BAMBUDDY_BASE_URL", get("BAMBUDDY_BASE_URL")),
            bambuddy_api_key=get("BAMBUDDY_API_KEY").strip(),
            inventree_base_url=_url("INVENTREE_BASE_URL", get("INVENTREE_BASE_URL")),
            inventree_web_url=_url("INVENTREE_WEB_URL", get("INVENTREE_WEB_URL")),
            inventree_token=get("INVENTREE_TOKEN").strip(),
            inventree_part_category_id=_optional_int("INVENTREE_PART_CATEGORY_ID", get("INVENTREE_PART_CATEGORY_ID")),
            inventree_stock_location_id=_optional_int("INVENTREE_STOCK_LOCATION_ID", get("INVENTREE_STOCK_LOCATION_ID")),
            inventree_stock_status=status,
            service_api_token=get("SERVICE_API_TOKEN").strip(),
            webhook_shared_secret=get("WEBHOOK_SHARED_SECRET").strip(),
            sync_success_only=_bool("SYNC_SUCCESS_ONLY", get("SYNC_SUCCESS_ONLY", "true")),
            sync_part_images=_bool("SYNC_PART_IMAGES", get("SYNC_PART_IMAGES", "true")),
            overwrite_part_images=_bool("OVERWRITE_PART_IMAGES", get("OVERWRITE_PART_IMAGES", "false")),
            sync_archive_external_link=_bool("SYNC_ARCHIVE_EXTERNAL_LINK", get("SYNC_ARCHIVE_EXTERNAL_LINK", "true")),
            overwrite_archive_external_link=_bool(
                "OVERWRITE_ARCHIVE_EXTERNAL_LINK", get("OVERWRITE_ARCHIVE_EXTERNAL_LINK", "false")),
            default_stock_quantity=_int("DEFAULT_STOCK_QUANTITY", get("DEFAULT_STOCK_QUANTITY", "1"), minimum=1),
            part_ipn_prefix=prefix,
            part_key_fields=key_fields,
            backfill_page_size=_int("BACKFILL_PAGE_SIZE", get("BACKFILL_PAGE_SIZE", "50"), minimum=1),
            poll_interval_seconds=_int("POLL_INTERVAL_SECONDS", get("POLL_INTERVAL_SECONDS", "300"), minimum=0),
            sync_on_startup=_bool("SYNC_ON_STARTUP", get("SYNC_ON_STARTUP", "true")),
            http_timeout_seconds=_float("HTTP_TIMEOUT_SECONDS", get("HTTP_TIMEOUT_SECONDS", "20")),
            http_retries=_int("HTTP_RETRIES", get("HTTP_RETRIES", "3"), minimum=0),
            http_retry_backoff_seconds=_float("HTTP_RETRY_BACKOFF_SECONDS", get("HTTP_RETRY_BACKOFF_SECONDS", "0.5")),
            match_window_minutes=_int("MATCH_WINDOW_MINUTES", get("MATCH_WINDOW_MINUTES", "30"), minimum=1),
            archive_grace_minutes=_float("ARCHIVE_GRACE_MINUTES", get("ARCHIVE_GRACE_MINUTES", "5")),
            sync_retry_base_seconds=_float("SYNC_RETRY_BASE_SECONDS", get("SYNC_RETRY_BASE_SECONDS", "10")),
            sync_retry_max_seconds=_float("SYNC_RETRY_MAX_SECONDS", get("SYNC_RETRY_MAX_SECONDS", "1800")),
            data_dir=Path(get("DATA_DIR", "data")),
        )
