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


@dataclass(frozen=True)
class PartFacts:
    """One row of silver_parts: what the part's parameters say (stable aggregates over its prints)."""

    part_key: str
    weight_g: float | None
    print_time_s: int | None


def _query(warehouse_db: str | Path, sql: str, args: tuple = ()) -> list[tuple]:
    path = Path(warehouse_db)
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # dbt has not built yet
                return []
            raise
    finally:
        conn.close()


def _prints(rows: list[tuple]) -> list[SilverPrint]:
    out = []
    for row in rows:
        values = dict(zip(_COLUMNS, row))
        values["is_success"] = bool(values["is_success"])
        out.append(SilverPrint(**values))
    return out


_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM silver_print_jobs"
_ORDER = " ORDER BY finished_at, print_id"


def read_silver_prints(warehouse_db: str | Path) -> list[SilverPrint]:
    """All silver prints, oldest finish first. Empty when dbt has not built yet."""
    return _prints(_query(warehouse_db, _SELECT + _ORDER))


def read_changed_prints(warehouse_db: str | Path, since: str | None) -> tuple[list[SilverPrint], str | None]:
    """Prints (re)built by dbt after the watermark `since` (silver_built_at, indexed), and the new
    watermark: a run reads what changed, not the whole history."""
    rows = _query(warehouse_db, f"SELECT {', '.join(_COLUMNS)}, silver_built_at FROM silver_print_jobs "
                                "WHERE silver_built_at > ?" + _ORDER, (since or "",))
    newest = max((r[-1] for r in rows), default=since)
    return _prints([r[:-1] for r in rows]), newest


def read_prints_by_id(warehouse_db: str | Path, print_ids: list[str]) -> dict[str, SilverPrint]:
    out: dict[str, SilverPrint] = {}
    for start in range(0, len(print_ids), 500):
        ids = print_ids[start:start + 500]
        rows = _query(warehouse_db, _SELECT + f" WHERE print_id IN ({','.join('?' * len(ids))})", tuple(ids))
        out.update({p.print_id: p for p in _prints(rows)})
    return out


def read_prints_of_archives(warehouse_db: str | Path, archive_ids: tuple[int, ...]) -> list[SilverPrint]:
    if not archive_ids:
        return []
    marks = ",".join("?" * len(archive_ids))
    return _prints(_query(warehouse_db, _SELECT + f" WHERE bambuddy_archive_id IN ({marks})" + _ORDER,
                          tuple(archive_ids)))


def read_part_facts(warehouse_db: str | Path, part_key: str) -> PartFacts | None:
    rows = _query(warehouse_db, "SELECT part_key, weight_g, print_time_s FROM silver_parts WHERE part_key = ?",
                  (part_key,))
    if not rows:
        return None
    key, weight, seconds = rows[0]
    return PartFacts(key, weight, int(seconds) if seconds is not None else None)


def batch_conflicts(warehouse_db: str | Path, batches: list[str]) -> dict[str, list[str]]:
    """Batches that more than one silver print claims (a join defect; a failing push-key test)."""
    out: dict[str, list[str]] = {}
    for start in range(0, len(batches), 500):
        chunk = batches[start:start + 500]
        rows = _query(warehouse_db, "SELECT batch, print_id FROM silver_print_jobs WHERE batch IN "
                                    f"({','.join('?' * len(chunk))}) ORDER BY finished_at, print_id", tuple(chunk))
        for batch, print_id in rows:
            out.setdefault(batch, []).append(print_id)
    return {b: ids for b, ids in out.items() if len(ids) > 1}
