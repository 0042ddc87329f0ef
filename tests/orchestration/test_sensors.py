"""Sensors evaluated with real Dagster contexts, cursors and an instance."""

import json

from dagster import DagsterInstance, RunRequest, SensorResult, SkipReason, build_sensor_context

from orchestration.inventree.assets import REQUEST_IDS_TAG
from orchestration.ledger import Ledger
from orchestration.sensors import BOOT_ID, finished_prints_sensor, poll_sensor, startup_sensor, sync_requests_sensor

from .conftest import add_mqtt_job


def evaluate(sensor, instance, cursor=None):
    return sensor(build_sensor_context(instance=instance, cursor=cursor))


def test_finished_prints_sensor_fires_once_per_burst(env, monkeypatch):
    monkeypatch.setenv("SYNC_ON_STARTUP", "false")
    instance = DagsterInstance.ephemeral()
    first = evaluate(finished_prints_sensor, instance)
    assert isinstance(first, SensorResult) and len(first.run_requests) == 1  # first look: sync what is there
    cursor = first.cursor
    assert isinstance(evaluate(finished_prints_sensor, instance, cursor), SkipReason)
    for key in ("1", "2", "3"):  # a burst of finished prints
        add_mqtt_job(env, key, f"Part {key}", ended=f"2026-11-20T11:0{key}:00.000000Z")
    burst = evaluate(finished_prints_sensor, instance, cursor)
    assert isinstance(burst, SensorResult) and len(burst.run_requests) == 1
    assert json.loads(burst.cursor)["mqtt"] == [3, "2026-11-20T11:03:00.000000Z"]
    assert isinstance(evaluate(finished_prints_sensor, instance, burst.cursor), SkipReason)


def test_one_run_at_start_not_three(env):
    """With SYNC_ON_STARTUP (the default) the first looks of the other sensors only start their
    watermark and period: the daemon's first ticks make one run, the startup sync."""
    add_mqtt_job(env, "9", "Old part")
    instance = DagsterInstance.ephemeral()
    first = evaluate(finished_prints_sensor, instance)
    assert isinstance(first, SensorResult) and not first.run_requests
    assert json.loads(first.cursor)["mqtt"][0] == 1
    assert isinstance(evaluate(finished_prints_sensor, instance, first.cursor), SkipReason)
    poll = evaluate(poll_sensor, instance)
    assert isinstance(poll, SensorResult) and not poll.run_requests and poll.cursor
    assert isinstance(evaluate(poll_sensor, instance, poll.cursor), RunRequest)
    startup = evaluate(startup_sensor, instance)
    assert isinstance(startup, SensorResult) and len(startup.run_requests) == 1
    add_mqtt_job(env, "10", "New part")
    assert evaluate(finished_prints_sensor, instance, first.cursor).run_requests


def test_finished_prints_sensor_watches_the_bambuddy_print_log(env, bambuddy, monkeypatch):
    monkeypatch.setenv("BAMBUDDY_BASE_URL", bambuddy.base_url)
    instance = DagsterInstance.ephemeral()
    cursor = evaluate(finished_prints_sensor, instance).cursor
    archive = bambuddy.add_archive(printer_id=1)
    bambuddy.add_run(archive["id"])
    fired = evaluate(finished_prints_sensor, instance, cursor)
    assert isinstance(fired, SensorResult) and fired.run_requests
    bambuddy.inject(status=503, times=10)
    skipped = evaluate(finished_prints_sensor, instance, fired.cursor)
    assert isinstance(skipped, SkipReason) and "Bambuddy" in skipped.skip_message


def test_sync_requests_become_coalesced_runs(env):
    ledger = Ledger(env / "sync.sqlite3")
    hooks = [ledger.add_request("webhook") for _ in range(3)]
    single = ledger.add_request("archive", archive_ids=[7], force=True)
    instance = DagsterInstance.ephemeral()
    result = evaluate(sync_requests_sensor, instance)
    assert isinstance(result, SensorResult)
    by_tag = {r.tags[REQUEST_IDS_TAG]: r for r in result.run_requests}
    assert set(by_tag) == {",".join(map(str, hooks)), str(single)}  # three webhooks -> one run
    archive_run = by_tag[str(single)]
    assert archive_run.run_config["ops"]["inventree_stock"]["config"] == {"archive_ids": [7], "force": True,
                                                                         "max_archives": None}
    assert result.cursor == str(single)
    assert isinstance(evaluate(sync_requests_sensor, instance, result.cursor), SkipReason)


def test_startup_sensor_fires_once_per_start(env, monkeypatch):
    instance = DagsterInstance.ephemeral()
    first = evaluate(startup_sensor, instance)
    assert isinstance(first, SensorResult) and first.cursor == BOOT_ID
    assert isinstance(evaluate(startup_sensor, instance, BOOT_ID), SkipReason)
    monkeypatch.setenv("SYNC_ON_STARTUP", "false")
    assert isinstance(evaluate(startup_sensor, instance), SkipReason)
