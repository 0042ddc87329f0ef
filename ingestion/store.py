"""SQLite access of the logger: batched writes of job rows, transitions, quarantine, heartbeat."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .job import IDENTITY_FIELDS, LIVE_STATUSES, Job, job_key, restore_job
from .raw_schema import connect

QUARANTINE_PAYLOAD_CHARS = 16_384
# job_key() needs a start time only for minted LAN keys; known_job only asks whether one is minted.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_JOB_COLUMNS = ["printer_serial", "printer_name", "job_key", *IDENTITY_FIELDS, "print_type", "status",
                "gcode_state", "started_at", "ended_at", "progress_pct", "layer_num", "total_layers",
                "print_error", "error_codes", "fail_reason", "filament_type", "filament_color", "tray_id",
                "remaining_min", "last_state_json", "updated_at"]
_MUTABLE = [c for c in _JOB_COLUMNS if c not in ("printer_serial", "job_key", "started_at")]
# An ended row never changes again: a re-delivered FINISH cannot move ended_at.
UPSERT_JOB = f"""
INSERT INTO raw_printer_jobs ({", ".join(_JOB_COLUMNS)}, created_at)
VALUES ({", ".join("?" for _ in _JOB_COLUMNS)}, ?)
ON CONFLICT(printer_serial, job_key) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _MUTABLE)}
WHERE raw_printer_jobs.ended_at IS NULL
"""


class JobStore:
    """Owned by the logger's processing thread (one connection, one writer)."""

    def __init__(self, db_path: str | Path):
        self.path = Path(db_path)
        self.conn = connect(self.path)

    def close(self) -> None:
        self.conn.close()

    def open_job(self, serial: str) -> Job | None:
        """The job a previous logger run left open on this printer, if any."""
        self.conn.row_factory = sqlite3.Row
        try:
            row = self.conn.execute(
                f"SELECT * FROM raw_printer_jobs WHERE printer_serial = ? AND status IN "
                f"({', '.join('?' for _ in LIVE_STATUSES)}) ORDER BY started_at DESC LIMIT 1",
                (serial, *LIVE_STATUSES)).fetchone()
        finally:
            self.conn.row_factory = None
        return restore_job(dict(row)) if row else None

    def known_job(self, serial: str, identity: dict[str, str], status: str) -> bool:
        """Is this sticky end state one of a job we already hold? Ids decide when the printer
        gave them; a LAN/SD job is known when it is this printer's latest job."""
        key = job_key(identity, _EPOCH)
        if not key.startswith("lan:"):
            found = self.conn.execute("SELECT 1 FROM raw_printer_jobs WHERE printer_serial = ? AND job_key = ?",
                                      (serial, key)).fetchone()
            return found is not None
        latest = self.conn.execute(
            "SELECT subtask_name, gcode_file, status FROM raw_printer_jobs WHERE printer_serial = ? "
            "ORDER BY started_at DESC, id DESC LIMIT 1", (serial,)).fetchone()
        if latest is None:
            return False
        name, gcode_file, latest_status = latest
        same_name = (name or "") == identity.get("subtask_name", "")
        same_file = not identity.get("gcode_file") or not gcode_file or gcode_file == identity.get("gcode_file")
        return same_name and same_file and latest_status not in LIVE_STATUSES

    def key_taken(self, serial: str, key: str) -> bool:
        """Does an ended job already hold this key? (JobTracker gives a reused id a new key.)"""
        return self.conn.execute("SELECT 1 FROM raw_printer_jobs WHERE printer_serial = ? AND job_key = ? "
                                 "AND ended_at IS NOT NULL", (serial, key)).fetchone() is not None

    def write_batch(self, jobs: Iterable[Job], transitions: list[tuple], quarantine: list[tuple],
                    heartbeats: list[tuple], now: str) -> None:
        """One transaction for everything a batch produced."""
        job_rows = []
        for job in jobs:
            row = job.row(now)
            job_rows.append([row[c] for c in _JOB_COLUMNS] + [now])
        with_tx(self.conn, lambda c: (
            c.executemany(UPSERT_JOB, job_rows) if job_rows else None,
            c.executemany("INSERT INTO raw_job_transitions (printer_serial, job_key, from_status, to_status, at) "
                          "VALUES (?, ?, ?, ?, ?)", transitions) if transitions else None,
            c.executemany("INSERT INTO raw_mqtt_quarantine (printer_serial, topic, received_at, reason, payload) "
                          "VALUES (?, ?, ?, ?, ?)", quarantine) if quarantine else None,
            c.executemany(
                """INSERT INTO raw_logger_heartbeat (printer_serial, printer_name, connected, gcode_state,
                       last_message_at, heartbeat_at, messages, quarantined) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(printer_serial) DO UPDATE SET printer_name = excluded.printer_name,
                       connected = excluded.connected, gcode_state = excluded.gcode_state,
                       last_message_at = excluded.last_message_at, heartbeat_at = excluded.heartbeat_at,
                       messages = excluded.messages, quarantined = excluded.quarantined""",
                heartbeats) if heartbeats else None,
        ))


def with_tx(conn: sqlite3.Connection, work) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def truncate_payload(payload: bytes) -> str:
    text = payload[:QUARANTINE_PAYLOAD_CHARS * 4].decode("utf-8", errors="replace")
    return text[:QUARANTINE_PAYLOAD_CHARS]
