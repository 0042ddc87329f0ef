"""A warehouse built by an earlier release goes on working: the incremental models fail on a new
column (on_schema_change='fail'; dbt-sqlite has no sync_all_columns), so the dbt step adds the
columns a release declares to the existing tables, keeping bronze's history (never rebuilt)."""

import sqlite3

from .conftest import add_mqtt_job, ledger_rows, run_sync


def test_an_old_warehouse_is_upgraded_in_place_and_keeps_its_history(env, inventree):
    add_mqtt_job(env, "1", "Benchy")
    assert run_sync().success
    conn = sqlite3.connect(env / "warehouse.db")
    before = conn.execute("SELECT COUNT(*) FROM bronze_printer_jobs").fetchone()[0]
    conn.execute("ALTER TABLE bronze_printer_jobs DROP COLUMN filament_color")  # as an older release built it
    conn.commit()
    conn.close()
    add_mqtt_job(env, "2", "Clip", ended="2026-11-20T12:00:00.000000Z")
    result = run_sync()
    assert result.success
    conn = sqlite3.connect(env / "warehouse.db")
    columns = {r[1] for r in conn.execute("PRAGMA table_info(bronze_printer_jobs)")}
    rows = conn.execute("SELECT COUNT(*) FROM bronze_printer_jobs").fetchone()[0]
    conn.close()
    assert "filament_color" in columns and rows == before + 1  # history kept, the new job added
    assert {r["print_id"]: r["state"] for r in ledger_rows(env)} == {"mqtt:SERIAL1:1": "synced",
                                                                     "mqtt:SERIAL1:2": "synced"}
    assert len(inventree.stock_items) == 2
