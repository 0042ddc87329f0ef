"""dagster-daemon killed mid-run (a container restart, an OOM kill) and started again on the same
DAGSTER_HOME: the run it left STARTED has no worker any more. Dagster's default run launcher has no
run monitoring, so that run would hold every later one (the scheduler's one-at-a-time rule and the
run queue's limit); the scheduler fails it and the print is synced by the next run, once.
Real daemon and run queue (deploy/dagster.yaml); InvenTree and Bambuddy stand-ins
(tests/contracts/*/CONTRACT.md)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from orchestration.ledger import Ledger
from orchestration.processes import spawn, stop
from orchestration.sensors import _alive
from tests.ingestion.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]


def start_daemon(log: Path) -> subprocess.Popen:
    return spawn([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
                 cwd=REPO, env=dict(os.environ), stdout=log.open("a"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_a_daemon_killed_mid_run_leaves_no_run_that_holds_the_loop(env, bambuddy, inventree, monkeypatch, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("BAMBUDDY_BASE_URL", bambuddy.base_url)
    monkeypatch.setenv("SYNC_ON_STARTUP", "false")  # only the failed run's retry can bring the print in
    archive = bambuddy.add_archive(printer_id=1, print_name="Benchy")
    bambuddy.add_run(archive["id"])
    ledger = Ledger(env / "sync.sqlite3")
    ledger.add_request("webhook")  # what the API records for Bambuddy's webhook
    inventree.delay(2.0)  # a slow InvenTree: the run is still pushing when the daemon dies
    log = tmp_path / "daemon.log"
    with DagsterInstance.get() as instance:
        daemon = start_daemon(log)
        try:
            wait_until(lambda: inventree.count() > 0, timeout=120, what="the push to begin")
            (run,) = instance.get_runs(filters=RunsFilter(job_name="sync_prints"))
            os.killpg(daemon.pid, signal.SIGKILL)  # the daemon, its code server and the run worker
            daemon.wait(10)
            start = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_START).records
            worker = start[0].event_log_entry.dagster_event.pid
            began = start[0].event_log_entry.timestamp
            wait_until(lambda: not _alive(worker, began), timeout=10, what="the run worker to be gone")
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED, "the run was left behind"
            inventree.delay(0)

            daemon = start_daemon(log)
            entry = wait_until(lambda: (e := ledger.get(f"bambuddy:{archive['id']}:1")) and e.state == "synced"
                               and e.link_state == "written" and e, timeout=150, what="the print synced and linked")
        finally:
            stop(daemon, timeout=30)
        left = instance.get_run_by_id(run.run_id)
        assert left.status == DagsterRunStatus.FAILURE
    assert [s["batch"] for s in inventree.stock_items.values()] == [f"bambuddy-{archive['id']}"], "once"
    assert entry.stock_item_pk and bambuddy.archives[archive["id"]]["external_url"].endswith("/")
    failed = [r for r in ledger.requests(("failed",)) if r["run_id"] == run.run_id]
    assert failed and "worker" in failed[0]["error"], log.read_text()[-3000:]
