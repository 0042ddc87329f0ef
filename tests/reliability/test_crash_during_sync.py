"""kill -9 of the process running `sync_prints` at every step of a push, then a normal run: one stock
item per print, parameters, image and link right, the ledger consistent. The stand-ins kill the
syncing subprocess from inside the request that marks the step, before or after committing it.

Contracts: tests/contracts/inventree/CONTRACT.md (POST /api/part/, /api/stock/, /api/parameter/,
image upload by PATCH /api/part/<pk>/) and tests/contracts/bambuddy/CONTRACT.md
(PATCH /api/v1/archives/<id> external_url)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.orchestration.conftest import ledger_rows, run_sync
from orchestration.processes import spawn

REPO = Path(__file__).resolve().parents[2]

# (step, stand-in, method, path, after_commit, skip)
CRASH_POINTS = [
    ("after part create", "inventree", "POST", r"/api/part/", True, 0),
    ("after stock item create, before the ledger write", "inventree", "POST", r"/api/stock/", True, 0),
    ("after the parameters", "inventree", "POST", r"/api/parameter/", True, 1),
    ("after the image", "inventree", "PATCH", r"/api/part/\d+/", True, 0),
    ("before the Bambuddy PATCH", "bambuddy", "PATCH", r"/api/v1/archives/\d+", False, 0),
    ("after the Bambuddy PATCH", "bambuddy", "PATCH", r"/api/v1/archives/\d+", True, 0),
]


@pytest.fixture
def bb_env(env, bambuddy, monkeypatch):
    monkeypatch.setenv("BAMBUDDY_BASE_URL", bambuddy.base_url)
    return env


def finished(bambuddy, name):
    archive = bambuddy.add_archive(printer_id=1, print_name=name, filament_used_grams=12.5,
                                   print_time_seconds=2700, content_hash=f"hash-{name.lower()}")
    bambuddy.add_run(archive["id"], status="completed")
    return archive


def sync_in_subprocess(killed: dict) -> subprocess.Popen:
    proc = spawn([sys.executable, "-m", "tests.reliability.sync_once"], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed["pid"] = proc.pid
    return proc


def assert_everything_synced_once(env, bambuddy, inventree, archives):
    batches = sorted(s["batch"] for s in inventree.stock_items.values())
    assert batches == sorted(f"bambuddy-{a['id']}" for a in archives), "one stock item per print"
    assert len(inventree.parts) == len(archives)
    by_ipn = {p["IPN"]: p for p in inventree.parts.values()}
    rows = {r["print_id"]: r for r in ledger_rows(env)}
    for archive in archives:
        part = by_ipn[f"BMB-hash-{archive['print_name'].lower()}"]
        assert part["image"], f"{part['IPN']} has its image"
        params = {inventree.templates[p["template"]]["name"]: p["data"]
                  for p in inventree.parameters.values() if p["model_id"] == part["pk"]}
        assert params == {"Weight": "12.5 g", "PrintTime": "2700 s"}
        link = f"http://inventree.example/web/part/{part['pk']}/"
        assert bambuddy.archives[archive["id"]]["external_url"] == link
        (item,) = [s for s in inventree.stock_items.values() if s["batch"] == f"bambuddy-{archive['id']}"]
        row = rows[f"bambuddy:{archive['id']}:1"]
        assert (row["state"], row["part_pk"], row["stock_item_pk"], row["link_state"]) == \
            ("synced", part["pk"], item["pk"], "written")


@pytest.mark.parametrize("step,server,method,path,after_commit,skip", CRASH_POINTS, ids=[c[0] for c in CRASH_POINTS])
def test_kill_9_at_a_step_then_rerun_heals(bb_env, bambuddy, inventree, step, server, method, path, after_commit,
                                           skip):
    archives = [finished(bambuddy, "Benchy"), finished(bambuddy, "Vase")]
    killed: dict = {}
    target = inventree if server == "inventree" else bambuddy
    target.on_request(lambda: os.kill(killed["pid"], signal.SIGKILL), method, path,
                      after_commit=after_commit, skip=skip)
    proc = sync_in_subprocess(killed)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed at {step!r}: {stderr[-2000:]}"

    result = run_sync()
    assert result.success
    assert_everything_synced_once(bb_env, bambuddy, inventree, archives)
    if step == CRASH_POINTS[1][0]:  # and a third run finds nothing to do (once: it is the same for all)
        stock_posts = inventree.count("POST", "/api/stock/")
        assert run_sync().success
        assert inventree.count("POST", "/api/stock/") == stock_posts


@pytest.mark.parametrize("path", ["/api/part/", "/api/stock/", "/api/parameter/"])
def test_response_lost_after_the_server_committed(bb_env, bambuddy, inventree, path):
    """A create is stored but its answer never arrives: the POST is not repeated blindly; the step
    is tried again in place and finds the part by IPN, the stock item by batch, the parameter on
    re-reading the part's parameters, instead of creating a twin (a later run finds them the same
    way: the kill -9 cases above)."""
    archives = [finished(bambuddy, "Benchy")]
    inventree.drop_response_after_commit(times=1, method="POST", path_prefix=path)
    first = run_sync()
    assert first.success
    assert ledger_rows(bb_env)[0]["state"] == "synced", "healed in place, in the same run"
    assert_everything_synced_once(bb_env, bambuddy, inventree, archives)
    assert len(inventree.parts) == 1 and len(inventree.parameters) == 2

