"""The MQTT <-> Bambuddy join on real dbt builds (issue #15): pairs are persisted and never
stolen across builds, the printer's outcome and times win, fallback archives never merge parts,
a completed print Bambuddy missed is stocked once and linked when its archive appears, and
late changes in Bambuddy reach silver. Bambuddy's behaviour (fallback archive with the gcode
path as filename and extra_data.no_3mf_available, `printing` -> stale `aborted`, a reprint's
stale start) is what the issue recorded from a real Bambuddy 1.2.5.2; field names follow
tests/contracts/bambuddy/CONTRACT.md."""

import json

from .conftest import add_archive, add_job, dbt, raw, warehouse, written_now

VARS = {"bambuddy_enabled": True, "archive_grace_minutes": 5}
FALLBACK = json.dumps({"extra_data": {"no_3mf_available": True}})


def build(data_dir):
    dbt(data_dir, "build", "--exclude", "test_type:unit", vars=VARS)


def silver(data_dir):
    return {r["print_id"]: dict(r) for r in warehouse(data_dir).execute("SELECT * FROM silver_print_jobs")}


def add_run(conn, run_id, archive_id, status, started, completed, reason=None):
    now = written_now()
    conn.execute(
        """INSERT INTO raw_bambuddy_print_runs (id, archive_id, printer_id, printer_name, print_name, status,
               started_at, completed_at, duration_seconds, failure_reason, created_at, raw_json, first_seen_at,
               updated_at)
           VALUES (?, ?, 1, 'X1C', 'Benchy', ?, ?, ?, 7200, ?, ?, '{}', ?, ?)""",
        (run_id, archive_id, status, started, completed, reason, completed, now, now))


