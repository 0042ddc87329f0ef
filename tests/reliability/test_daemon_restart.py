"""dagster-daemon killed mid-run (a container restart, an OOM kill) and started again on the same
DAGSTER_HOME: the run it left STARTED has no worker any more. Dagster's default run launcher has no
run monitoring, so that run would hold every later one (the scheduler's one-at-a-time rule and the
run queue's limit); the scheduler fails it and the print is synced by the next run, once.
Real daemon and run queue (deploy/dagster.yaml); InvenTree and Bambuddy stand-ins
(tests/contracts/*/CONTRACT.md)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from orchestration.processes import spawn, stop
from orchestration.sensors import _alive
from tests.ingestion.conftest import wait_until
from tests.reliability.killed_worker import assert_landed_once, one_print_waiting

REPO = Path(__file__).resolve().parents[2]


def start_daemon(log: Path) -> subprocess.Popen:
    return spawn([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
                 cwd=REPO, env=dict(os.environ), stdout=log.open("a"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_a_daemon_killed_mid_run_leaves_no_run_that_holds_the_loop(env, bambuddy, inventree, monkeypatch, tmp_path):
    one = one_print_waiting(env, bambuddy, monkeypatch, tmp_path)
    one.ledger.add_request("webhook")  # what the API records for Bambuddy's webhook
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
            entry = wait_until(one.synced_and_linked, timeout=150, what="the print synced and linked")
        finally:
            stop(daemon, timeout=30)
        left = instance.get_run_by_id(run.run_id)
        assert left.status == DagsterRunStatus.FAILURE
    failed = assert_landed_once(one, entry, inventree, bambuddy, run.run_id)
    assert "worker" in failed["error"], log.read_text()[-3000:]
