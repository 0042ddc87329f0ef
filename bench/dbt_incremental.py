"""`python -m bench.dbt_incremental`: cost of an incremental dbt build on a large raw layer.

Seeds N ended raw MQTT jobs (and a Bambuddy archive run for each), builds, adds 100 new ended
jobs and times the incremental build; also times a build on an almost empty database and a
full refresh. All builds run the real dbt project (dbt build, data tests included, unit tests
excluded) in the default MQTT mode. Prints one JSON line last:
{"raw_rows", "incremental_s", "empty_s", "full_refresh_s", "ratio_incremental_to_empty"}
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingestion.raw_schema import connect
from orchestration.dbt.project import TRANSFORMATION_DIR, dbt_executable

PARTS = ["Benchy", "Cable clip", "Vase", "Gear set", "Hinge box", "Keychain", "Spool holder", "Bracket"]


def seed(db: Path, start: int, count: int, age_s: float = 0) -> None:
    """Rows as their writers leave them: updated_at is when they were written (age_s ago)."""
    conn = connect(db)
    jobs, archives, runs = [], [], []
    written = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - age_s))
    for i in range(start, start + count):
        serial = f"SERIAL{i % 20:02d}"
        name = PARTS[i % len(PARTS)]
        minute = i  # one job a minute per farm: distinct, increasing times
        started = "2025-01-01T00:00:00Z"
        ended = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_735_689_600 + minute * 60)) + ".000000Z"
        status = "completed" if i % 10 else "failed"
        jobs.append((serial, "printer", str(10_000_000 + i), str(10_000_000 + i), name, f"{name}.3mf", status,
                     started, ended, 100, written, written))
        archives.append((i + 1, i % 20 + 1, f"{name}.gcode.3mf", f"hash{i % 50}", name, status, ended, ended, "{}",
                         written, written))
        runs.append((i + 1, i + 1, i % 20 + 1, name, status, ended, ended, 3600, 12.5, ended, "{}", written, written))
    conn.execute("BEGIN")
    conn.executemany(
        """INSERT INTO raw_printer_jobs (printer_serial, printer_name, job_key, subtask_id, subtask_name, gcode_file,
               status, started_at, ended_at, progress_pct, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)""",
        jobs)
    conn.executemany(
        """INSERT INTO raw_bambuddy_archives (id, printer_id, filename, content_hash, print_name, status, started_at,
               completed_at, raw_json, first_seen_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)""", archives)
    conn.executemany(
        """INSERT INTO raw_bambuddy_print_runs (id, archive_id, printer_id, print_name, status, started_at,
               completed_at, duration_seconds, filament_used_grams, created_at, raw_json, first_seen_at, updated_at)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""", runs)
    conn.execute("COMMIT")
    conn.close()


def count(data_dir: Path, table: str) -> int:
    conn = sqlite3.connect(data_dir / "warehouse.db")
    try:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def build(data_dir: Path, *extra: str) -> float:
    cmd = [dbt_executable(), "build", "--exclude", "resource_type:unit_test", "--project-dir", str(TRANSFORMATION_DIR),
           "--profiles-dir", str(TRANSFORMATION_DIR), "--target-path", str(data_dir / "target"),
           "--log-path", str(data_dir / "logs"), *extra]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ, "DATA_DIR": str(data_dir)}, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"dbt build failed:\n{proc.stdout[-3000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--new", type=int, default=100)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dbt-") as tmp:
        empty_dir, big_dir = Path(tmp) / "empty", Path(tmp) / "big"
        seed(empty_dir / "print_history.db", 0, 10)
        build(empty_dir)  # first build creates the tables
        seed(empty_dir / "print_history.db", 10, args.new)
        empty_s = build(empty_dir)  # an incremental build on an almost empty database: dbt's fixed cost

        # the history was logged yesterday and built then; 100 jobs end now
        seed(big_dir / "print_history.db", 0, args.rows, age_s=86_400)
        first_s = build(big_dir)
        seed(big_dir / "print_history.db", args.rows, args.new)
        incremental_s = build(big_dir)
        silver_rows = count(big_dir, "silver_print_jobs")
        bronze_rows = count(big_dir, "bronze_archive_runs")
        full_refresh_s = build(big_dir, "--full-refresh")
    result = {"raw_rows": args.rows, "incremental_s": round(incremental_s, 2), "empty_s": round(empty_s, 2),
              "full_refresh_s": round(full_refresh_s, 2), "first_build_s": round(first_s, 2),
              "silver_rows_after_incremental": silver_rows, "bronze_runs_after_incremental": bronze_rows,
              "ratio_incremental_to_empty": round(incremental_s / empty_s, 2)}
    print(json.dumps(result))
    # the incremental build must have taken in every new row, or its speed means nothing
    return 0 if silver_rows == bronze_rows == args.rows + args.new else 1


if __name__ == "__main__":
    sys.exit(main())
