"""Sync ledger (DATA_DIR/sync.sqlite3): states, attempts, runs and the request queue."""

from orchestration.ledger import Ledger


def test_synced_print_stays_synced_through_later_attempts(tmp_path):
    ledger = Ledger(tmp_path / "sync.sqlite3")
    ledger.record_attempt("bambuddy:1:1", archive_id=1, run_no=1, batch="bambuddy-1", ipn="BMB-x", run_id="r1")
    ledger.record_stock_item("bambuddy:1:1", 7)
    ledger.mark_synced("bambuddy:1:1", part_pk=3, stock_item_pk=7)
    # A forced re-sync that fails must not demote a synced print (its stock item exists).
    ledger.record_attempt("bambuddy:1:1", archive_id=1, run_no=1, batch="bambuddy-1", ipn="BMB-x", run_id="r2")
    ledger.mark_failed("bambuddy:1:1", "boom")
    entry = ledger.get("bambuddy:1:1")
    assert entry.state == "synced" and entry.stock_item_pk == 7 and entry.attempts == 2
    assert entry.last_error == "boom"
    assert ledger.counts() == {"pending": 0, "synced": 1, "skipped": 0, "failed": 0}


def test_failed_then_skipped_and_counts(tmp_path):
    ledger = Ledger(tmp_path / "sync.sqlite3")
    ledger.record_attempt("mqtt:S1:42", archive_id=None, run_no=None, batch="mqtt-S1-42", ipn="BMB-a", run_id="r1")
    ledger.mark_failed("mqtt:S1:42", "400 description too long")
    ledger.mark_skipped("mqtt:S1:43", "status failed (SYNC_SUCCESS_ONLY)", batch="mqtt-S1-43")
    assert ledger.counts()["failed"] == 1 and ledger.counts()["skipped"] == 1
    assert [e.print_id for e in ledger.recent("failed")] == ["mqtt:S1:42"]


def test_runs_and_requests_round_trip(tmp_path):
    ledger = Ledger(tmp_path / "sync.sqlite3")
    first = ledger.add_request("webhook")
    second = ledger.add_request("archive", archive_ids=[5], force=True)
    pending = ledger.pending_requests()
    assert [r["id"] for r in pending] == [first, second]
    assert pending[1]["archive_ids"] == [5] and pending[1]["force"] is True
    ledger.start_run("run-1", [first])
    ledger.finish_run("run-1", status="success", counts={"created": 2, "reused": 1}, details=[{"print_id": "p"}])
    run = ledger.last_run()
    assert run["run_id"] == "run-1" and run["created"] == 2 and run["details"] == [{"print_id": "p"}]
    assert run["request_ids"] == [first]
