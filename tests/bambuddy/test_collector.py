"""The collector and the Dagster asset bambuddy_archives against the stand-in, writing real
SQLite raw tables. Behaviour of Bambuddy from tests/contracts/bambuddy/CONTRACT.md: list
ordering without total, reprints reuse the archive row, print log as the run history, soft delete."""

import sqlite3

from dagster import materialize

from orchestration.bambuddy import BambuddyResource, bambuddy_archives
from orchestration.bambuddy.collector import collect


def rows(db, sql):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_backfill_then_incremental_changes(bambuddy, client, tmp_path):
    db = tmp_path / "print_history.db"
    old = [bambuddy.add_archive(printer_id=1, print_name=f"Old {i}") for i in range(7)]
    for a in old:
        bambuddy.add_run(a["id"])
    first = collect(client, db)
    assert first.full_rescan and first.new == 7 and first.runs_new == 7
    # a new print starts (printing), an old archive is reprinted (same row, new print-log entry)
    printing = bambuddy.add_archive(printer_id=1, print_name="Vase")
    started = bambuddy.add_run(printing["id"], status="printing")
    bambuddy.add_run(old[0]["id"], status="completed")
    second = collect(client, db)
    assert not second.full_rescan
    assert second.new == 1 and second.runs_new == 2
    assert second.pages_read <= 4  # printers + one archive page + one print-log page (+ little)
    assert rows(db, f"SELECT status FROM raw_bambuddy_archives WHERE id = {printing['id']}") == [("printing",)]
    # the print finishes: picked up without a full scan
    bambuddy.finish_run(started["id"], "completed")
    third = collect(client, db)
    assert rows(db, f"SELECT status FROM raw_bambuddy_archives WHERE id = {printing['id']}") == [("completed",)]
    assert rows(db, f"SELECT status FROM raw_bambuddy_print_runs WHERE id = {started['id']}") == [("completed",)]
    assert third.changed >= 1
    runs = rows(db, f"SELECT COUNT(*) FROM raw_bambuddy_print_runs WHERE archive_id = {old[0]['id']}")
    assert runs == [(2,)]  # the reprint is a second run of the same archive
    times = rows(db, "SELECT completed_at FROM raw_bambuddy_archives WHERE completed_at IS NOT NULL LIMIT 1")
    assert times[0][0].endswith("Z")


def test_soft_delete_is_flagged_never_removed(bambuddy, client, tmp_path):
    db = tmp_path / "print_history.db"
    keep, gone = bambuddy.add_archive(), bambuddy.add_archive()
    collect(client, db)
    bambuddy.soft_delete(gone["id"])
    report = collect(client, db, full_rescan=True)
    assert report.deleted == 1
    assert rows(db, "SELECT id, deleted FROM raw_bambuddy_archives ORDER BY id") == [(keep["id"], 0), (gone["id"], 1)]
    # a printing archive that disappears is noticed by the incremental run too
    printing = bambuddy.add_archive()
    bambuddy.add_run(printing["id"], status="printing")
    collect(client, db)
    bambuddy.soft_delete(printing["id"])
    assert collect(client, db).deleted == 1


def test_asset_materializes_with_metadata(bambuddy, tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BAMBUDDY_BASE_URL", bambuddy.root_url)  # root URL: normalised to /api/v1
    a = bambuddy.add_archive(printer_id=1)
    bambuddy.add_run(a["id"])
    result = materialize([bambuddy_archives], resources={"bambuddy": BambuddyResource()})
    assert result.success
    meta = result.asset_materializations_for_node("bambuddy_archives")[0].metadata
    assert meta["new"].value == 1 and meta["archives_seen"].value == 1 and meta["pages_read"].value >= 3
    assert rows(tmp_path / "print_history.db", "SELECT serial_number FROM raw_bambuddy_printers") == \
        [("00M00A000000001",)]
    second = materialize([bambuddy_archives], resources={"bambuddy": BambuddyResource()},
                         run_config={"ops": {"bambuddy_archives": {"config": {"full_rescan": True}}}})
    meta = second.asset_materializations_for_node("bambuddy_archives")[0].metadata
    assert meta["full_rescan"].value is True and meta["new"].value == 0


def test_late_changes_of_old_archives_reach_the_raw_layer_without_a_full_scan(bambuddy, client, tmp_path):
    """A rename or a status set in Bambuddy's UI (PATCH print_name/status, CONTRACT.md and
    transcript 07) on an archive far down the created_at DESC list reaches raw within a few
    incremental runs (one extra page per run, in rotation), so silver shows it (DESIGN.md: silver
    takes the latest version of each print)."""
    db = tmp_path / "print_history.db"
    archives = [bambuddy.add_archive(printer_id=1, print_name=f"Part {i}") for i in range(8)]
    for a in archives:
        bambuddy.add_run(a["id"])
    collect(client, db)
    oldest = archives[0]["id"]
    bambuddy.archives[oldest].update(print_name="Renamed", status="failed")
    for _ in range(4):  # 8 archives, pages of 3: the rotation reaches every page within 3 runs
        report = collect(client, db)
        assert not report.full_rescan and report.pages_read <= 5
        if rows(db, f"SELECT print_name FROM raw_bambuddy_archives WHERE id = {oldest}") == [("Renamed",)]:
            break
    assert rows(db, f"SELECT print_name, status FROM raw_bambuddy_archives WHERE id = {oldest}") == [("Renamed", "failed")]
