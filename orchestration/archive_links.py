"""The link step of a print: the InvenTree part page written into its Bambuddy archive's external_url.

Policy (the original sidecar's settings): only when SYNC_ARCHIVE_EXTERNAL_LINK; an empty link or
one of our own InvenTree part links is (re)written; a foreign link (e.g. MakerWorld) is kept unless
OVERWRITE_ARCHIVE_EXTERNAL_LINK. The natural key is the archive's current external_url: it is read
before anything is written, so a PATCH that happened but was not recorded is not repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from orchestration.bambuddy.client import (
    ArchiveNotFound,
    BambuddyAuthError,
    BambuddyPermissionError,
    BambuddyRequestError,
    BambuddyServerError,
    MAX_EXTERNAL_URL,
)
from orchestration.print_queue import Refused
from orchestration.settings import SyncSettings
from orchestration.silver import SilverPrint

# Wrong or read-only key: every other archive would fail the same way.
FATAL_LINK_ERRORS = (BambuddyAuthError, BambuddyPermissionError)
TRANSIENT_LINK_ERRORS = (BambuddyServerError,)


def part_page_url(settings: SyncSettings, part_pk: int) -> str:
    # InvenTree 1.4's web UI path for a part (CONTRACT.md surprise 7).
    return f"{settings.inventree_link_base}/web/part/{part_pk}/"


def is_our_link(settings: SyncSettings, url: str) -> bool:
    return url.startswith(f"{settings.inventree_link_base}/web/part/")


@dataclass
class LinkStep:
    settings: SyncSettings
    client_factory: Callable[[], Any]   # the Bambuddy client, made only when a link is written
    name: str = "link"
    _client: Any = None

    def applies(self, p: SilverPrint) -> bool:
        return (self.settings.bambuddy_enabled and self.settings.sync_archive_external_link
                and p.bambuddy_archive_id is not None)

    def run(self, p: SilverPrint, done: dict) -> dict:
        url = part_page_url(self.settings, int(done["part"]["part_pk"]))
        if len(url) > MAX_EXTERNAL_URL:
            raise Refused(f"link of {len(url)} characters is longer than Bambuddy's {MAX_EXTERNAL_URL}",
                          "shorten INVENTREE_WEB_URL")
        if self._client is None:
            self._client = self.client_factory()
        try:
            current = (self._client.get_archive(p.bambuddy_archive_id).get("external_url") or "").strip()
            if current == url:
                return {"link_state": "written", "link_url": url, "outcome": "unchanged"}
            if current and not is_our_link(self.settings, current) and not self.settings.overwrite_archive_external_link:
                return {"link_state": "kept_foreign", "link_url": current, "outcome": "kept_foreign"}
            self._client.set_external_url(p.bambuddy_archive_id, url)
        except ArchiveNotFound:
            # deleted in Bambuddy: nothing to link; the InvenTree data stays
            return {"link_state": "archive_gone", "outcome": "archive_gone"}
        except BambuddyRequestError as exc:
            raise Refused(str(exc), "Bambuddy refused the link: check INVENTREE_WEB_URL") from None
        return {"link_state": "written", "link_url": url, "outcome": "written"}
