"""Read the silver tables of the warehouse (built by dbt) for the InvenTree push."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SilverPrint:
    """One row of silver_print_jobs: one ended print run."""

    print_id: str
    source: str
    printer_serial: str | None
    printer_name: str | None
    bambuddy_archive_id: int | None
    run_no: int | None
    status: str
    is_success: bool
    name: str | None
    filename: str | None
    part_key: str
    ipn: str
    description: str
    weight_g: float | None
    print_time_s: int | None
    quantity: int | None
    started_at: str | None
    finished_at: str | None
    batch: str
    fail_reason: str | None

    @property
    def part_name(self) -> str:
        # InvenTree caps Part.name at 100 characters (CONTRACT.md "Limits").
        return (self.name or self.filename or self.part_key)[:100]


_COLUMNS = [f for f in SilverPrint.__dataclass_fields__]


def read_silver_prints(warehouse_db: str | Path) -> list[SilverPrint]:
    """All silver prints, oldest finish first (the push order). Empty when dbt has not built yet."""
    path = Path(warehouse_db)
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        try:
            rows = conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM silver_print_jobs ORDER BY finished_at, print_id"
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
    finally:
        conn.close()
    out = []
    for row in rows:
        values = dict(zip(_COLUMNS, row))
        values["is_success"] = bool(values["is_success"])
        out.append(SilverPrint(**values))
    return out
