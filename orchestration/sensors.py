"""The one sensor that makes the pipeline run by itself: `sync_scheduler`.

Each tick it (1) records intent in the ledger — a daemon start (SYNC_ON_STARTUP), newly ended
prints (the logger's raw table, Bambuddy's print log), a poll period gone by — next to what the
API and its webhook recorded; (2) settles launched requests against the Dagster instance: a run
that ended without answering its requests answers them with its error and schedules a retry, a
launch whose run no instance knows (DAGSTER_HOME reset) is pending again, a run whose worker died
(a killed code server or daemon) is marked failed; (3) when no sync run is queued or running,
turns the pending requests and the due retries into exactly one run.

Nothing here depends on a Dagster cursor: the state is the ledger's, so resetting DAGSTER_HOME or
DATA_DIR alone, or a code-server restart, loses nothing and repeats nothing.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from orchestration.bambuddy import BambuddyClient, BambuddyError
from orchestration.inventree.assets import LAUNCH_TAG
from orchestration.jobs import HOST_TAG, SYNC_JOB, sync_prints, sync_run_config
from orchestration.ledger import PULL_META, SCHEDULER_TICK_META, Ledger, stamp_in, utc_now
from orchestration.settings import SyncSettings, _int

# Read at load: sensor intervals are part of the definitions. A bad value names the setting.
SENSOR_INTERVAL_SECONDS = _int("SENSOR_INTERVAL_SECONDS", os.environ.get("SENSOR_INTERVAL_SECONDS", "5"), minimum=1)

TRIGGER_TAG = "printfarm/trigger"
WORKER_GONE_TAG = "printfarm/worker_gone"  # set on a run the scheduler failed because its worker died
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
          DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
LOST_AFTER_SECONDS = 30         # a launch no instance knows after this is launched again
DAEMON_SEEN_META = "daemon_seen_at"  # when the current daemon process was first seen
RUN_RETRY_MAX_SECONDS = 300     # a failed run is retried after 10 s, doubling, at most this
FULL_RESCAN_KINDS = {"poll", "backfill", "startup"}
COVERABLE_KINDS = {"webhook", "finished_prints", "retry"}  # "something is new": a later read serves them
COVERED_META = "covered_until"  # {"at", "run_id"}: the newest read of a successful run that pushed all


def min_interval(seconds: int) -> int:
    """The sensor daemon looks every 5 s and skips a sensor whose last tick began less than its
    minimum interval ago. The tick begins a few ms into the look, so a 5 s interval is a few ms
    short at every other look: the scheduler ticked every 5 or 10 s (bench.soak). A second less
    makes a look at or after the interval always tick."""
    return max(1, seconds - 1)


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


def _seconds_since(stamp: str | None) -> float:
    if not stamp:
        return float("inf")
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - moment).total_seconds()


def request_unscoped(ledger: Ledger, kind: str) -> int:
    """Intent to sync whatever is new; one waiting request covers any number of triggers."""
    for r in ledger.requests(("pending",)):
        if r["archive_ids"] is None and not r["max_archives"] and not r["not_before"]:
            return r["id"]
    return ledger.add_request(kind)


# --- (1) triggers ---------------------------------------------------------------------------
def record_triggers(context: SensorEvaluationContext, settings: SyncSettings, ledger: Ledger) -> list[str]:
    notes: list[str] = []
    beat = context.instance.get_daemon_heartbeats().get("SENSOR")
    daemon_id = getattr(beat, "daemon_id", None)
    if daemon_id and ledger.meta("daemon_id") != daemon_id:
        # A new daemon process (not a new code server: those restart every minute or so).
        ledger.set_meta("daemon_id", daemon_id)
        ledger.set_meta(DAEMON_SEEN_META, utc_now())
        ledger.set_meta("daemon_starts", ledger.meta("daemon_starts", 0) + 1)
        if settings.sync_on_startup:
            ledger.add_request("startup")
    watermarks = {"mqtt": mqtt_watermark(settings.print_history_db)}
    if settings.bambuddy_enabled:
        try:
            watermarks["bambuddy"] = bambuddy_watermark(BambuddyClient.from_settings(settings))
        except BambuddyError as exc:
            notes.append(f"Bambuddy not readable: {exc}")
    for source, mark in watermarks.items():
        seen = ledger.meta(f"watermark:{source}")
        if seen != mark:
            ledger.set_meta(f"watermark:{source}", mark)
            if seen is not None:  # the first look only records where things stand
                request_unscoped(ledger, "finished_prints")
    if settings.poll_interval_seconds > 0:
        last = ledger.meta("last_launch_at")
        if last is None:
            ledger.set_meta("last_launch_at", utc_now())  # the period starts now
        elif _seconds_since(last) >= settings.poll_interval_seconds:
            request_unscoped(ledger, "poll")
    return notes


# --- (2) settle launches ---------------------------------------------------------------------
def _headline(message: str | None, fallback: str) -> str:
    """The first line of an error message, bounded: what a request and /sync/status keep."""
    lines = (message or "").strip().splitlines()
    return lines[0][:500] if lines else fallback


def _step_errors(instance, run_id: str) -> tuple[dict[str, str], set[str]]:
    failed: dict[str, str] = {}
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE).records:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None)
        failed[event.step_key] = _headline(getattr(error, "message", None) or event.message, "step failed")
    succeeded = {r.event_log_entry.dagster_event.step_key
                 for r in instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_SUCCESS).records}
    return failed, succeeded


def _run_failure(instance, run) -> str:
    """The run's own failure message when no step failed (e.g. its worker died)."""
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE, limit=1).records
    message = records[0].event_log_entry.dagster_event.message if records else None
    return _headline(message, f"run {run.status.value.lower()}")


