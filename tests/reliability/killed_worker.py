"""What the killed-worker tests share (test_daemon_restart, test_code_server_restart): a fresh
DAGSTER_HOME with the production instance settings, one finished Bambuddy print that only a
retry can bring in, and the checks that it landed once, linked, with the dead run's reason."""

import shutil
from dataclasses import dataclass
from pathlib import Path

from orchestration.ledger import Ledger

REPO = Path(__file__).resolve().parents[2]


@dataclass
class OnePrint:
    home: Path
    archive: dict
    ledger: Ledger

    def synced_and_linked(self):
        entry = self.ledger.get(f"bambuddy:{self.archive['id']}:1")
        return entry and entry.state == "synced" and entry.link_state == "written" and entry


def one_print_waiting(env: Path, bambuddy, monkeypatch, tmp_path: Path) -> OnePrint:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("BAMBUDDY_BASE_URL", bambuddy.base_url)
    monkeypatch.setenv("SYNC_ON_STARTUP", "false")  # only the dead run's retry can bring the print in
    archive = bambuddy.add_archive(printer_id=1, print_name="Benchy")
    bambuddy.add_run(archive["id"])
    return OnePrint(home, archive, Ledger(env / "sync.sqlite3"))


def assert_landed_once(one: OnePrint, entry, inventree, bambuddy, run_id: str) -> dict:
    """In stock once, linked; returns the request the dead run failed (the caller checks why)."""
    assert [s["batch"] for s in inventree.stock_items.values()] == [f"bambuddy-{one.archive['id']}"], "once"
    assert entry.stock_item_pk and bambuddy.archives[one.archive["id"]]["external_url"].endswith("/")
    failed = [r for r in one.ledger.requests(("failed",)) if r["run_id"] == run_id]
    assert failed, "the dead run's request is answered as failed"
    return failed[0]
