"""Migrations of the sync ledger (DATA_DIR/sync.sqlite3): users back the file up and bring it along
to a new release, so it is brought up to date in place, once, in one transaction."""

from __future__ import annotations

import sqlite3


def migrate(conn: sqlite3.Connection, ddl: str, version_now: int) -> None:
    """Schema 1 (wave 1: states pending/synced/skipped/failed, fewer columns) -> 2, in place."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= version_now:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        old = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='sync_ledger'").fetchone()
        if old:
            conn.execute("ALTER TABLE sync_ledger RENAME TO sync_ledger_v1")
            conn.execute("DROP INDEX IF EXISTS ix_sync_ledger_state")
            conn.execute("DROP INDEX IF EXISTS ix_sync_ledger_archive")
        has_requests = conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='sync_requests'").fetchone()
        for stmt in ddl.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        if has_requests:  # wave-1 requests: add the new columns; launched ones were served or lost
            have = {r[1] for r in conn.execute("PRAGMA table_info(sync_requests)")}
            for col in ("launch_id", "not_before", "finished_at", "error"):
                if col not in have:
                    conn.execute(f"ALTER TABLE sync_requests ADD COLUMN {col} TEXT")
            conn.execute("UPDATE sync_requests SET status = 'done' WHERE status = 'launched'")
            have_runs = {r[1] for r in conn.execute("PRAGMA table_info(sync_runs)")}
            if "error" not in have_runs:
                conn.execute("ALTER TABLE sync_runs ADD COLUMN error TEXT")
        if old:
            cols = [r[1] for r in conn.execute("PRAGMA table_info(sync_ledger_v1)")]
            keep = [c for c in cols if c not in ("state",)]
            conn.execute(f"""INSERT INTO sync_ledger ({", ".join(keep)}, state)
                             SELECT {", ".join(keep)},
                                    CASE state WHEN 'failed' THEN 'retrying' ELSE state END
                             FROM sync_ledger_v1""")
            conn.execute("DROP TABLE sync_ledger_v1")
        conn.execute(f"PRAGMA user_version = {version_now}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
