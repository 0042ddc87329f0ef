"""Issue 14, the automatic loop against stand-ins as strict as the real servers: a print that one
server refuses waits visibly and alone; checks, status and the API tell what happened.
Contracts: tests/contracts/inventree/CONTRACT.md "Text sanitising" (transcripts 70-74) and
transcript 61_patch_part_image_invalid (a file that is no image: 400 on the image field);
tests/contracts/bambuddy/CONTRACT.md (archives, external_url PATCH, thumbnails)."""

import pytest
import requests
from dagster import DagsterInstance

from orchestration.ledger import Ledger

from ..api.conftest import daemon_alive, dagster_home, serve  # noqa: F401 (fixtures)
from .conftest import add_mqtt_job, ledger_rows, run_sync

CORRUPT_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 12  # PNG magic, then nothing an image library can read


@pytest.fixture
def bb_env(env, bambuddy, monkeypatch):
    monkeypatch.setenv("BAMBUDDY_BASE_URL", bambuddy.base_url)
    return env


def finished(bambuddy, name, status="completed", **fields):
    archive = bambuddy.add_archive(printer_id=1, print_name=name, filament_used_grams=10.0,
                                   content_hash=f"hash-{name.lower().replace(' ', '-')}", **fields)
    bambuddy.add_run(archive["id"], status=status)
    return archive


def test_an_html_like_name_is_stocked_as_the_server_allows_and_linked(bb_env, bambuddy, inventree):
    """Observation 1: `Holder <tag>` was refused on every run (400 "Remove HTML tags")."""
    holder = finished(bambuddy, "Holder <tag>")
    assert run_sync().success
    (part,) = inventree.parts.values()
    assert part["name"] == "Holder < tag>"
    assert bambuddy.archives[holder["id"]]["external_url"].endswith(f"/web/part/{part['pk']}/")


def test_a_refused_print_waits_alone_and_every_other_print_gets_its_link(bb_env, bambuddy, inventree):
    """Observation 1: links of later prints were never written while one print failed. Here one
    archive's thumbnail is no image (InvenTree 400 on upload): that print waits in needs_attention
    with its reason and fix; the others, in the same run, get stock, image and link."""
    poison = finished(bambuddy, "Bracket")
    bambuddy.thumbnails[poison["id"]] = CORRUPT_PNG
    good = [finished(bambuddy, n) for n in ("Benchy", "Clip")]
    result = run_sync()
    assert result.success
    rows = {r["print_id"]: r for r in ledger_rows(bb_env)}
    bad = rows[f"bambuddy:{poison['id']}:1"]
    assert bad["state"] == "needs_attention" and bad["step"] == "image" and "image" in bad["reason"]
    assert bad["fix"]
    for archive in good:
        assert rows[f"bambuddy:{archive['id']}:1"]["state"] == "synced"
        assert "/web/part/" in bambuddy.archives[archive["id"]]["external_url"]
    check = [c for c in result.get_asset_check_evaluations() if c.check_name == "print_queue"][0]
    assert not check.passed and check.metadata["prints_needs_attention"].value == 1
    calls = len(inventree.requests)
    assert run_sync().success and len(inventree.requests) - calls <= 6  # not retried: nothing changed


def test_a_rename_in_bambuddy_reaches_silver_and_heals_a_refused_print(bb_env, bambuddy, inventree):
    """Observation 1: renaming the archive + force + a full rescan did not heal it: the old name
    stayed in silver. Silver takes the latest version of each print; the refused print goes on."""
    poison = finished(bambuddy, "Bracket")
    bambuddy.thumbnails[poison["id"]] = CORRUPT_PNG
    assert run_sync().success
    assert ledger_rows(bb_env)[0]["state"] == "needs_attention"
    from tests.fakes.bambuddy import PNG_1PX
    bambuddy.thumbnails[poison["id"]] = PNG_1PX
    bambuddy.archives[poison["id"]]["print_name"] = "Bracket v2"  # renamed in Bambuddy
    assert run_sync(full_rescan=True).success
    (row,) = ledger_rows(bb_env)
    assert row["state"] == "synced"
    (part,) = inventree.parts.values()
    assert part["image"] and len(inventree.stock_items) == 1


