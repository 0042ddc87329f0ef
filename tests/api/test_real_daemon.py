"""The whole loop with a real `dagster-daemon` process: API request -> sync_scheduler ->
queued run (deploy/dagster.yaml run queue) -> sync_prints in its own process -> API answer."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from orchestration.processes import spawn, stop

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_archive_sync_through_a_real_daemon(serve, env, bambuddy, inventree, monkeypatch, dagster_home):
    monkeypatch.setenv("BAMBUDDY_BASE_URL", bambuddy.base_url)
    monkeypatch.setenv("SYNC_ON_STARTUP", "false")
    archive = bambuddy.add_archive(printer_id=1, print_name="Benchy")
    bambuddy.add_run(archive["id"])
    shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    daemon = spawn([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
                   cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        with serve(wait_seconds=150.0) as api:
            deadline = time.monotonic() + 90
            while not requests.get(api.url + "/health").json()["dagster"]["daemon_running"]:
                assert time.monotonic() < deadline, "the daemon never sent a heartbeat"
                assert daemon.poll() is None, "dagster-daemon exited"
                time.sleep(1)
            response = requests.post(api.url + f"/sync/archive/{archive['id']}", timeout=200)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["status"] == "success"
            # the finished-prints sensor may have synced it a moment earlier: either way, once
            (printed,) = body["prints"]
            assert printed["print_id"] == f"bambuddy:{archive['id']}:1"
            assert printed["state"] == "synced" and printed["stock_item_pk"] and printed["link_state"] == "written"
        assert len(inventree.stock_items) == 1
        assert bambuddy.archives[archive["id"]]["external_url"].endswith("/")
    finally:
        stop(daemon, timeout=30)
