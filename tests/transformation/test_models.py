"""The dbt project end to end on real SQLite files: unit tests, data tests, bronze immutability,
the source-of-truth rule and building while the logger writes."""

import threading
import time

from .conftest import add_archive, add_job, dbt, raw, warehouse, written_now


def test_build_runs_unit_and_data_tests_on_a_cold_start(data_dir):
    # `run --empty` gives unit tests the typed tables they read their column types from.
    dbt(data_dir, "run", "--empty")
    out = dbt(data_dir, "build").stdout
    assert "unit_test" in out and "ERROR=0" in out
    assert "PASS=" in out


def test_bronze_is_insert_only(data_dir):
    conn = raw(data_dir)
    add_job(conn, key="1", name="Benchy")
    add_job(conn, key="2", name="Clip", status="running", ended=None)  # not ended: not in bronze
    dbt(data_dir, "build", "--exclude", "test_type:unit")
    before = [dict(r) for r in warehouse(data_dir).execute("SELECT * FROM bronze_printer_jobs ORDER BY job_key")]
    assert [r["job_key"] for r in before] == ["1"]
    # raw changes later: the ended job is rewritten, the running job ends, a new job ends
    add_job(conn, key="1", name="Renamed", status="failed", ended="2026-01-02T00:00:00.000000Z")
    add_job(conn, key="2", name="Clip", status="cancelled", ended="2026-01-01T12:00:00.000000Z")
    add_job(conn, key="3", name="Vase", status="completed", ended="2026-01-01T13:00:00.000000Z")
    time.sleep(1.1)  # a different loaded_at second would show any rewrite
    dbt(data_dir, "build", "--exclude", "test_type:unit")
    after = [dict(r) for r in warehouse(data_dir).execute("SELECT * FROM bronze_printer_jobs ORDER BY job_key")]
    assert after[0] == before[0]
    assert [(r["job_key"], r["status"]) for r in after] == [("1", "completed"), ("2", "cancelled"), ("3", "completed")]
    silver = warehouse(data_dir).execute("SELECT print_id, batch, source FROM silver_print_jobs ORDER BY print_id")
    assert [tuple(r) for r in silver] == [("mqtt:S1:1", "mqtt-S1-1", "mqtt"), ("mqtt:S1:2", "mqtt-S1-2", "mqtt"),
                                          ("mqtt:S1:3", "mqtt-S1-3", "mqtt")]


def test_bambuddy_is_the_source_of_truth_when_enabled(data_dir):
    conn = raw(data_dir)
    add_job(conn, key="900", name="Benchy", ended="2026-01-01T11:02:00.000000Z")   # matches archive 1's run
    # no archive, and Bambuddy created none for this printer since: not Bambuddy's print, not pushed
    add_job(conn, key="901", name="Orphan", ended="2026-01-01T15:00:00.000000Z")
    add_archive(conn, 1, runs=[(10, "completed", "2026-01-01T11:00:00"), (11, "completed", "2026-01-05T11:00:00")])
    add_archive(conn, 2, name="Vase", filename="vase.3mf", content_hash="h2", status="printing", completed=None)
    dbt(data_dir, "build", "--exclude", "test_type:unit", vars={"bambuddy_enabled": True})
    rows = [dict(r) for r in warehouse(data_dir).execute("SELECT * FROM silver_print_jobs ORDER BY print_id")]
    assert [(r["print_id"], r["source"], r["batch"], r["mqtt_job_key"]) for r in rows] == [
        ("bambuddy:1:1", "both", "bambuddy-1", "900"),
        ("bambuddy:1:2", "bambuddy", "bambuddy-1-r2", None),
    ]
    # the logger's measured 62 minutes, not the archive's estimate; Bambuddy's grams
    assert rows[0]["ipn"] == "BMB-h" and rows[0]["weight_g"] == 12.0 and rows[0]["print_time_s"] == 3720
    assert rows[0]["estimated_time_s"] == 3600 and rows[0]["status_source"] == "logger"
    parts = [dict(r) for r in warehouse(data_dir).execute("SELECT * FROM silver_parts")]
    assert len(parts) == 1 and parts[0]["prints_count"] == 2 and parts[0]["thumbnail_archive_id"] == 1


