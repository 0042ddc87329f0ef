"""The code server (compose's dagster-code) killed with its whole group while a sync run is
starting, then restarted by its supervisor, as compose's restart policy does. Seen in bench.soak:
the worker had logged its pid but not yet RUN_START, the run stayed STARTING for ever and held
every later run. The scheduler releases it at its first tick after the restart and the print is
synced once. Real code server, daemon and run queue (deploy/dagster.yaml,
deploy/workspace.grpc.yaml); InvenTree and Bambuddy stand-ins (tests/contracts/*/CONTRACT.md)."""

import os
import signal
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from orchestration.processes import Supervisor
from orchestration.services import code_server_serving, start_dagster
from tests.ingestion.conftest import wait_until
from tests.reliability.killed_worker import assert_landed_once, one_print_waiting

REPO = Path(__file__).resolve().parents[2]


def logged_its_pid(instance, run_id: str) -> bool:
    return bool(instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=1).records)


@pytest.mark.slow
def test_a_code_server_killed_while_a_run_starts_leaves_no_run_that_holds_the_loop(
        env, bambuddy, inventree, monkeypatch, tmp_path):
    one = one_print_waiting(env, bambuddy, monkeypatch, tmp_path)
    with Supervisor(tmp_path / "logs") as procs, DagsterInstance.get() as instance:
        dagster = start_dagster(procs, one.home, cwd=REPO)
        one.ledger.add_request("webhook")  # what the API records for Bambuddy's webhook
        run = wait_until(lambda: (runs := instance.get_runs(limit=1)) and logged_its_pid(instance, runs[0].run_id)
                         and runs[0], timeout=120, what="a run whose worker logged its pid")
        time.sleep(1.0)  # the launch call has its answer (a kill before that fails the launch itself)
        os.killpg(dagster.code_server.proc.pid, signal.SIGKILL)  # the container dies: server and worker
        dagster.code_server.proc.wait(10)
        killed_in = instance.get_run_by_id(run.run_id).status
        print(f"killed while the run was {killed_in}")
        assert killed_in in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED)

        def synced():
            procs.revive()  # compose's `restart: unless-stopped`
            return one.synced_and_linked()

        killed_at = time.monotonic()
        entry = wait_until(synced, timeout=120, what="the print synced and linked after the restart")
        print(f"synced {time.monotonic() - killed_at:.1f} s after the kill")
        assert dagster.code_server.restarts == 1 and code_server_serving(dagster.code_port)
        left = instance.get_run_by_id(run.run_id)
        assert left.status == DagsterRunStatus.FAILURE and left.tags.get("printfarm/worker_gone")
    failed = assert_landed_once(one, entry, inventree, bambuddy, run.run_id)
    assert "gone" in failed["error"]
