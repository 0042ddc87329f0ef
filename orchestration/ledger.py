"""The sync ledger, DATA_DIR/sync.sqlite3 (the file name users of the original sidecar back up).

The durable work queue and the one source of truth for what is pending (DESIGN.md "The work
queue"). Storage only: which state follows which lives in orchestration/print_queue.py.
- sync_ledger: one row per print_id, its state (pending / synced / skipped / retrying /
  needs_attention) and why, with the InvenTree objects it got;
- sync_steps: each side effect of a print that is done (part, stock item, parameters, image,
  link), so a rerun goes on where the last one stopped;
- sync_requests: intent recorded by triggers (API, webhook, poll, new prints, startup), turned
  into runs by the scheduler sensor;
- sync_runs: one row per run of the push with its counts (for /sync/status while Dagster is down);
- sync_meta: watermarks, the daemon seen last, the last fatal error of each step.
The ledger is never the only guard against duplicates (stock items are looked up by batch before
one is created) and never causes anything to be deleted in InvenTree.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from orchestration.ledger_schema import migrate

SCHEMA_VERSION = 2
STATES = ("pending", "synced", "skipped", "retrying", "needs_attention")
OPEN_REQUEST = ("pending", "launched")
SCHEDULER_TICK_META = "scheduler_tick_at"  # written by the sync_scheduler sensor on every tick
PULL_META = "pull_at:"  # + run id: when that run's collector began reading Bambuddy

LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS sync_ledger (
    print_id          TEXT PRIMARY KEY,
    archive_id        INTEGER,
    run_no            INTEGER,
    batch             TEXT,
    ipn               TEXT,
    part_pk           INTEGER,
    stock_item_pk     INTEGER,
    state             TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in STATES)})),
    reason            TEXT,      -- why skipped / retrying / needs_attention
    fix               TEXT,      -- what makes a needs_attention print go on
    step              TEXT,      -- the step that failed or waits
    attempts          INTEGER NOT NULL DEFAULT 0,   -- consecutive failed attempts
    last_error        TEXT,
    next_attempt_at   TEXT,
    fingerprint       TEXT,      -- the print's data + settings when it was last decided
    first_attempt_at  TEXT NOT NULL,
    last_attempt_at   TEXT NOT NULL,
    synced_at         TEXT,
    link_state        TEXT,      -- written / kept_foreign / archive_gone / disabled
    link_url          TEXT,
    link_written_at   TEXT,
    dagster_run_id    TEXT
);
CREATE INDEX IF NOT EXISTS ix_sync_ledger_state ON sync_ledger(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS ix_sync_ledger_archive ON sync_ledger(archive_id);

CREATE TABLE IF NOT EXISTS sync_steps (
    print_id   TEXT NOT NULL,
    step       TEXT NOT NULL,
    done_at    TEXT NOT NULL,
    detail     TEXT,
    PRIMARY KEY (print_id, step)
);

CREATE TABLE IF NOT EXISTS sync_runs (
    run_id        TEXT PRIMARY KEY,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    status        TEXT NOT NULL,      -- running / pushed / success / failure
    created       INTEGER NOT NULL DEFAULT 0,
    reused        INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    links         INTEGER NOT NULL DEFAULT 0,
    request_ids   TEXT,
    details_json  TEXT,
    error         TEXT
);

CREATE TABLE IF NOT EXISTS sync_requests (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,      -- archive / backfill / webhook / poll / startup / finished_prints / retry
    archive_ids   TEXT,               -- JSON list or NULL for "everything pending"
    force         INTEGER NOT NULL DEFAULT 0,
    max_archives  INTEGER,
    created_at    TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending',  -- pending / launched / done / failed
    run_id        TEXT,
    launched_at   TEXT,
    launch_id     TEXT,
    not_before    TEXT,
    finished_at   TEXT,
    error         TEXT
);
CREATE INDEX IF NOT EXISTS ix_sync_requests_status ON sync_requests(status);

CREATE TABLE IF NOT EXISTS sync_meta (
    key        TEXT PRIMARY KEY,
    value      TEXT,
    updated_at TEXT NOT NULL
);
"""


def utc_now() -> str:
    return stamp(datetime.now(timezone.utc))


def stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp_in(seconds: float) -> str:
    return stamp(datetime.now(timezone.utc) + timedelta(seconds=seconds))


@dataclass(frozen=True)
class LedgerEntry:
    print_id: str
    state: str
    archive_id: int | None
    run_no: int | None
    batch: str | None
    ipn: str | None
    part_pk: int | None
    stock_item_pk: int | None
    attempts: int
    reason: str | None
    fix: str | None
    step: str | None
    last_error: str | None
    next_attempt_at: str | None
    fingerprint: str | None
    link_state: str | None
    link_url: str | None
    last_attempt_at: str
    synced_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


