"""The sync API over real HTTP. Webhook payloads and the header Bambuddy can send come from
tests/contracts/bambuddy/webhook_payloads.json and CONTRACT.md ("Outgoing webhook")."""

import json
import time
from pathlib import Path

import requests
from dagster import DagsterInstance, build_sensor_context

from orchestration.definitions import defs
from orchestration.ledger import Ledger
from orchestration.sensors import sync_scheduler

from .conftest import daemon_alive

PAYLOADS = json.loads((Path(__file__).resolve().parents[1] / "contracts" / "bambuddy" /
                       "webhook_payloads.json").read_text())


def payload(event: str) -> dict:
    for capture in PAYLOADS["captured"]:
        if capture["event"] == event:
            return capture["request"]["body"]
    raise KeyError(event)


def play_daemon(instance: DagsterInstance) -> list:
    """Do what the daemon does: tick the scheduler and run what it asks for (one run at most)."""
    result = sync_scheduler(build_sensor_context(instance=instance))
    job = defs.resolve_job_def("sync_prints")
    return [job.execute_in_process(run_config=result.run_config, tags=result.tags, instance=instance)] \
        if hasattr(result, "run_config") else []


def test_health_and_status_answer_with_everything_down(serve, monkeypatch):
    monkeypatch.setenv("INVENTREE_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    with serve() as api:
        health = requests.get(api.url + "/health").json()
        assert health["status"] == "ok" and health["ledger"]["reachable"] is True
        assert health["dagster"]["daemon_running"] is False
        status = requests.get(api.url + "/sync/status").json()
        assert status["counts"] == {"pending": 0, "synced": 0, "skipped": 0, "retrying": 0, "needs_attention": 0}
        validate = requests.get(api.url + "/validate")
        assert validate.status_code == 503
        token_check = next(c for c in validate.json()["checks"] if c["name"] == "inventree_token")
        assert not token_check["ok"] and "INVENTREE_BASE_URL" in token_check["detail"]


def test_status_says_when_the_scheduler_stopped_ticking(serve, env):
    """A killed code server or a stopped daemon: the daemon may look alive while no sensor runs."""
    from orchestration.ledger import SCHEDULER_TICK_META, Ledger

    ledger = Ledger(env / "sync.sqlite3")
    with serve() as api:
        never = requests.get(api.url + "/sync/status").json()["scheduler"]
        assert never["ticking"] is False and "dagster-daemon run" in never["detail"]
        ledger.set_meta(SCHEDULER_TICK_META, time.time() - 300)
        stale = requests.get(api.url + "/sync/status").json()["scheduler"]
        assert stale["ticking"] is False and stale["last_tick_s_ago"] >= 300
        assert "has not ticked for 300 s" in stale["detail"] or "has not ticked for 301 s" in stale["detail"]
        ledger.set_meta(SCHEDULER_TICK_META, time.time())
        fresh = requests.get(api.url + "/sync/status").json()["scheduler"]
        assert fresh["ticking"] is True and fresh["last_tick_s_ago"] < 30


def test_validate_all_green(serve):
    with serve() as api:
        response = requests.get(api.url + "/validate")
        assert response.status_code == 200, response.json()
        assert {c["name"] for c in response.json()["checks"]} == {
            "bambuddy", "inventree_token", "part_category", "stock_location", "parameter_templates",
            "data_tests", "print_queue"}


def test_service_token_guards_manual_endpoints(serve, monkeypatch):
    monkeypatch.setenv("SERVICE_API_TOKEN", "s3rvice-token")
    with serve() as api:
        denied = requests.post(api.url + "/sync/backfill")
        assert denied.status_code == 401 and "X-Service-Token" in denied.json()["detail"]
        assert requests.get(api.url + "/sync/status", headers={"X-Service-Token": "wrong"}).status_code == 401
        ok = requests.get(api.url + "/sync/status", headers={"X-Service-Token": "s3rvice-token"})
        assert ok.status_code == 200 and "s3rvice-token" not in ok.text
        assert requests.get(api.url + "/health").status_code == 200  # health never needs the token


def test_oversized_body_is_refused(serve):
    with serve() as api:
        big = b"{" + b" " * (64 * 1024 + 1) + b"}"
        assert requests.post(api.url + "/webhooks/bambuddy", data=big).status_code == 413
        assert requests.post(api.url + "/sync/backfill", data=big).status_code == 413


def test_dagster_down_answers_503_and_keeps_the_request(serve, env):
    with serve() as api:
        response = requests.post(api.url + "/sync/backfill?max_archives=3")
        assert response.status_code == 503 and "daemon" in response.json()["error"]
        request_id = response.json()["request_id"]
    queued = Ledger(env / "sync.sqlite3").request(request_id)
    assert queued["status"] == "pending" and queued["max_archives"] == 3


def test_webhook_secret_headers_and_coalescing(serve, env, monkeypatch, dagster_home):
    monkeypatch.setenv("WEBHOOK_SHARED_SECRET", "hook-secret")
    daemon_alive(DagsterInstance.get())
    with serve() as api:
        complete = payload("print_complete")
        assert requests.post(api.url + "/webhooks/bambuddy", json=complete).status_code == 401
        assert requests.post(api.url + "/webhooks/bambuddy", json=complete,
                             headers={"X-Sync-Secret": "nope"}).status_code == 401
        first = requests.post(api.url + "/webhooks/bambuddy", json=complete, headers={"X-Sync-Secret": "hook-secret"})
        second = requests.post(api.url + "/webhooks/bambuddy", json=payload("print_failed"),
                               headers={"Authorization": "Bearer hook-secret"})  # what Bambuddy sends
        assert first.status_code == second.status_code == 202
        assert second.json()["request_id"] == first.json()["request_id"] and second.json()["coalesced"]
        ignored = requests.post(api.url + "/webhooks/bambuddy", json=payload("test"),
                                headers={"X-Sync-Secret": "hook-secret"})
        assert ignored.status_code == 202 and ignored.json()["status"] == "ignored"
        assert "hook-secret" not in first.text + second.text
    assert len(Ledger(env / "sync.sqlite3").requests(("pending",))) == 1


def test_archive_sync_end_to_end_then_status(serve, env, bambuddy, inventree, monkeypatch, dagster_home):
    monkeypatch.setenv("BAMBUDDY_BASE_URL", bambuddy.base_url)
    archive = bambuddy.add_archive(printer_id=1, print_name="Benchy")
    bambuddy.add_run(archive["id"])
    instance = DagsterInstance.get()
    daemon_alive(instance)
    with serve(wait_seconds=1.0) as api:
        missing = requests.post(api.url + "/sync/archive/999")
        assert missing.status_code == 404
        pending = requests.post(api.url + f"/sync/archive/{archive['id']}")
        assert pending.status_code == 202 and pending.json()["status"] == "queued"
        runs = play_daemon(instance)
        assert [r.success for r in runs] == [True]
        assert len(inventree.stock_items) == 1
        status = requests.get(api.url + "/sync/status").json()
        assert status["counts"]["synced"] == 1
        assert status["last_run"]["run_id"] == runs[0].run_id and status["last_run"]["created"] == 1
        assert status["last_run"]["url"].endswith(f"/runs/{runs[0].run_id}")
        assert status["recent_synced"][0]["batch"] == f"bambuddy-{archive['id']}"
