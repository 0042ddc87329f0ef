"""Sensors that make the pipeline run by itself (all on by default).

- finished_prints_sensor: a watermark over ended raw MQTT jobs and Bambuddy's print log; one run
  for a whole burst of finished prints.
- sync_requests_sensor: turns rows of the ledger's sync_requests table (written by the sync API
  and its webhook) into runs; its cursor (the last request id served) is committed by Dagster
  together with the run requests, so a request is launched once.
- poll_sensor: a sync every POLL_INTERVAL_SECONDS (0 disables it), the first one a period after start.
- startup_sensor: one sync when the code location starts, when SYNC_ON_STARTUP.
"""


import json
import os
import sqlite3
import uuid
from pathlib import Path

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from orchestration.bambuddy import BambuddyClient, BambuddyError
from orchestration.inventree.assets import REQUEST_IDS_TAG
from orchestration.jobs import SYNC_JOB, sync_prints, sync_run_config
from orchestration.ledger import Ledger
from orchestration.settings import SyncSettings, _int

# Read at load: sensor intervals are part of the definitions. A bad value names the setting.
SENSOR_INTERVAL_SECONDS = _int("SENSOR_INTERVAL_SECONDS", os.environ.get("SENSOR_INTERVAL_SECONDS", "5"), minimum=1)
_POLL = SyncSettings.from_env().poll_interval_seconds
# Changes with every start of the code location, so startup_sensor fires once per start.
BOOT_ID = uuid.uuid4().hex
TRIGGER_TAG = "printfarm/trigger"
WAITING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]


def mqtt_watermark(print_history_db: Path) -> list:
    """(ended jobs, latest end) of the logger's raw table; changes whenever a job ends."""
    if not print_history_db.exists():
        return [0, None]
    conn = sqlite3.connect(f"file:{print_history_db}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute(
            "SELECT COUNT(*), MAX(ended_at) FROM raw_printer_jobs WHERE ended_at IS NOT NULL").fetchone()
    except sqlite3.OperationalError:
        return [0, None]
    finally:
        conn.close()
    return [row[0], row[1]]


def bambuddy_watermark(client: BambuddyClient) -> list:
    """Print-log size and head: every finished run (a reprint too) adds an entry there."""
    page = client.list_print_runs(limit=1, offset=0)
    head = page["items"][0] if page["items"] else {}
    return [page["total"], head.get("id"), head.get("status"), head.get("completed_at")]


def _sync_waiting(context: SensorEvaluationContext) -> bool:
    """A sync_prints run that has not started yet will see whatever is new now."""
    runs = context.instance.get_runs(filters=RunsFilter(job_name=SYNC_JOB, statuses=WAITING), limit=1)
    return bool(runs)


@sensor(job=sync_prints, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Starts sync_prints when prints ended (raw MQTT jobs or Bambuddy print log).")
def finished_prints_sensor(context: SensorEvaluationContext):
    settings = SyncSettings.from_env()
    signature: dict[str, list] = {"mqtt": mqtt_watermark(settings.print_history_db)}
    if settings.bambuddy_enabled:
        try:
            signature["bambuddy"] = bambuddy_watermark(BambuddyClient.from_settings(settings))
        except BambuddyError as exc:
            return SkipReason(f"Bambuddy not readable: {exc}")
    cursor = json.dumps(signature, sort_keys=True)
    if cursor == context.cursor:
        return SkipReason("no newly ended prints")
    if context.cursor is None and settings.sync_on_startup:
        # First look at a fresh instance: startup_sensor syncs what is there; one run, not two.
        return SensorResult(skip_reason="watermark recorded; startup_sensor syncs at start", cursor=cursor)
    if _sync_waiting(context):
        return SkipReason("a sync_prints run is already waiting to start; it will pick this up")
    return SensorResult(
        run_requests=[RunRequest(run_config=sync_run_config(), tags={TRIGGER_TAG: "finished_prints"})],
        cursor=cursor,
    )


@sensor(job=sync_prints, minimum_interval_seconds=2, default_status=DefaultSensorStatus.RUNNING,
        description="Launches the sync requests written by the sync API (:8088) and its Bambuddy webhook.")
def sync_requests_sensor(context: SensorEvaluationContext):
    settings = SyncSettings.from_env()
    last_served = int(context.cursor or 0)
    pending = [r for r in Ledger(settings.ledger_db).pending_requests() if r["id"] > last_served]
    if not pending:
        return SkipReason("no pending sync requests")
    # Coalesce: requests asking for the same thing become one run (a burst of webhooks -> one run).
    groups: dict[tuple, list[int]] = {}
    for r in pending:
        key = (tuple(sorted(r["archive_ids"])) if r["archive_ids"] is not None else None,
               r["force"], r["max_archives"])
        groups.setdefault(key, []).append(r["id"])
    requests = []
    for (archive_ids, force, max_archives), ids in groups.items():
        kind = ",".join(sorted({r["kind"] for r in pending if r["id"] in ids}))
        requests.append(RunRequest(
            run_key=f"sync-requests-{ids[0]}-{ids[-1]}",
            run_config=sync_run_config(list(archive_ids or []), force, max_archives),
            tags={REQUEST_IDS_TAG: ",".join(map(str, ids)), TRIGGER_TAG: kind},
        ))
    return SensorResult(run_requests=requests, cursor=str(max(r["id"] for r in pending)))


@sensor(job=sync_prints, minimum_interval_seconds=max(_POLL, 30),
        default_status=DefaultSensorStatus.RUNNING if _POLL > 0 else DefaultSensorStatus.STOPPED,
        description="Periodic full sync every POLL_INTERVAL_SECONDS (0 disables).")
def poll_sensor(context: SensorEvaluationContext):
    if context.cursor is None:  # the daemon's first tick: start the period, startup_sensor covers now
        return SensorResult(skip_reason="first tick: next poll after POLL_INTERVAL_SECONDS", cursor="started")
    if _sync_waiting(context):
        return SkipReason("a sync_prints run is already waiting to start")
    return RunRequest(run_config=sync_run_config(), tags={TRIGGER_TAG: "poll"})


@sensor(job=sync_prints, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="One sync when the code location starts (SYNC_ON_STARTUP).")
def startup_sensor(context: SensorEvaluationContext):
    if not SyncSettings.from_env().sync_on_startup:
        return SkipReason("SYNC_ON_STARTUP is false")
    if context.cursor == BOOT_ID:
        return SkipReason("already synced since this start")
    return SensorResult(run_requests=[RunRequest(run_config=sync_run_config(), tags={TRIGGER_TAG: "startup"})],
                        cursor=BOOT_ID)


all_sensors = [finished_prints_sensor, sync_requests_sensor, poll_sensor, startup_sensor]