def settle_launches(instance, ledger: Ledger, settings: SyncSettings) -> None:
    launches: dict[str, list[dict]] = {}
    for r in ledger.requests(("launched",)):
        launches.setdefault(r["launch_id"], []).append(r)
    for launch_id, requests in launches.items():
        runs = instance.get_runs(filters=RunsFilter(tags={LAUNCH_TAG: launch_id}), limit=1)
        if not runs:
            # The daemon creates the run right after the tick; none after this long, or none from a
            # daemon that has been replaced since (a restart, a reset DAGSTER_HOME), means the run
            # went with the old instance or never got created: launch the requests again.
            orphaned = max(r["launched_at"] for r in requests) < (ledger.meta(DAEMON_SEEN_META) or "")
            if orphaned or min(_seconds_since(r["launched_at"]) for r in requests) > LOST_AFTER_SECONDS:
                for run_id in {r["run_id"] for r in requests if r["run_id"]}:
                    ledger.complete_run(run_id, status="failure", answer_requests=False,
                                        error="run lost: its Dagster instance no longer knows it (DAGSTER_HOME reset?)")
                ledger.update_requests(launch_id, status="pending", launch_id=None, run_id=None)
            continue
        run = runs[0]
        if any(r["run_id"] != run.run_id for r in requests):
            ledger.update_requests(launch_id, run_id=run.run_id)
        if run.status not in FINISHED:
            continue
        if run.status == DagsterRunStatus.SUCCESS:  # a run without the links step settles here
            ledger.update_requests(launch_id, status="done", finished_at=utc_now())
            continue
        failed, succeeded = _step_errors(instance, run.run_id)
        for step in succeeded:
            ledger.set_meta(f"step_error:{step}", None)
        for step, message in failed.items():
            ledger.set_meta(f"step_error:{step}", {"error": message, "run_id": run.run_id, "at": time.time()})
        error = "; ".join(f"{k}: {v}" for k, v in failed.items()) or _run_failure(instance, run)
        ledger.update_requests(launch_id, status="failed", finished_at=utc_now(), error=error)
        ledger.complete_run(run.run_id, status="failure", error=error)
        streak = ledger.meta("failed_runs_in_row", 0) + 1
        ledger.set_meta("failed_runs_in_row", streak)
        wait = min(settings.sync_retry_base_seconds * 2 ** (streak - 1), RUN_RETRY_MAX_SECONDS)
        if run.tags.get(WORKER_GONE_TAG) and streak == 1:
            wait = 0  # a worker killed with its process says nothing about the servers: go on now
        # the intent of the failed requests is not lost: it runs again after a backoff
        scoped = [r for r in requests if r["archive_ids"] is not None]
        ledger.add_request("retry", not_before=stamp_in(wait))
        for r in scoped:
            ledger.add_request("retry", archive_ids=r["archive_ids"], force=r["force"], not_before=stamp_in(wait))


def _alive(pid: int, started_by: float) -> bool:
    """Is `pid` still the worker that logged it at `started_by` (epoch seconds)? A pid can be
    taken again, soonest after a container restart, whose pids count from 1 anew."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state, *fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return True  # no /proc to ask: trust the pid
    if state == "Z":  # a zombie nobody reaped is gone too
        return False
    began = boot + int(fields[18]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time in ticks
    return began <= started_by + 2  # btime is whole seconds; a newer process is someone else


def _worker(instance, run) -> tuple[int, float] | None:
    """(pid, when it said so) of the run's worker: its RUN_START, or before that the "Started
    process for run (pid: N)" engine event it logs first."""
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_START, limit=1).records
    if records and records[0].event_log_entry.dagster_event.pid:
        return records[0].event_log_entry.dagster_event.pid, records[0].event_log_entry.timestamp
    for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=5).records:
        metadata = getattr(record.event_log_entry.dagster_event.event_specific_data, "metadata", None) or {}
        text = getattr(metadata.get("pid"), "text", None)
        if text and text.isdigit():
            return int(text), record.event_log_entry.timestamp
    return None


