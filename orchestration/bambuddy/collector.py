"""Copies Bambuddy's printers, archives and print log into the raw layer (print_history.db).

Rows are upserted by id and never deleted; an archive that vanished (soft delete) keeps its
row with deleted = 1. After the first backfill a run reads only what can have changed:
- archives newer than the newest one we hold (the list is created_at DESC: page until a page
  brings nothing new);
- print-log entries newer than our cursor (also created_at DESC) - a reprint reuses its archive
  row without moving it, so the print log is the change feed for runs;
- archives referenced by those new entries, and archives still printing, fetched one by one;
- late changes of older archives (a rename, a status set in Bambuddy's UI): every archive on the
  pages read is compared with what we hold, and one more page per run, in rotation, re-reads
  the rest of the list, so every change reaches the raw layer (and silver) within
  pages/1 runs without a full scan.
A full re-scan (run config) pages through everything and detects soft deletes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ingestion.raw_schema import connect
from orchestration.ledger import utc_now

from .client import ArchiveNotFound, BambuddyClient, PageStats

NON_TERMINAL = ("printing",)


def to_utc(value: str | None) -> str | None:
    """Bambuddy sends naive UTC datetimes (CONTRACT.md): make them explicit."""
    if not value:
        return None
    return value if value.endswith("Z") or "+" in value[10:] else value + "Z"


@dataclass
class CollectReport:
    archives_seen: int = 0
    new: int = 0
    changed: int = 0
    deleted: int = 0
    runs_seen: int = 0
    runs_new: int = 0
    pages_read: int = 0
    full_rescan: bool = False
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        return {"archives_seen": self.archives_seen, "new": self.new, "changed": self.changed,
                "deleted": self.deleted, "runs_seen": self.runs_seen, "runs_new": self.runs_new,
                "pages_read": self.pages_read, "full_rescan": self.full_rescan,
                "duration_s": round(self.duration_s, 3)}


class ArchiveCollector:
    def __init__(self, client: BambuddyClient, db_path: str | Path):
        self.client = client
        self.conn = connect(db_path)

    def close(self) -> None:
        self.conn.close()

    # --- cursor -----------------------------------------------------------------------------
    def _state(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM raw_bambuddy_sync_state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_state(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT INTO raw_bambuddy_sync_state (key, value) VALUES (?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)))

    # --- run --------------------------------------------------------------------------------
    def collect(self, full_rescan: bool = False) -> CollectReport:
        started = time.monotonic()
        report = CollectReport(full_rescan=full_rescan or self._state("backfilled") is None)
        self._upsert_printers(self.client.list_printers())
        report.pages_read += 1
        stats = PageStats()
        if report.full_rescan:
            archives = list(self.client.iter_archives(stats=stats))
            self._upsert_archives(archives, report)
            self._mark_deleted({a["id"] for a in archives}, report)
            runs = list(self.client.iter_print_runs(stats=stats))
        else:
            archives = self._new_archives(stats)
            archives += self._rotating_page(stats, {a["id"] for a in archives})
            self._upsert_archives(archives, report)
            runs = self._new_runs(stats)
        report.pages_read += stats.pages
        known_runs = {r[0] for r in self.conn.execute("SELECT id FROM raw_bambuddy_print_runs")}
        self._upsert_runs(runs, report, known_runs)
        # Archives whose state may have moved: referenced by new runs, or still printing.
        refetch = {r["archive_id"] for r in runs if r.get("archive_id") and r["id"] not in known_runs}
        refetch |= {row[0] for row in self.conn.execute(
            f"SELECT id FROM raw_bambuddy_archives WHERE deleted = 0 AND status IN ({','.join('?' * len(NON_TERMINAL))})",
            NON_TERMINAL)}
        refetch -= {a["id"] for a in archives}
        if not report.full_rescan:
            for archive_id in sorted(refetch):
                try:
                    self._upsert_archives([self.client.get_archive(archive_id)], report, count_seen=True)
                except ArchiveNotFound:
                    self._flag_deleted([archive_id], report)
        self._set_state("backfilled", utc_now())
        report.duration_s = time.monotonic() - started
        return report

    def _new_archives(self, stats: PageStats) -> list[dict[str, Any]]:
        known = {row[0] for row in self.conn.execute("SELECT id FROM raw_bambuddy_archives")}
        size = self.client.page_size
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.client.list_archives(size, offset)
            stats.pages += 1
            fresh = [a for a in page if a["id"] not in known]
            out.extend(page)  # known ones too: the upsert keeps only real changes
            # created_at DESC: once a page reaches an archive we hold, the rest is older and held
            if len(page) < size or len(fresh) < len(page):
                return out
            offset += size

    def _rotating_page(self, stats: PageStats, seen: set[int]) -> list[dict[str, Any]]:
        """One page further down the list each run (wrapping round), for late changes of old archives."""
        size = self.client.page_size
        offset = int(self._state("rescan_offset") or size)
        page = self.client.list_archives(size, offset)
        stats.pages += 1
        self._set_state("rescan_offset", offset + size if len(page) == size else size)
        return [a for a in page if a["id"] not in seen]

    def _new_runs(self, stats: PageStats) -> list[dict[str, Any]]:
        cursor = int(self._state("print_log_max_id") or 0)
        pending = {row[0] for row in self.conn.execute(
            "SELECT id FROM raw_bambuddy_print_runs WHERE status IN ('printing')")}
        floor = min([cursor, *pending]) if pending else cursor
        size = min(self.client.page_size, 500)
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.client.list_print_runs(size, offset)
            stats.pages += 1
            items = page["items"]
            out.extend(e for e in items if e["id"] > cursor or e["id"] in pending)
            if len(items) < size or any(e["id"] <= floor for e in items):
                return out
            offset += size

    # --- writes -----------------------------------------------------------------------------
    def _upsert_printers(self, printers: Iterable[dict[str, Any]]) -> None:
        now = utc_now()
        self.conn.execute("BEGIN IMMEDIATE")
        for p in printers:
            self.conn.execute(
                """INSERT INTO raw_bambuddy_printers (id, name, serial_number, model, raw_json, first_seen_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET name = excluded.name, serial_number = excluded.serial_number,
                       model = excluded.model, raw_json = excluded.raw_json, updated_at = excluded.updated_at
                   WHERE raw_json != excluded.raw_json""",
                (p["id"], p.get("name"), p.get("serial_number"), p.get("model"), json.dumps(p, sort_keys=True), now, now))
        self.conn.execute("COMMIT")

    def _upsert_archives(self, archives: Iterable[dict[str, Any]], report: CollectReport,
                         count_seen: bool = True) -> None:
        now = utc_now()
        self.conn.execute("BEGIN IMMEDIATE")
        for a in archives:
            if count_seen:
                report.archives_seen += 1
            stable = {k: v for k, v in a.items() if k not in ("duplicates", "duplicate_count")}
            raw = json.dumps(stable, sort_keys=True)
            before = self.conn.execute("SELECT raw_json, deleted FROM raw_bambuddy_archives WHERE id = ?",
                                       (a["id"],)).fetchone()
            if before is None:
                report.new += 1
            elif before[0] != raw or before[1]:
                report.changed += 1
            else:
                continue
            self.conn.execute(
                """INSERT INTO raw_bambuddy_archives (id, printer_id, filename, content_hash, print_name, status,
                       started_at, completed_at, print_time_seconds, actual_time_seconds, filament_used_grams,
                       filament_type, filament_color, quantity, thumbnail_path, external_url, failure_reason,
                       run_count, created_at, deleted, raw_json, first_seen_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET printer_id = excluded.printer_id, filename = excluded.filename,
                       content_hash = excluded.content_hash, print_name = excluded.print_name,
                       status = excluded.status, started_at = excluded.started_at,
                       completed_at = excluded.completed_at, print_time_seconds = excluded.print_time_seconds,
                       actual_time_seconds = excluded.actual_time_seconds,
                       filament_used_grams = excluded.filament_used_grams, filament_type = excluded.filament_type,
                       filament_color = excluded.filament_color, quantity = excluded.quantity,
                       thumbnail_path = excluded.thumbnail_path, external_url = excluded.external_url,
                       failure_reason = excluded.failure_reason, run_count = excluded.run_count,
                       created_at = excluded.created_at, deleted = 0, deleted_seen_at = NULL,
                       raw_json = excluded.raw_json, updated_at = excluded.updated_at""",
                (a["id"], a.get("printer_id"), a.get("filename"), a.get("content_hash"), a.get("print_name"),
                 a.get("status"), to_utc(a.get("started_at")), to_utc(a.get("completed_at")),
                 a.get("print_time_seconds"), a.get("actual_time_seconds"), a.get("filament_used_grams"),
                 a.get("filament_type"), a.get("filament_color"), a.get("quantity"), a.get("thumbnail_path"),
                 a.get("external_url"), a.get("failure_reason"), a.get("run_count"), to_utc(a.get("created_at")),
                 raw, now, now))
        self.conn.execute("COMMIT")

    def _upsert_runs(self, runs: Iterable[dict[str, Any]], report: CollectReport, known: set[int]) -> None:
        now = utc_now()
        max_id = int(self._state("print_log_max_id") or 0)
        self.conn.execute("BEGIN IMMEDIATE")
        for r in runs:
            report.runs_seen += 1
            if r["id"] not in known:
                report.runs_new += 1
            max_id = max(max_id, r["id"])
            self.conn.execute(
                """INSERT INTO raw_bambuddy_print_runs (id, archive_id, printer_id, printer_name, print_name, status,
                       started_at, completed_at, duration_seconds, filament_used_grams, failure_reason, created_at,
                       raw_json, first_seen_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET archive_id = excluded.archive_id, status = excluded.status,
                       started_at = excluded.started_at, completed_at = excluded.completed_at,
                       duration_seconds = excluded.duration_seconds,
                       filament_used_grams = excluded.filament_used_grams, failure_reason = excluded.failure_reason,
                       raw_json = excluded.raw_json, updated_at = excluded.updated_at
                   WHERE raw_json != excluded.raw_json""",
                (r["id"], r.get("archive_id"), r.get("printer_id"), r.get("printer_name"), r.get("print_name"),
                 r.get("status"), to_utc(r.get("started_at")), to_utc(r.get("completed_at")),
                 r.get("duration_seconds"), r.get("filament_used_grams"), r.get("failure_reason"),
                 to_utc(r.get("created_at")), json.dumps(r, sort_keys=True), now, now))
        self._set_state("print_log_max_id", max_id)
        self.conn.execute("COMMIT")

    def _mark_deleted(self, present: set[int], report: CollectReport) -> None:
        held = {row[0] for row in self.conn.execute("SELECT id FROM raw_bambuddy_archives WHERE deleted = 0")}
        self._flag_deleted(sorted(held - present), report)

    def _flag_deleted(self, archive_ids: list[int], report: CollectReport) -> None:
        if not archive_ids:
            return
        now = utc_now()
        self.conn.executemany("UPDATE raw_bambuddy_archives SET deleted = 1, deleted_seen_at = ?, updated_at = ? "
                              "WHERE id = ? AND deleted = 0", [(now, now, i) for i in archive_ids])
        report.deleted += len(archive_ids)


def collect(client: BambuddyClient, db_path: str | Path, full_rescan: bool = False) -> CollectReport:
    collector = ArchiveCollector(client, db_path)
    try:
        return collector.collect(full_rescan=full_rescan)
    finally:
        collector.close()
