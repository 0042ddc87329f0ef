"""End-to-end fixtures: a temporary DATA_DIR, the two stand-ins over real HTTP, and the real
Dagster job run in process (raw rows -> dbt -> push -> links)."""

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from dagster import DagsterInstance

from ingestion.raw_schema import connect
from orchestration.jobs import sync_run_config


def run_sync(archive_ids=None, force=False, max_archives=None, instance=None, raise_on_error=False,
             full_rescan=False):
    from orchestration.definitions import defs
    job = defs.resolve_job_def("sync_prints")
    config = sync_run_config(archive_ids, force, max_archives, full_rescan=full_rescan)
    return job.execute_in_process(run_config=config,
                                  instance=instance or DagsterInstance.ephemeral(), raise_on_error=raise_on_error)


def add_mqtt_job(data_dir: Path, key: str, name: str, status: str = "completed", serial: str = "SERIAL1",
                 ended: str = "2026-11-20T11:00:00.000000Z"):
    conn = connect(data_dir / "print_history.db")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # as the logger stamps rows
    conn.execute(
        """INSERT INTO raw_printer_jobs (printer_serial, printer_name, job_key, task_id, subtask_id, subtask_name,
               gcode_file, status, started_at, ended_at, progress_pct, created_at, updated_at)
           VALUES (?, 'X1C bay 1', ?, ?, ?, ?, '/data/Metadata/plate_1.gcode', ?, '2026-11-20T10:00:00.000000Z', ?,
                   100, ?, ?)""", (serial, key, key, key, name, status, ended, now, now))
    conn.close()


def ledger_rows(data_dir: Path) -> list[dict]:
    conn = sqlite3.connect(data_dir / "sync.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM sync_ledger ORDER BY print_id")]
    finally:
        conn.close()