def test_build_while_the_logger_writes(data_dir):
    """A writer commits small transactions to the raw file all through the build: neither side
    may fail with 'database is locked' (WAL + busy timeouts)."""
    stop = threading.Event()
    errors: list[Exception] = []
    written = [0]

    def writer():
        conn = raw(data_dir)
        n = 0
        while not stop.is_set():
            try:
                conn.execute("BEGIN IMMEDIATE")
                for _ in range(20):
                    n += 1
                    add_job(conn, key=f"w{n}", name=f"Part {n % 7}")
                conn.execute("COMMIT")
                written[0] = n
            except Exception as exc:  # pragma: no cover - the assertion below reports it
                errors.append(exc)
                break
            time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        for _ in range(2):
            proc = dbt(data_dir, "build", "--exclude", "test_type:unit", check=False)
            assert proc.returncode == 0, proc.stdout[-3000:]
            assert "database is locked" not in proc.stdout
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert written[0] > 100
    count = warehouse(data_dir).execute("SELECT COUNT(*) FROM bronze_printer_jobs").fetchone()[0]
    assert 0 < count <= written[0]


def test_incremental_silver_picks_up_late_enrichment_and_reprints(data_dir):
    """Silver is incremental: a run built before its MQTT job arrived is enriched later; an
    archive first seen without print log keeps print_id run 1 when its logged run arrives."""
    conn = raw(data_dir)
    add_archive(conn, 1, runs=[(10, "completed", "2026-01-01T11:00:00")])
    add_archive(conn, 2, name="Vase", filename="vase.3mf", content_hash="h2", runs=())  # no print log yet
    vars_ = {"bambuddy_enabled": True}
    dbt(data_dir, "build", "--exclude", "test_type:unit", vars=vars_)
    first = {r["print_id"]: r["source"] for r in warehouse(data_dir).execute("SELECT * FROM silver_print_jobs")}
    assert first == {"bambuddy:1:1": "bambuddy", "bambuddy:2:1": "bambuddy"}
    add_job(conn, key="900", name="Benchy", ended="2026-01-01T11:02:00.000000Z")  # the MQTT job, late
    conn.execute("""INSERT INTO raw_bambuddy_print_runs (id, archive_id, printer_id, printer_name, print_name, status,
                        started_at, completed_at, created_at, raw_json, first_seen_at, updated_at)
                    VALUES (20, 2, 1, 'X1C', 'Vase', 'completed', '2026-01-01T10:00:00', '2026-01-01T11:00:00',
                            '2026-01-01T11:00:00', '{}', ?, ?)""", (written_now(), written_now()))
    conn.execute("""INSERT INTO raw_bambuddy_print_runs (id, archive_id, printer_id, printer_name, print_name, status,
                        started_at, completed_at, created_at, raw_json, first_seen_at, updated_at)
                    VALUES (11, 1, 1, 'X1C', 'Benchy', 'completed', '2026-01-02T10:00:00', '2026-01-02T11:00:00',
                            '2026-01-02T11:00:00', '{}', ?, ?)""", (written_now(), written_now()))
    dbt(data_dir, "build", "--exclude", "test_type:unit", vars=vars_)
    rows = {r["print_id"]: (r["source"], r["mqtt_job_key"], r["batch"])
            for r in warehouse(data_dir).execute("SELECT * FROM silver_print_jobs")}
    assert rows == {"bambuddy:1:1": ("both", "900", "bambuddy-1"),
                    "bambuddy:1:2": ("bambuddy", None, "bambuddy-1-r2"),
                    "bambuddy:2:1": ("bambuddy", None, "bambuddy-2")}
    parts = {r["part_key"]: r["prints_count"] for r in warehouse(data_dir).execute("SELECT * FROM silver_parts")}
    assert parts == {"h": 2, "h2": 1}
