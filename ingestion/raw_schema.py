"""The raw layer of DATA_DIR/print_history.db: every table, in one place.

Writers own their tables (the logger writes raw_printer_*/raw_job_transitions/
raw_mqtt_quarantine/raw_logger_heartbeat, the Bambuddy collector writes
raw_bambuddy_*); dbt only reads them. Times are UTC ISO-8601 strings
("2026-11-24T10:48:00Z") so SQLite, dbt and Python agree on ordering.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000

# Terminal MQTT job statuses, in the order the dbt models expect them.
ENDED_JOB_STATUSES = ("completed", "failed", "cancelled", "aborted")
# Terminal Bambuddy archive / print-log statuses (CONTRACT.md "Finished").
ENDED_ARCHIVE_STATUSES = ("completed", "failed", "aborted", "cancelled", "stopped")

RAW_DDL = """
CREATE TABLE IF NOT EXISTS raw_printer_jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    printer_serial   TEXT NOT NULL,
    printer_name     TEXT,
    job_key          TEXT NOT NULL,      -- DESIGN.md "MQTT job key"
    task_id          TEXT,
    subtask_id       TEXT,
    project_id       TEXT,
    profile_id       TEXT,
    subtask_name     TEXT,
    gcode_file       TEXT,
    print_type       TEXT,               -- cloud / local / system / ''
    status           TEXT NOT NULL,      -- preparing|running|paused|completed|failed|cancelled|aborted
    gcode_state      TEXT,               -- last gcode_state seen for this job
    started_at       TEXT NOT NULL,      -- UTC ISO-8601
    ended_at         TEXT,               -- UTC ISO-8601, set once when the job ends
    progress_pct     INTEGER,
    layer_num        INTEGER,
    total_layers     INTEGER,
    print_error      INTEGER,            -- latched non-zero print_error while live
    error_codes      TEXT,               -- JSON list of error/HMS codes seen
    fail_reason      TEXT,
    filament_type    TEXT,
    filament_color   TEXT,
    tray_id          TEXT,
    remaining_min    INTEGER,
    last_state_json  TEXT,               -- last merged `print` object
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (printer_serial, job_key)
);
CREATE INDEX IF NOT EXISTS ix_raw_printer_jobs_updated ON raw_printer_jobs(updated_at);
CREATE INDEX IF NOT EXISTS ix_raw_printer_jobs_ended ON raw_printer_jobs(ended_at);

CREATE TABLE IF NOT EXISTS raw_job_transitions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    printer_serial   TEXT NOT NULL,
    job_key          TEXT NOT NULL,
    from_status      TEXT,
    to_status        TEXT NOT NULL,
    at               TEXT NOT NULL       -- UTC ISO-8601
);
CREATE INDEX IF NOT EXISTS ix_raw_job_transitions_job ON raw_job_transitions(printer_serial, job_key);

CREATE TABLE IF NOT EXISTS raw_mqtt_quarantine (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    printer_serial   TEXT,
    topic            TEXT,
    received_at      TEXT NOT NULL,
    reason           TEXT NOT NULL,
    payload          TEXT                -- truncated
);

CREATE TABLE IF NOT EXISTS raw_logger_heartbeat (
    printer_serial   TEXT PRIMARY KEY,
    printer_name     TEXT,
    connected        INTEGER NOT NULL DEFAULT 0,
    gcode_state      TEXT,
    last_message_at  TEXT,
    heartbeat_at     TEXT NOT NULL,
    messages         INTEGER NOT NULL DEFAULT 0,
    quarantined      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS raw_bambuddy_printers (
    id               INTEGER PRIMARY KEY,
    name             TEXT,
    serial_number    TEXT,
    model            TEXT,
    raw_json         TEXT NOT NULL,
    first_seen_at    TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS raw_bambuddy_archives (
    id                   INTEGER PRIMARY KEY,
    printer_id           INTEGER,
    filename             TEXT,
    content_hash         TEXT,
    print_name           TEXT,
    status               TEXT,
    started_at           TEXT,           -- UTC ISO-8601 (Bambuddy sends naive UTC)
    completed_at         TEXT,
    print_time_seconds   INTEGER,
    actual_time_seconds  INTEGER,
    filament_used_grams  REAL,
    filament_type        TEXT,
    filament_color       TEXT,
    quantity             INTEGER,
    thumbnail_path       TEXT,
    external_url         TEXT,
    failure_reason       TEXT,
    run_count            INTEGER,
    created_at           TEXT,
    deleted              INTEGER NOT NULL DEFAULT 0,  -- 1 once the archive vanished (soft delete)
    deleted_seen_at      TEXT,
    raw_json             TEXT NOT NULL,
    first_seen_at        TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_raw_bambuddy_archives_updated ON raw_bambuddy_archives(updated_at);

CREATE TABLE IF NOT EXISTS raw_bambuddy_print_runs (
    id                   INTEGER PRIMARY KEY,   -- print-log entry id
    archive_id           INTEGER,
    printer_id           INTEGER,
    printer_name         TEXT,
    print_name           TEXT,
    status               TEXT,
    started_at           TEXT,
    completed_at         TEXT,
    duration_seconds     INTEGER,
    filament_used_grams  REAL,
    failure_reason       TEXT,
    created_at           TEXT,
    raw_json             TEXT NOT NULL,
    first_seen_at        TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_raw_bambuddy_print_runs_archive ON raw_bambuddy_print_runs(archive_id);
CREATE INDEX IF NOT EXISTS ix_raw_bambuddy_print_runs_updated ON raw_bambuddy_print_runs(updated_at);

-- The collector's cursor (print_log_max_id, backfilled): kept beside the rows it describes,
-- so a restored print_history.db and its cursor never disagree.
CREATE TABLE IF NOT EXISTS raw_bambuddy_sync_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
"""


def connect(path: str | Path, *, create: bool = True) -> sqlite3.Connection:
    """Open the raw database in WAL mode with a busy timeout (readers never block the logger)."""
    path = Path(path)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    # check_same_thread off: the logger opens it before its writer thread takes it over.
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    if create:
        conn.executescript(RAW_DDL)
    return conn


def ensure_schema(path: str | Path) -> None:
    conn = connect(path)
    conn.close()