def set_archive(conn, archive_id, **fields):
    fields["updated_at"] = written_now()
    conn.execute(f"UPDATE raw_bambuddy_archives SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                 (*fields.values(), archive_id))


def test_pairs_are_kept_across_builds_and_a_later_print_never_steals_one(data_dir):
    """Observations 1 and 4: the run of print A is paired in build 1; in build 2 its archive is
    reprinted (print B: the reprint's start is the first run's) and A's run end moves to a
    reconcile time. A keeps its pair, B gets the reprint run, each job has one run."""
    conn = raw(data_dir)
    add_job(conn, key="1", name="Benchy", started="2026-01-01T10:00:00.000000Z", ended="2026-01-01T10:20:00.000000Z")
    add_archive(conn, 1, completed="2026-01-01T10:20:00", runs=[])
    add_run(conn, 10, 1, "aborted", "2026-01-01T10:02:00", "2026-01-01T10:20:00", "Stale - reconciled")
    build(data_dir)
    assert silver(data_dir)["bambuddy:1:1"]["mqtt_job_key"] == "1"
    add_job(conn, key="2", name="Benchy", started="2026-01-01T10:25:00.000000Z", ended="2026-01-01T10:45:00.000000Z")
    add_run(conn, 11, 1, "completed", "2026-01-01T10:02:00", "2026-01-01T10:45:00")
    build(data_dir)
    rows = silver(data_dir)
    assert {k: (r["mqtt_job_key"], r["status"], r["status_source"]) for k, r in rows.items()} == {
        "bambuddy:1:1": ("1", "completed", "logger"), "bambuddy:1:2": ("2", "completed", "logger")}
    assert rows["bambuddy:1:1"]["started_at"] == "2026-01-01T10:00:00Z"
    assert "Stale" in rows["bambuddy:1:1"]["witness_note"]
    pairs = warehouse(data_dir).execute("SELECT run_ref, job_ref FROM silver_job_matches ORDER BY run_ref").fetchall()
    assert [tuple(p) for p in pairs] == [("1:1", "S1:1"), ("1:2", "S1:2")]


def test_fallback_archives_of_different_prints_are_different_parts(data_dir):
    """Observation 2: four prints without a 3MF; each fallback archive's filename is the printer's
    /data/Metadata/plate_1.gcode. They are four parts, named by their print names."""
    conn = raw(data_dir)
    for i, name in enumerate(["Benchy", "Spool holder", "Cable clip", "Vase"], 1):
        add_archive(conn, i, name=name, filename="/data/Metadata/plate_1.gcode", content_hash="",
                    completed=f"2026-01-01T1{i}:00:00", runs=[])
        set_archive(conn, i, raw_json=FALLBACK, thumbnail_path=None)
    build(data_dir)
    keys = sorted(r["part_key"] for r in silver(data_dir).values())
    assert keys == ["benchy", "cable-clip", "spool-holder", "vase"]


def test_completed_print_bambuddy_missed_is_one_print_linked_when_its_archive_appears(data_dir):
    """Observation 3: the printer reported FINISH; Bambuddy had no run after the grace period (its
    archive stayed `printing`). The print is an MQTT print; when Bambuddy's fallback archive is
    reconciled to `aborted` later, the same print (print_id, batch) gains the archive id and stays
    completed, with the disagreement noted."""
    conn = raw(data_dir)
    add_job(conn, key="5", name="Benchy", started="2026-01-01T10:00:00.000000Z", ended="2026-01-01T10:01:00.000000Z",
            gcode_file="/data/Metadata/plate_1.gcode")
    add_archive(conn, 1, filename="/data/Metadata/plate_1.gcode", content_hash="", status="printing", completed=None)
    # Bambuddy's fallback archive, created 3 min after the start, stays `printing`
    set_archive(conn, 1, raw_json=FALLBACK, thumbnail_path=None, started_at="2026-01-01T10:03:00",
                created_at="2026-01-01T10:03:00")
    build(data_dir)
    first = silver(data_dir)
    assert list(first) == ["mqtt:S1:5"]
    assert first["mqtt:S1:5"]["is_success"] == 1 and first["mqtt:S1:5"]["bambuddy_archive_id"] is None
    set_archive(conn, 1, status="aborted", completed_at="2026-01-01T10:30:00", failure_reason="Stale - reconciled")
    add_run(conn, 10, 1, "aborted", "2026-01-01T10:03:00", "2026-01-01T10:30:00", "Stale - reconciled")
    build(data_dir)
    rows = silver(data_dir)
    assert list(rows) == ["mqtt:S1:5"]
    row = rows["mqtt:S1:5"]
    assert (row["batch"], row["bambuddy_archive_id"], row["status"], row["source"]) == ("mqtt-S1-5", 1, "completed", "both")
    assert row["part_key"] == "benchy" and row["print_time_s"] == 60
    assert "aborted" in row["witness_note"]


def test_a_rename_in_bambuddy_reaches_silver_and_bronze_keeps_both_versions(data_dir):
    conn = raw(data_dir)
    add_archive(conn, 1, name="Benchy", runs=[(10, "completed", "2026-01-01T11:00:00")])
    build(data_dir)
    assert silver(data_dir)["bambuddy:1:1"]["name"] == "Benchy"
    set_archive(conn, 1, print_name="Benchy v2")
    build(data_dir)
    assert silver(data_dir)["bambuddy:1:1"]["name"] == "Benchy v2"
    versions = warehouse(data_dir).execute(
        "SELECT print_name FROM bronze_archive_versions WHERE archive_id = 1 ORDER BY version_at").fetchall()
    assert [v[0] for v in versions] == ["Benchy", "Benchy v2"]


def test_part_weight_and_time_are_medians_of_successful_prints(data_dir):
    conn = raw(data_dir)
    for key, minutes in (("1", 60), ("2", 62), ("3", 200)):
        add_job(conn, key=key, name="Benchy", started="2026-01-01T10:00:00.000000Z",
                ended=f"2026-01-01T{10 + minutes // 60:02d}:{minutes % 60:02d}:00.000000Z")
    add_job(conn, key="4", name="Benchy", status="failed", ended="2026-01-01T10:05:00.000000Z")
    dbt(data_dir, "build", "--exclude", "test_type:unit")
    part = dict(warehouse(data_dir).execute("SELECT * FROM silver_parts").fetchone())
    assert part["print_time_s"] == 62 * 60 and part["successful_prints"] == 3 and part["prints_count"] == 4