_ENTRY_FIELDS = [f.name for f in fields(LedgerEntry)]


class Ledger:
    """Small, synchronous access to sync.sqlite3. One short transaction per call."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            migrate(conn, LEDGER_DDL, SCHEMA_VERSION)

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

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # --- prints ------------------------------------------------------------------------
    def get(self, print_id: str) -> LedgerEntry | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM sync_ledger WHERE print_id = ?", (print_id,)).fetchone()
        return _entry(row) if row else None

    def entries(self, print_ids: list[str] | None = None) -> dict[str, LedgerEntry]:
        with self._connect() as conn:
            if print_ids is None:
                rows = conn.execute("SELECT * FROM sync_ledger").fetchall()
            else:
                rows = []
                for chunk in range(0, len(print_ids), 500):
                    ids = print_ids[chunk:chunk + 500]
                    rows += conn.execute(f"SELECT * FROM sync_ledger WHERE print_id IN ({','.join('?' * len(ids))})",
                                         ids).fetchall()
        return {r["print_id"]: _entry(r) for r in rows}

    def for_archive(self, archive_id: int) -> list[LedgerEntry]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM sync_ledger WHERE archive_id = ? ORDER BY run_no, print_id",
                                (archive_id,)).fetchall()
        return [_entry(r) for r in rows]

    def in_states(self, states: tuple[str, ...], *, due_by: str | None = None,
                  limit: int | None = None) -> list[LedgerEntry]:
        """Prints in these states; with due_by, retrying ones only when their next attempt is due."""
        where = f"state IN ({','.join('?' * len(states))})"
        args: list[Any] = list(states)
        if due_by is not None:
            where += " AND (state != 'retrying' OR next_attempt_at IS NULL OR next_attempt_at <= ?)"
            args.append(due_by)
        sql = f"SELECT * FROM sync_ledger WHERE {where} ORDER BY last_attempt_at, print_id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._connect() as conn:
            return [_entry(r) for r in conn.execute(sql, args).fetchall()]

    def upsert(self, print_id: str, *, state: str, **values: Any) -> None:
        """Insert the print in `state`, or set the given columns (the state machine decides which)."""
        now = utc_now()
        values = {"state": state, "last_attempt_at": now, **values}
        cols = list(values)
        with self._connect() as conn:
            conn.execute(
                f"""INSERT INTO sync_ledger (print_id, first_attempt_at, {", ".join(cols)})
                    VALUES (?, ?, {", ".join("?" * len(cols))})
                    ON CONFLICT(print_id) DO UPDATE SET {", ".join(f"{c} = excluded.{c}" for c in cols)}""",
                (print_id, now, *values.values()),
            )

    def update(self, print_id: str, **values: Any) -> None:
        """Change some columns of a print the ledger already holds."""
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
            rows = conn.execute(f"SELECT * FROM sync_ledger WHERE state = ? ORDER BY {order} DESC LIMIT ?",
                                (state, limit)).fetchall()
        return [_entry(r) for r in rows]

    def next_due(self) -> str | None:
        """The earliest next attempt of a retrying print (the scheduler wakes for it)."""
        with self._connect() as conn:
            row = conn.execute("SELECT MIN(next_attempt_at) FROM sync_ledger WHERE state = 'retrying'").fetchone()
        return row[0]

    # --- steps -------------------------------------------------------------------------
    def steps_done(self, print_id: str) -> dict[str, dict]:
        with self._connect() as conn:
            rows = conn.execute("SELECT step, detail FROM sync_steps WHERE print_id = ?", (print_id,)).fetchall()
        return {r["step"]: json.loads(r["detail"] or "{}") for r in rows}

    def step_done(self, print_id: str, step: str, detail: dict | None = None) -> None:
        with self._connect() as conn:
            conn.execute("""INSERT INTO sync_steps (print_id, step, done_at, detail) VALUES (?, ?, ?, ?)
                            ON CONFLICT(print_id, step) DO UPDATE SET done_at = excluded.done_at,
                                                                      detail = excluded.detail""",
                         (print_id, step, utc_now(), json.dumps(detail or {})))

    # --- meta --------------------------------------------------------------------------
    def meta(self, key: str, default: Any = None) -> Any:
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM sync_meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row and row[0] is not None else default

    def set_meta(self, key: str, value: Any, conn: sqlite3.Connection | None = None) -> None:
        sql = ("INSERT INTO sync_meta (key, value, updated_at) VALUES (?, ?, ?) "
               "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")
        args = (key, json.dumps(value), utc_now())
        if conn is not None:
            conn.execute(sql, args)
            return
        with self._connect() as own:
            own.execute(sql, args)

    def delete_meta(self, key: str) -> None:
        """For per-run keys: a cleared one (set_meta None) would stay as a row that metas() scans."""
        with self._connect() as conn:
            conn.execute("DELETE FROM sync_meta WHERE key = ?", (key,))

    def metas(self, prefix: str) -> dict[str, Any]:
        with self._connect() as conn:
            rows = conn.execute("SELECT key, value FROM sync_meta WHERE key LIKE ?", (prefix + "%",)).fetchall()
        values = {r["key"][len(prefix):]: json.loads(r["value"]) for r in rows if r["value"] is not None}
        return {k: v for k, v in values.items() if v is not None}  # a cleared value is stored as null

    # --- runs --------------------------------------------------------------------------
    def start_run(self, run_id: str, request_ids: list[int] | None = None) -> None:
        now = utc_now()
        with self._connect() as conn:
            conn.execute(
                """INSERT INTO sync_runs (run_id, started_at, status, request_ids) VALUES (?, ?, 'running', ?)
                   ON CONFLICT(run_id) DO UPDATE SET status = 'running'""",
                (run_id, now, json.dumps(request_ids or [])))
            conn.executemany("UPDATE sync_requests SET run_id = ? WHERE id = ?",
                             [(run_id, rid) for rid in request_ids or []])

    def finish_run(self, run_id: str, *, status: str, counts: dict[str, int], details: list[dict],
                   error: str | None = None) -> None:
        with self._connect() as conn:
            conn.execute(
                """UPDATE sync_runs SET finished_at = ?, status = ?, created = ?, reused = ?, skipped = ?,
                       failed = ?, links = ?, details_json = ?, error = ? WHERE run_id = ?""",
                (utc_now(), status, counts.get("created", 0), counts.get("reused", 0), counts.get("skipped", 0),
                 counts.get("failed", 0), counts.get("links", 0), json.dumps(details), error, run_id))

    def complete_run(self, run_id: str, *, status: str, links: int = 0, error: str | None = None,
                     answer_requests: bool = True) -> None:
        """The last step of a sync run settles its status and answers the requests it served."""
        now = utc_now()
        with self._connect() as conn:
            conn.execute("UPDATE sync_runs SET status = ?, links = ?, finished_at = ?, error = COALESCE(?, error) "
                         "WHERE run_id = ?", (status, links, now, error, run_id))
            if not answer_requests:
                return
            conn.execute("UPDATE sync_requests SET status = ?, finished_at = ?, error = ? "
                         "WHERE run_id = ? AND status IN ('pending', 'launched')",
                         ("done" if status == "success" else "failed", now, error, run_id))
            if status == "success":  # the scheduler's backoff after failed runs starts over
                self.set_meta("failed_runs_in_row", 0, conn=conn)

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
                    max_archives: int | None = None, not_before: str | None = None) -> int:
        with self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO sync_requests (kind, archive_ids, force, max_archives, created_at, not_before) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (kind, json.dumps(archive_ids) if archive_ids is not None else None, int(force), max_archives,
                 utc_now(), not_before))
            return int(cur.lastrowid)

    def requests(self, statuses: tuple[str, ...] = OPEN_REQUEST) -> list[dict]:
        with self._connect() as conn:
            rows = conn.execute(f"SELECT * FROM sync_requests WHERE status IN ({','.join('?' * len(statuses))}) "
                                "ORDER BY id", statuses).fetchall()
        return [_request(r) for r in rows]

    def request(self, request_id: int) -> dict | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM sync_requests WHERE id = ?", (request_id,)).fetchone()
        return _request(row) if row else None

    def claim_requests(self, ids: list[int], launch_id: str) -> None:
        now = utc_now()
        with self._connect() as conn:
            conn.executemany("UPDATE sync_requests SET status = 'launched', launch_id = ?, launched_at = ? "
                             "WHERE id = ? AND status = 'pending'", [(launch_id, now, i) for i in ids])

    def answer_covered(self, ids: list[int], run_id: str) -> None:
        """Pending requests that a finished run served already (it read the sources after they
        were made): done, with that run's id, without a run of their own."""
        now = utc_now()
        with self._connect() as conn:
            conn.executemany("UPDATE sync_requests SET status = 'done', run_id = ?, finished_at = ? "
                             "WHERE id = ? AND status = 'pending'", [(run_id, now, i) for i in ids])

    def update_requests(self, launch: str, /, **values: Any) -> None:
        """Set columns of the launched requests of one launch."""
        cols = ", ".join(f"{k} = ?" for k in values)
        with self._connect() as conn:
            conn.execute(f"UPDATE sync_requests SET {cols} WHERE launch_id = ? AND status = 'launched'",
                         (*values.values(), launch))

    def reachable(self) -> bool:
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1 FROM sync_ledger LIMIT 1").fetchall()
            return True
        except sqlite3.Error:
            return False


def _entry(row: sqlite3.Row) -> LedgerEntry:
    return LedgerEntry(**{k: row[k] for k in _ENTRY_FIELDS})


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
