"""Real dbt runs against a temporary DATA_DIR (raw layer created from ingestion/raw_schema.py)."""

import json
import os
from datetime import datetime, timezone
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ingestion.raw_schema import connect

REPO = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).with_name("dbt"))


def dbt(data_dir: Path, *args: str, vars: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [DBT, *args, "--project-dir", str(REPO / "transformation"), "--profiles-dir", str(REPO / "transformation"),
           "--target-path", str(data_dir / "target"), "--log-path", str(data_dir / "logs")]
    if vars:
        cmd += ["--vars", json.dumps(vars)]
    proc = subprocess.run(cmd, env={**os.environ, "DATA_DIR": str(data_dir)}, capture_output=True, text=True,
                          cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return proc


@pytest.fixture
def data_dir(tmp_path) -> Path:
    connect(tmp_path / "print_history.db").close()
    return tmp_path


def raw(data_dir: Path) -> sqlite3.Connection:
    return connect(data_dir / "print_history.db")


def warehouse(data_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(data_dir / "warehouse.db")
    conn.row_factory = sqlite3.Row
    return conn


def written_now() -> str:
    """Raw writers stamp updated_at with the time they write (incremental bronze relies on it)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def add_job(conn, serial="S1", key="100", name="Benchy", status="completed", started="2026-01-01T10:00:00.000000Z",
            ended="2026-01-01T11:00:00.000000Z", gcode_file="/sdcard/benchy.gcode.3mf"):
    conn.execute(
        """INSERT INTO raw_printer_jobs (printer_serial, printer_name, job_key, task_id, subtask_id, subtask_name,
               gcode_file, status, started_at, ended_at, progress_pct, created_at, updated_at)
           VALUES (?, 'printer', ?, ?, ?, ?, ?, ?, ?, ?, 100, ?, ?)
           ON CONFLICT(printer_serial, job_key) DO UPDATE SET status = excluded.status, ended_at = excluded.ended_at,
               subtask_name = excluded.subtask_name, updated_at = excluded.updated_at""",
        (serial, key, key, key, name, gcode_file, status, started, ended, written_now(), written_now()))


def add_archive(conn, archive_id, *, printer_id=1, name="Benchy", filename="benchy.gcode.3mf", content_hash="h",
                status="completed", completed="2026-01-01T11:00:00", runs=()):
    now = written_now()
    conn.execute("INSERT OR IGNORE INTO raw_bambuddy_printers (id, name, serial_number, model, raw_json, first_seen_at,"
                 " updated_at) VALUES (?, 'X1C', 'S1', 'X1C', '{}', ?, ?)", (printer_id, now, now))
    conn.execute(
        """INSERT INTO raw_bambuddy_archives (id, printer_id, filename, content_hash, print_name, status, started_at,
               completed_at, print_time_seconds, filament_used_grams, quantity, thumbnail_path, created_at, raw_json,
               first_seen_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, '2026-01-01T10:00:00', ?, 3600, 12.5, 1, 'thumb.png', '2026-01-01T09:00:00',
                   '{}', ?, ?)""",
        (archive_id, printer_id, filename, content_hash, name, status, completed, now, now))
    for run_id, run_status, run_completed in runs:
        conn.execute(
            """INSERT INTO raw_bambuddy_print_runs (id, archive_id, printer_id, printer_name, print_name, status,
                   started_at, completed_at, duration_seconds, filament_used_grams, created_at, raw_json,
                   first_seen_at, updated_at)
               VALUES (?, ?, ?, 'X1C', ?, ?, '2026-01-01T10:00:00', ?, 3600, 12.0, ?, '{}', ?, ?)""",
            (run_id, archive_id, printer_id, name, run_status, run_completed, run_completed, now, now))