def test_checks_are_evaluated_in_a_run_that_fails_on_the_same_cause(env, inventree, monkeypatch):
    """Observation 7: with a wrong token the settings check showed "Execution failed"."""
    add_mqtt_job(env, "1", "Benchy")
    monkeypatch.setenv("INVENTREE_TOKEN", "inv-" + "0" * 40 + "-20991231")
    result = run_sync()
    assert not result.success
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "inventree_settings"]
    assert not check.passed and "INVENTREE_TOKEN" in str(check.metadata["problems"].value)
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "settings check" in str(failure.event_specific_data.error)
    assert Ledger(env / "sync.sqlite3").get("mqtt:SERIAL1:1").state == "pending"  # waits, not blamed


def test_status_names_fatal_and_link_errors(bb_env, bambuddy, inventree, monkeypatch, serve):
    """Observation 8: after a 401/403 run /sync/status said "failure" with no error."""
    finished(bambuddy, "Benchy")
    monkeypatch.setenv("INVENTREE_TOKEN", "inv-" + "0" * 40 + "-20991231")
    assert not run_sync().success
    with serve() as api:
        status = requests.get(api.url + "/sync/status").json()
    assert "INVENTREE_TOKEN" in status["step_errors"]["inventree_stock"]["error"]
    assert status["last_run"]["status"] == "failure" and "INVENTREE_TOKEN" in status["last_run"]["error"]
    monkeypatch.setenv("INVENTREE_TOKEN", inventree.token)
    assert run_sync().success
    with serve() as api:
        status = requests.get(api.url + "/sync/status").json()
    assert "inventree_stock" not in status["step_errors"]  # healed: the error is gone with it


def test_archive_answers_name_the_reason(bb_env, bambuddy, inventree, serve, dagster_home):
    """Observation 9: a failed archive answered "skipped" without why; an upload never printed
    answered `prints: []`."""
    failed = finished(bambuddy, "Vase", status="failed")
    never = bambuddy.add_archive(printer_id=1, print_name="Uploaded only", status="archived")
    assert run_sync().success
    daemon_alive(DagsterInstance.get())
    with serve(wait_seconds=0.5) as api:
        body = requests.post(api.url + f"/sync/archive/{failed['id']}").json()
        assert body["status"] == "queued" and body["request_id"]
        (printed,) = body["prints"]
        assert printed["state"] == "skipped" and "status failed (SYNC_SUCCESS_ONLY)" in printed["reason"]
        body = requests.post(api.url + f"/sync/archive/{never['id']}").json()
        assert body["prints"] == [] and "never printed" in body["reason"]


def test_the_api_gives_the_run_id_as_soon_as_the_run_exists(env, serve, dagster_home):
    """Observation 9: 202 {"status":"queued","run_id":null} while the run was already running."""
    import threading

    from dagster import build_sensor_context

    from orchestration.definitions import defs
    from orchestration.sensors import sync_scheduler

    instance = DagsterInstance.get()
    daemon_alive(instance)
    answers = []
    with serve(wait_seconds=4.0) as api:
        caller = threading.Thread(target=lambda: answers.append(requests.post(api.url + "/sync/backfill")))
        caller.start()
        ledger = Ledger(env / "sync.sqlite3")
        while not ledger.requests(("pending",)):
            pass
        launch = sync_scheduler(build_sensor_context(instance=instance))  # the daemon's tick ...
        run = instance.create_run_for_job(defs.resolve_job_def("sync_prints"), run_config=launch.run_config,
                                          tags=launch.tags)  # ... and the run it queued, not finished
        caller.join(30)
    (answer,) = answers
    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "running" and body["run_id"] == run.run_id and body["url"].endswith(run.run_id)


def test_a_run_reads_only_what_changed_in_silver(env, inventree):
    """Silver is rebuilt in full every build; its rows keep their silver_built_at unless their content
    changed, so the push's watermark finds only new or changed prints (its cost follows new work)."""
    import sqlite3

    def stamps():
        conn = sqlite3.connect(env / "warehouse.db")
        try:
            return dict(conn.execute("SELECT print_id, silver_built_at FROM silver_print_jobs"))
        finally:
            conn.close()

    add_mqtt_job(env, "1", "Benchy")
    assert run_sync().success
    first = stamps()
    add_mqtt_job(env, "2", "Clip", ended="2026-11-20T12:00:00.000000Z")
    result = run_sync()
    assert result.success
    second = stamps()
    assert second["mqtt:SERIAL1:1"] == first["mqtt:SERIAL1:1"]  # unchanged row, old stamp
    assert second["mqtt:SERIAL1:2"] > first["mqtt:SERIAL1:1"]
    meta = result.asset_materializations_for_node("inventree_stock")[0].metadata
    assert meta["enqueued"].value == 1 and meta["created"].value == 1
