"""The sync ledger, DATA_DIR/sync.sqlite3 (the file name users of the original sidecar back up).

One row per print_id with what the push did. It makes reruns cheap; it is never the only
guard against duplicates (the push looks the stock item up by batch before creating it),
and it never causes anything to be deleted in InvenTree.

It also holds two small operational tables:
- sync_runs: one row per Dagster run of the push, with its counts (for /sync/status even
  while Dagster is down);
- sync_requests: sync requests written by the HTTP API / webhook and turned into runs by
  `sync_requests_sensor`.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS sync_ledger (
    print_id          TEXT PRIMARY KEY,
    archive_id        INTEGER,
    run_no            INTEGER,
    batch             TEXT,
    ipn               TEXT,
    part_pk           INTEGER,
    stock_item_pk     INTEGER,
    state             TEXT NOT NULL CHECK (state IN ('pending', 'synced', 'skipped', 'failed')),
    reason            TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    first_attempt_at  TEXT NOT NULL,
    last_attempt_at   TEXT NOT NULL,
    synced_at         TEXT,
    link_state        TEXT,      -- written / kept_foreign / disabled / failed / not_applicable
    link_url          TEXT,
    link_written_at   TEXT,
    dagster_run_id    TEXT
);
CREATE INDEX IF NOT EXISTS ix_sync_ledger_state ON sync_ledger(state);
CREATE INDEX IF NOT EXISTS ix_sync_ledger_archive ON sync_ledger(archive_id);

CREATE TABLE IF NOT EXISTS sync_runs (
    run_id        TEXT PRIMARY KEY,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    status        TEXT NOT NULL,      -- running / success / failure
    created       INTEGER NOT NULL DEFAULT 0,
    reused        INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    links         INTEGER NOT NULL DEFAULT 0,
    request_ids   TEXT,               -- JSON list of sync_requests ids served by the run
    details_json  TEXT                -- per-print outcomes (print_id, outcome, part, stock item, error)
);

CREATE TABLE IF NOT EXISTS sync_requests (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,      -- archive / backfill / webhook / poll / startup
    archive_ids   TEXT,               -- JSON list or NULL for "everything new"
    force         INTEGER NOT NULL DEFAULT 0,
    max_archives  INTEGER,
    created_at    TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending',  -- pending / launched
    run_id        TEXT,
    launched_at   TEXT
);
CREATE INDEX IF NOT EXISTS ix_sync_requests_status ON sync_requests(status);
"""

STATES = ("pending", "synced", "skipped", "failed")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LedgerEntry:
    print_id: str
    state: str
    archive_id: int | None
    batch: str | None
    ipn: str | None
    part_pk: int | None
    stock_item_pk: int | None
    attempts: int
    reason: str | None
    last_error: str | None
    link_state: str | None
    link_url: str | None
    last_attempt_at: str
    synced_at: str | None


