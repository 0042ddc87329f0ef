"""Write the InvenTree part page into each synced Bambuddy archive's external_url.

Policy (the original sidecar's settings): only when SYNC_ARCHIVE_EXTERNAL_LINK; an empty link or
one of our own InvenTree part links is (re)written; a foreign link (e.g. MakerWorld) is kept unless
OVERWRITE_ARCHIVE_EXTERNAL_LINK. The outcome of each archive is recorded in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestration.ledger import Ledger, LedgerEntry
from orchestration.settings import SyncSettings

# Bambuddy stores external_url in a String(500) column (CONTRACT.md PATCH notes).
MAX_EXTERNAL_URL = 500


def part_page_url(settings: SyncSettings, part_pk: int) -> str:
    # InvenTree 1.4's web UI path for a part (CONTRACT.md surprise 7).
    return f"{settings.inventree_link_base}/web/part/{part_pk}/"


def is_our_link(settings: SyncSettings, url: str) -> bool:
    return url.startswith(f"{settings.inventree_link_base}/web/part/")


@dataclass
class LinkReport:
    outcomes: dict[int, str] = field(default_factory=dict)   # archive id -> written / unchanged / kept_foreign / archive_gone / failed
    errors: dict[int, str] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return sum(1 for v in self.outcomes.values() if v == outcome)


def entries_needing_links(ledger: Ledger, *, archive_ids: tuple[int, ...] = (), force: bool = False) -> list[LedgerEntry]:
    """Synced Bambuddy-backed prints whose archive has no settled link yet, one per archive."""
    chosen: dict[int, LedgerEntry] = {}
    for entry in sorted(ledger.entries().values(), key=lambda e: e.last_attempt_at):
        if entry.state != "synced" or entry.archive_id is None or entry.part_pk is None:
            continue
        if archive_ids and entry.archive_id not in archive_ids:
            continue
        settled = entry.link_state in ("written", "kept_foreign", "archive_gone")
        if settled and not force:
            continue
        chosen[entry.archive_id] = entry  # the latest run of an archive wins (same part anyway)
    return list(chosen.values())


def write_links(client: Any, ledger: Ledger, settings: SyncSettings, entries: list[LedgerEntry],
                not_found: type[Exception]) -> LinkReport:
    report = LinkReport()
    for entry in entries:
        url = part_page_url(settings, entry.part_pk)
        if len(url) > MAX_EXTERNAL_URL:
            report.outcomes[entry.archive_id] = "failed"
            report.errors[entry.archive_id] = f"link longer than {MAX_EXTERNAL_URL} characters: shorten INVENTREE_WEB_URL"
            ledger.record_link(entry.print_id, "failed", None, report.errors[entry.archive_id])
            continue
        try:
            current = (client.get_archive(entry.archive_id).get("external_url") or "").strip()
            if current == url:
                outcome = "unchanged"
            elif current and not is_our_link(settings, current) and not settings.overwrite_archive_external_link:
                outcome = "kept_foreign"
            else:
                client.set_external_url(entry.archive_id, url)
                outcome = "written"
        except not_found:
            # The archive was deleted in Bambuddy: nothing to link; InvenTree data stays.
            ledger.record_link(entry.print_id, "archive_gone", None)
            report.outcomes[entry.archive_id] = "archive_gone"
            continue
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if settings.bambuddy_api_key:
                message = message.replace(settings.bambuddy_api_key, "***")
            ledger.record_link(entry.print_id, "failed", None, message)
            report.outcomes[entry.archive_id] = "failed"
            report.errors[entry.archive_id] = message
            continue
        ledger.record_link(entry.print_id, "written" if outcome == "unchanged" else outcome,
                           url if outcome != "kept_foreign" else current)
        report.outcomes[entry.archive_id] = outcome
    return report