def release_dead_run(instance, run) -> bool:
    """Dagster's default run launcher has no run monitoring: a run whose worker died (a restart
    of the code server's container or of the daemon that spawned it, an OOM kill) stays STARTING
    or STARTED for ever, and every later run would wait behind it. Its worker ran on this host
    and its pid is gone: mark it failed, so its requests are answered and retried. (A worker
    killed before it logged its pid is failed by Dagster's run monitoring, deploy/dagster.yaml.)"""
    if run.status not in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED) \
            or run.tags.get(HOST_TAG) != socket.gethostname():
        return False
    worker = _worker(instance, run)
    if worker is None or _alive(*worker):
        return False
    run = instance.get_run_by_id(run.run_id)  # read after the worker is known gone: its last word is in
    if run is None or run.status not in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED):
        return False
    instance.add_run_tags(run.run_id, {WORKER_GONE_TAG: str(worker[0])})
    instance.report_run_failed(run, message=f"run worker (pid {worker[0]}) is gone: it was stopped mid-run "
                                            "(a restart of the code server or dagster-daemon?); its prints are "
                                            "synced again")
    return True


def record_covering_reads(instance, ledger: Ledger) -> None:
    """A webhook or an ended print recorded while a run was going is served by that run if its
    collector read Bambuddy after it (and dbt the logger's table later still): the request needs
    no run of its own, which would find nothing (an idle run). Only a successful run that pushed
    every pending print (no archive scope, no max_archives) covers anything."""
    for run_id, at in ledger.metas(PULL_META).items():
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status not in FINISHED:
            continue  # still going: it may still fail
        config = ((run.run_config or {}).get("ops", {}).get("inventree_stock", {}).get("config", {})
                  if run is not None else {})
        if run is not None and run.status == DagsterRunStatus.SUCCESS and not config.get("archive_ids") \
                and not config.get("max_archives") and at > (ledger.meta(COVERED_META) or {}).get("at", ""):
            ledger.set_meta(COVERED_META, {"at": at, "run_id": run_id})
        ledger.delete_meta(PULL_META + run_id)


def answer_covered(ledger: Ledger) -> None:
    covered = ledger.meta(COVERED_META)
    if not covered:
        return
    served = [r["id"] for r in ledger.requests(("pending",))
              if r["kind"] in COVERABLE_KINDS and r["archive_ids"] is None and not r["force"]
              and not r["max_archives"] and r["created_at"] < covered["at"]]
    if served:
        ledger.answer_covered(served, covered["run_id"])


# --- (3) launch -------------------------------------------------------------------------------
def plan(ledger: Ledger) -> tuple[list[dict], dict] | None:
    now = utc_now()
    answer_covered(ledger)
    pending = [r for r in ledger.requests(("pending",)) if not r["not_before"] or r["not_before"] <= now]
    if not pending:
        due = ledger.next_due()
        if due is None or due > now:
            return None
        pending = [ledger.request(ledger.add_request("retry"))]
    group = [pending[0]] if pending[0]["max_archives"] else [r for r in pending if not r["max_archives"]]
    unscoped = any(r["archive_ids"] is None for r in group)
    scope = [] if unscoped else sorted({a for r in group for a in r["archive_ids"]})
    forced = sorted({a for r in group if r["force"] and r["archive_ids"] for a in r["archive_ids"]})
    config = sync_run_config(scope, force_archive_ids=forced, max_archives=group[0]["max_archives"],
                             full_rescan=any(r["kind"] in FULL_RESCAN_KINDS for r in group))
    return group, config


@sensor(job=sync_prints, minimum_interval_seconds=min_interval(SENSOR_INTERVAL_SECONDS),
        default_status=DefaultSensorStatus.RUNNING,
        description="Records what should be synced (daemon start, ended prints, poll, API, webhooks) in "
                    "the ledger and turns it into at most one queued or running sync_prints run.")
def sync_scheduler(context: SensorEvaluationContext):
    settings = SyncSettings.from_env()
    ledger = Ledger(settings.ledger_db)
    ledger.set_meta(SCHEDULER_TICK_META, time.time())  # /sync/status tells when the scheduler stopped ticking
    notes = record_triggers(context, settings, ledger)
    settle_launches(context.instance, ledger, settings)
    record_covering_reads(context.instance, ledger)
    active = context.instance.get_runs(filters=RunsFilter(job_name=SYNC_JOB, statuses=ACTIVE), limit=1)
    if active and release_dead_run(context.instance, active[0]):
        notes.append(f"run {active[0].run_id} had lost its worker and is marked failed")
        settle_launches(context.instance, ledger, settings)  # its requests are answered and retried now
        active = context.instance.get_runs(filters=RunsFilter(job_name=SYNC_JOB, statuses=ACTIVE), limit=1)
    if active:
        return SkipReason(f"run {active[0].run_id} is {active[0].status.value.lower()}; it or the next one "
                          "takes what is pending")
    planned = plan(ledger)
    if planned is None:
        return SkipReason("; ".join(["nothing pending", *notes]))
    group, config = planned
    launch_id = uuid.uuid4().hex
    ledger.claim_requests([r["id"] for r in group], launch_id)
    ledger.set_meta("last_launch_at", utc_now())
    kinds = ",".join(sorted({r["kind"] for r in group}))
    return RunRequest(run_key=launch_id, run_config=config,
                      tags={LAUNCH_TAG: launch_id, TRIGGER_TAG: kinds, HOST_TAG: socket.gethostname(),
                            "printfarm/request_ids": ",".join(str(r["id"]) for r in group)})


all_sensors = [sync_scheduler]