class Ledger:
    """Small, synchronous access to sync.sqlite3. One short transaction per write."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(LEDGER_DDL)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA journal_mode=WAL")
            yield conn
        finally:
            conn.close()

    # --- per print -------------------------------------------------------------------
    def get(self, print_id: str) -> LedgerEntry | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM sync_ledger WHERE print_id = ?", (print_id,)).fetchone()
        return _entry(row) if row else None

    def entries(self, print_ids: list[str] | None = None) -> dict[str, LedgerEntry]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM sync_ledger").fetchall()
        wanted = None if print_ids is None else set(print_ids)
        return {r["print_id"]: _entry(r) for r in rows if wanted is None or r["print_id"] in wanted}

    def record_attempt(self, print_id: str, *, archive_id: int | None, run_no: int | None,
                       batch: str | None, ipn: str | None, run_id: str | None) -> None:
        """Mark the start of an attempt (state pending unless it already synced)."""
        now = utc_now()
        with self._connect() as conn:
            conn.execute(
                """INSERT INTO sync_ledger (print_id, archive_id, run_no, batch, ipn, state, attempts,
                                            first_attempt_at, last_attempt_at, dagster_run_id)
                   VALUES (?, ?, ?, ?, ?, 'pending', 1, ?, ?, ?)
                   ON CONFLICT(print_id) DO UPDATE SET
                       attempts = attempts + 1, last_attempt_at = excluded.last_attempt_at,
                       batch = excluded.batch, ipn = excluded.ipn,
                       dagster_run_id = excluded.dagster_run_id,
                       state = CASE WHEN state = 'synced' THEN 'synced' ELSE 'pending' END""",
                (print_id, archive_id, run_no, batch, ipn, now, now, run_id),
            )

    def record_part(self, print_id: str, part_pk: int) -> None:
        self._update(print_id, part_pk=part_pk)

    def record_stock_item(self, print_id: str, stock_item_pk: int) -> None:
        # Written right after the stock item exists, before parameters and image, so a crash
        # later in the print's sync still knows the item (the batch lookup is the backstop).
        self._update(print_id, stock_item_pk=stock_item_pk)

    def mark_synced(self, print_id: str, *, part_pk: int, stock_item_pk: int) -> None:
        now = utc_now()
        self._update(print_id, state="synced", part_pk=part_pk, stock_item_pk=stock_item_pk,
                     last_error=None, reason=None, synced_at=now)

    def mark_skipped(self, print_id: str, reason: str, *, archive_id: int | None = None,
                     batch: str | None = None, run_id: str | None = None) -> None:
        now = utc_now()
        with self._connect() as conn:
            conn.execute(
                """INSERT INTO sync_ledger (print_id, archive_id, batch, state, reason, attempts,
                                            first_attempt_at, last_attempt_at, dagster_run_id)
                   VALUES (?, ?, ?, 'skipped', ?, 0, ?, ?, ?)
                   ON CONFLICT(print_id) DO UPDATE SET
                       state = CASE WHEN state = 'synced' THEN 'synced' ELSE 'skipped' END,
                       reason = excluded.reason, last_attempt_at = excluded.last_attempt_at""",
                (print_id, archive_id, batch, reason, now, now, run_id),
            )

    def mark_failed(self, print_id: str, error: str) -> None:
        with self._connect() as conn:
            conn.execute(
                """UPDATE sync_ledger SET last_error = ?, last_attempt_at = ?,
                       state = CASE WHEN state = 'synced' THEN 'synced' ELSE 'failed' END
                   WHERE print_id = ?""",
                (error, utc_now(), print_id),
            )

    def record_link(self, print_id: str, link_state: str, url: str | None, error: str | None = None) -> None:
        written_at = utc_now() if link_state == "written" else None
        with self._connect() as conn:
            conn.execute(
                """UPDATE sync_ledger SET link_state = ?, link_url = ?,
                       link_written_at = COALESCE(?, link_written_at),
                       last_error = COALESCE(?, last_error)
                   WHERE print_id = ?""",
                (link_state, url, written_at, error, print_id),
            )

    def _update(self, print_id: str, **values: object) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._connect() as conn:
            conn.execute(f"UPDATE sync_ledger SET {cols} WHERE print_id = ?", (*values.values(), print_id))

    def counts(self) -> dict[str, int]:
        with self._connect() as conn:
            rows = conn.execute("SELECT state, COUNT(*) AS n FROM sync_ledger GROUP BY state").fetchall()
        out = {s: 0 for s in STATES}
        out.update({r["state"]: r["n"] for r in rows})
        return out

    def recent(self, state: str, limit: int = 10) -> list[LedgerEntry]:
        order = "synced_at" if state == "synced" else "last_attempt_at"
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT * FROM sync_ledger WHERE state = ? ORDER BY {order} DESC LIMIT ?", (state, limit)
            ).fetchall()
        return [_entry(r) for r in rows]

    # --- runs --------------------------------------------------------------------------
    def start_run(self, run_id: str, request_ids: list[int] | None = None) -> None:
        """Record a push run, and tie the sync requests it serves to it (the API waits on that)."""
        now = utc_now()
        with self._connect() as conn:
            conn.execute(
                """INSERT INTO sync_runs (run_id, started_at, status, request_ids) VALUES (?, ?, 'running', ?)
                   ON CONFLICT(run_id) DO UPDATE SET status = 'running'""",
                (run_id, now, json.dumps(request_ids or [])),
            )
            conn.executemany(
                "UPDATE sync_requests SET status = 'launched', run_id = ?, launched_at = COALESCE(launched_at, ?) "
                "WHERE id = ?", [(run_id, now, rid) for rid in request_ids or []])

    def run_for_request(self, request_id: int) -> dict | None:
        request = self.request(request_id)
        if request is None or not request.get("run_id"):
            return None
        return self.run(request["run_id"])

    def pending_request(self, kind: str) -> dict | None:
        """A request of this kind still waiting to be launched (webhook bursts reuse it)."""
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM sync_requests WHERE kind = ? AND status = 'pending' "
                               "ORDER BY id DESC LIMIT 1", (kind,)).fetchone()
        return _request(row) if row else None

    def finish_run(self, run_id: str, *, status: str, counts: dict[str, int], details: list[dict]) -> None:
        with self._connect() as conn:
            conn.execute(
                """UPDATE sync_runs SET finished_at = ?, status = ?, created = ?, reused = ?, skipped = ?,
                       failed = ?, links = ?, details_json = ? WHERE run_id = ?""",
                (utc_now(), status, counts.get("created", 0), counts.get("reused", 0),
                 counts.get("skipped", 0), counts.get("failed", 0), counts.get("links", 0),
                 json.dumps(details), run_id),
            )

    def complete_run(self, run_id: str, *, status: str, links: int = 0) -> None:
        """The last step of a sync run (bambuddy_links) settles its status."""
        with self._connect() as conn:
            conn.execute("UPDATE sync_runs SET status = ?, links = ?, finished_at = ? WHERE run_id = ?",
                         (status, links, utc_now(), run_id))

    def run(self, run_id: str) -> dict | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM sync_runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def last_run(self) -> dict | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM sync_runs ORDER BY started_at DESC LIMIT 1").fetchone()
        return _run(row) if row else None

    # --- requests ----------------------------------------------------------------------
    def add_request(self, kind: str, *, archive_ids: list[int] | None = None, force: bool = False,
                    max_archives: int | None = None) -> int:
        with self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO sync_requests (kind, archive_ids, force, max_archives, created_at) VALUES (?, ?, ?, ?, ?)",
                (kind, json.dumps(archive_ids) if archive_ids is not None else None, int(force),
                 max_archives, utc_now()),
            )
            return int(cur.lastrowid)

    def pending_requests(self) -> list[dict]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM sync_requests WHERE status = 'pending' ORDER BY id").fetchall()
        return [_request(r) for r in rows]

    def request(self, request_id: int) -> dict | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM sync_requests WHERE id = ?", (request_id,)).fetchone()
        return _request(row) if row else None

    def reachable(self) -> bool:
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1 FROM sync_ledger LIMIT 1").fetchall()
            return True
        except sqlite3.Error:
            return False


def _entry(row: sqlite3.Row) -> LedgerEntry:
    return LedgerEntry(
        print_id=row["print_id"], state=row["state"], archive_id=row["archive_id"], batch=row["batch"],
        ipn=row["ipn"], part_pk=row["part_pk"], stock_item_pk=row["stock_item_pk"], attempts=row["attempts"],
        reason=row["reason"], last_error=row["last_error"], link_state=row["link_state"],
        link_url=row["link_url"], last_attempt_at=row["last_attempt_at"], synced_at=row["synced_at"],
    )


def _run(row: sqlite3.Row) -> dict:
    out = dict(row)
    out["request_ids"] = json.loads(out["request_ids"] or "[]")
    out["details"] = json.loads(out.pop("details_json") or "[]")
    return out


def _request(row: sqlite3.Row) -> dict:
    out = dict(row)
    out["archive_ids"] = json.loads(out["archive_ids"]) if out["archive_ids"] else None
    out["force"] = bool(out["force"])
    return out
