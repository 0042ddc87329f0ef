"""The scheduler sensor with real Dagster contexts and instances (each issue-14 observation about
the automatic loop, as it was seen, then fixed): the state is the ledger's, never a cursor."""

import time

from dagster import DagsterInstance, DagsterRunStatus, RunRequest, SkipReason, build_sensor_context
from dagster._daemon.types import DaemonHeartbeat

from orchestration.inventree.assets import LAUNCH_TAG
from orchestration.ledger import Ledger, stamp_in, utc_now
from orchestration.sensors import sync_scheduler

from .conftest import add_mqtt_job


def tick(instance):
    return sync_scheduler(build_sensor_context(instance=instance))


def daemon(instance, daemon_id):
    instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), "SENSOR", daemon_id, None))


def launched(instance, result, status=DagsterRunStatus.STARTED):
    """What the daemon does with a RunRequest: a run in the instance carrying the request's tags."""
    from orchestration.definitions import defs
    job = defs.resolve_job_def("sync_prints")
    run = instance.create_run_for_job(job, run_config=result.run_config, tags=result.tags)
    if status == DagsterRunStatus.FAILURE:
        instance.report_run_failed(run)
    elif status == DagsterRunStatus.STARTED:
        instance.run_storage.handle_run_event(run.run_id, _event(run, "PIPELINE_START"))
    return run


def _event(run, kind):
    from dagster._core.events import DagsterEvent, DagsterEventType
    return DagsterEvent(DagsterEventType[kind].value, job_name=run.job_name)


def test_startup_sync_once_per_daemon_start_not_per_code_server(env):
    """Observation 4: a code-server restart (every ~65 s) must not start another sync."""
    instance = DagsterInstance.ephemeral()
    daemon(instance, "daemon-A")
    first = tick(instance)
    assert isinstance(first, RunRequest) and first.tags["printfarm/trigger"] == "startup"
    launched(instance, first, DagsterRunStatus.FAILURE)
    for _ in range(3):  # the same daemon process: sensors evaluated again in new code servers
        tick(instance)
    ledger = Ledger(env / "sync.sqlite3")
    kinds = [r["kind"] for r in ledger.requests(("pending", "launched", "done", "failed"))]
    assert kinds.count("startup") == 1
    daemon(instance, "daemon-B")  # the daemon restarted
    tick(instance)
    kinds = [r["kind"] for r in ledger.requests(("pending", "launched", "done", "failed"))]
    assert kinds.count("startup") == 2 and ledger.meta("daemon_starts") == 2


def test_without_sync_on_startup_nothing_runs_until_something_new(env, monkeypatch):
    """Observation 5: SYNC_ON_STARTUP=false and old ended jobs: the first look only records them."""
    monkeypatch.setenv("SYNC_ON_STARTUP", "false")
    add_mqtt_job(env, "1", "Old part")
    instance = DagsterInstance.ephemeral()
    daemon(instance, "daemon-A")
    assert isinstance(tick(instance), SkipReason)
    assert isinstance(tick(instance), SkipReason)
    add_mqtt_job(env, "2", "New part")
    fired = tick(instance)
    assert isinstance(fired, RunRequest) and fired.tags["printfarm/trigger"] == "finished_prints"


def test_one_run_at_a_time_for_any_number_of_triggers(env, monkeypatch):
    """Observation 6: poll and finished prints in the same second made two runs."""
    monkeypatch.setenv("POLL_INTERVAL_SECONDS", "30")
    monkeypatch.setenv("SYNC_ON_STARTUP", "false")
    instance = DagsterInstance.ephemeral()
    ledger = Ledger(env / "sync.sqlite3")
    assert isinstance(tick(instance), SkipReason)  # first look: watermark and poll period start
    ledger.set_meta("last_launch_at", stamp_in(-60))  # the poll period is over ...
    add_mqtt_job(env, "1", "Part")  # ... and a print ended
    ledger.add_request("webhook")
    first = tick(instance)
    assert isinstance(first, RunRequest)
    # the waiting webhook request covers the ended print and the poll: one request, one run
    assert len(ledger.requests(("launched",))) == 1 and ledger.requests(("pending",)) == []
    run = launched(instance, first)
    add_mqtt_job(env, "2", "Part")
    skipped = tick(instance)
    assert isinstance(skipped, SkipReason) and run.run_id in skipped.skip_message
    assert len(ledger.requests(("pending",))) == 1  # the new intent waits for the next run, once


def test_a_run_that_failed_before_the_push_answers_its_requests_and_retries(env, monkeypatch):
    """Observation 2: a webhook run failed (Bambuddy down); later webhooks were coalesced into
    that dead request forever. Now the request is answered failed, and the intent runs again."""
    monkeypatch.setenv("SYNC_RETRY_BASE_SECONDS", "30")
    instance = DagsterInstance.ephemeral()
    ledger = Ledger(env / "sync.sqlite3")
    hook = ledger.add_request("webhook")
    first = tick(instance)
    launched(instance, first, DagsterRunStatus.FAILURE)
    assert isinstance(tick(instance), SkipReason)  # settled; the retry waits for its backoff
    answered = ledger.request(hook)
    assert answered["status"] == "failed" and answered["error"] and answered["run_id"]
    retry = [r for r in ledger.requests(("pending",)) if r["kind"] == "retry"]
    assert len(retry) == 1 and retry[0]["not_before"] > answered["finished_at"]
    later = ledger.add_request("webhook")  # a webhook during the outage is its own, live request
    again = tick(instance)
    assert isinstance(again, RunRequest) and str(later) in again.tags["printfarm/request_ids"]


def test_a_new_ledger_beside_an_old_dagster_home_still_runs_requests(env):
    """Observation 3: DATA_DIR reset with DAGSTER_HOME kept: a cursor ahead of the new ledger's
    request ids made API requests wait forever. There is no such cursor any more."""
    instance = DagsterInstance.ephemeral()
    ledger = Ledger(env / "sync.sqlite3")
    for _ in range(3):
        launched(instance, tick(instance) if ledger.add_request("archive", archive_ids=[1]) else None,
                 DagsterRunStatus.FAILURE)
    (env / "sync.sqlite3").unlink()
    fresh = Ledger(env / "sync.sqlite3")
    request_id = fresh.add_request("archive", archive_ids=[5])
    result = tick(instance)
    assert isinstance(result, RunRequest) and result.tags["printfarm/request_ids"] == str(request_id)
    assert result.run_config["ops"]["inventree_stock"]["config"]["archive_ids"] == [5]


def test_a_launch_that_no_instance_knows_is_launched_again(env):
    """DAGSTER_HOME reset alone: the run of a launched request is gone; the request is not lost."""
    ledger = Ledger(env / "sync.sqlite3")
    request_id = ledger.add_request("backfill")
    old_home = DagsterInstance.ephemeral()
    tick(old_home)
    assert ledger.request(request_id)["status"] == "launched"
    new_home = DagsterInstance.ephemeral()
    assert isinstance(tick(new_home), SkipReason)  # not yet: the daemon may still be creating it
    with ledger._connect() as conn:
        conn.execute("UPDATE sync_requests SET launched_at = ?", (stamp_in(-300),))
    again = tick(new_home)
    assert isinstance(again, RunRequest) and again.tags["printfarm/request_ids"] == str(request_id)
    assert ledger.request(request_id)["status"] == "launched"  # launched again, not answered as failed


def test_a_launch_from_a_daemon_since_replaced_is_launched_again_at_once(env):
    """DAGSTER_HOME wiped and the services restarted (bench.soak): the old daemon's launch will
    never become a run, so it does not wait out LOST_AFTER_SECONDS (a print waited 30 s for it)."""
    ledger = Ledger(env / "sync.sqlite3")
    request_id = ledger.add_request("webhook")
    assert isinstance(tick(DagsterInstance.ephemeral()), RunRequest)  # claimed; the wipe comes first
    assert ledger.request(request_id)["status"] == "launched"
    new_home = DagsterInstance.ephemeral()
    assert isinstance(tick(new_home), SkipReason)  # no new daemon seen: the run may still be created
    daemon(new_home, "daemon-B")
    again = tick(new_home)
    assert isinstance(again, RunRequest)
    assert str(request_id) in again.tags["printfarm/request_ids"].split(",")
    assert again.tags["printfarm/trigger"] == "startup,webhook"  # with the new daemon's startup sync


def test_the_scheduler_ticks_at_every_look_of_the_daemon(env):
    """The sensor daemon looks every 5 s and skips a sensor whose last tick began less than its
    minimum interval ago; the tick begins a little after the look, so with an interval of exactly
    5 s every other look was skipped (ticks 5 or 10 s apart in bench.soak)."""
    from types import SimpleNamespace

    from dagster._core.scheduler.instigation import SensorInstigatorData
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME, is_under_min_interval

    from orchestration.sensors import SENSOR_INTERVAL_SECONDS

    assert SENSOR_INTERVAL_SECONDS == MIN_INTERVAL_LOOP_TIME == 5
    began = time.time() - MIN_INTERVAL_LOOP_TIME + 0.02  # the previous tick began 20 ms into its look
    # the daemon's own rule, given the sensor's state and its interval (only these fields are read)
    state = SimpleNamespace(instigator_data=SensorInstigatorData(last_tick_timestamp=began,
                                                                 last_tick_start_timestamp=began))
    assert not is_under_min_interval(state, SimpleNamespace(min_interval_seconds=sync_scheduler.minimum_interval_seconds))
    assert is_under_min_interval(state, SimpleNamespace(min_interval_seconds=SENSOR_INTERVAL_SECONDS))


def _run_with_a_webhook_before_and_after_its_read(instance, ledger, scoped=False):
    from orchestration.ledger import PULL_META

    first = ledger.add_request("archive", archive_ids=[7]) if scoped else ledger.add_request("webhook")
    run = launched(instance, tick(instance))
    before = ledger.add_request("webhook")  # the print it announces is in Bambuddy already
    ledger.set_meta(PULL_META + run.run_id, utc_now())  # the run's collector reads Bambuddy
    after = ledger.add_request("webhook")
    assert isinstance(tick(instance), SkipReason)  # one run at a time
    return run, first, before, after


def test_a_webhook_the_running_sync_already_read_starts_no_run_of_its_own(env):
    """bench.soak: a webhook arriving while a run was starting was served by that run's read of
    Bambuddy, and its own run then found nothing (idle runs over the target). It is answered by
    that run; a webhook after the read still gets its run."""
    instance = DagsterInstance.ephemeral()
    ledger = Ledger(env / "sync.sqlite3")
    tick(instance)  # first look
    run, first, before, after = _run_with_a_webhook_before_and_after_its_read(instance, ledger)
    instance.run_storage.handle_run_event(run.run_id, _event(run, "PIPELINE_SUCCESS"))
    result = tick(instance)
    assert isinstance(result, RunRequest) and result.tags["printfarm/request_ids"] == str(after)
    assert ledger.request(before)["status"] == "done" and ledger.request(before)["run_id"] == run.run_id
    assert ledger.request(first)["status"] == "done"


def test_a_failed_run_serves_no_other_request(env):
    instance = DagsterInstance.ephemeral()
    ledger = Ledger(env / "sync.sqlite3")
    tick(instance)
    run, _, before, after = _run_with_a_webhook_before_and_after_its_read(instance, ledger)
    instance.report_run_failed(run)
    result = tick(instance)  # both webhooks go now (beside the failure's retry, if it is due)
    assert isinstance(result, RunRequest)
    assert {str(before), str(after)} <= set(result.tags["printfarm/request_ids"].split(","))


def test_a_run_scoped_to_some_archives_serves_no_other_request(env):
    instance = DagsterInstance.ephemeral()
    ledger = Ledger(env / "sync.sqlite3")
    tick(instance)
    run, _, before, after = _run_with_a_webhook_before_and_after_its_read(instance, ledger, scoped=True)
    instance.run_storage.handle_run_event(run.run_id, _event(run, "PIPELINE_SUCCESS"))
    result = tick(instance)
    assert isinstance(result, RunRequest) and result.tags["printfarm/request_ids"] == f"{before},{after}"


def test_due_retries_wake_the_scheduler(env):
    ledger = Ledger(env / "sync.sqlite3")
    instance = DagsterInstance.ephemeral()
    tick(instance)  # first look
    ledger.upsert("mqtt:S:1", state="retrying", next_attempt_at=stamp_in(3600), attempts=1)
    assert isinstance(tick(instance), SkipReason)
    ledger.update("mqtt:S:1", next_attempt_at=stamp_in(-1))
    due = tick(instance)
    assert isinstance(due, RunRequest) and due.tags["printfarm/trigger"] == "retry"
    assert LAUNCH_TAG in due.tags


def test_every_tick_is_recorded_for_the_status_page(env):
    from orchestration.ledger import SCHEDULER_TICK_META

    instance = DagsterInstance.ephemeral()
    ledger = Ledger(env / "sync.sqlite3")
    assert ledger.meta(SCHEDULER_TICK_META) is None
    before = time.time()
    tick(instance)
    assert before <= ledger.meta(SCHEDULER_TICK_META) <= time.time()


def _started_by(instance, result, pid, at=None):
    """A run the daemon launched and whose worker (pid) reported RUN_START (at `at`, else now)."""
    import logging

    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.events.log import EventLogEntry
    run = launched(instance, result, status=DagsterRunStatus.QUEUED)
    event = DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name, pid=pid)
    instance.handle_new_event(EventLogEntry(error_info=None, level=logging.DEBUG, user_message="", run_id=run.run_id,
                                            timestamp=at or time.time(), dagster_event=event))
    return instance.get_run_by_id(run.run_id)


def test_a_run_whose_worker_died_does_not_hold_every_later_run(env, monkeypatch):
    """dagster-daemon restarted mid-run: the run stays STARTED for ever (no run monitoring for the
    default launcher). The scheduler sees its worker is gone, fails it, and in the same tick
    launches the retry: a killed worker says nothing about the servers, so no backoff."""
    import subprocess

    monkeypatch.setenv("SYNC_RETRY_BASE_SECONDS", "60")
    instance = DagsterInstance.ephemeral()
    ledger = Ledger(env / "sync.sqlite3")
    hook = ledger.add_request("webhook")
    first = tick(instance)
    gone = subprocess.Popen(["true"])
    gone.wait()
    run = _started_by(instance, first, gone.pid)
    assert run.status == DagsterRunStatus.STARTED
    again = tick(instance)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    assert ledger.request(hook)["status"] == "failed" and "gone" in ledger.request(hook)["error"]
    assert isinstance(again, RunRequest) and "retry" in again.tags["printfarm/trigger"]


def test_a_worker_that_dies_again_waits_for_the_backoff(env, monkeypatch):
    """Only the first lost worker in a row is retried at once: a worker that keeps dying (an OOM
    kill in every run) backs off like any failing run."""
    import subprocess

    monkeypatch.setenv("SYNC_RETRY_BASE_SECONDS", "60")
    instance = DagsterInstance.ephemeral()
    ledger = Ledger(env / "sync.sqlite3")
    ledger.add_request("webhook")
    result = tick(instance)
    for _ in range(2):
        gone = subprocess.Popen(["true"])
        gone.wait()
        _started_by(instance, result, gone.pid)
        result = tick(instance)
    assert isinstance(result, SkipReason) and "nothing pending" in result.skip_message
    assert "lost its worker" in result.skip_message
    retries = [r for r in ledger.requests(("pending",)) if r["kind"] == "retry"]
    assert retries and all(r["not_before"] > utc_now() for r in retries)  # waits its 60 s


def test_a_run_whose_worker_lives_is_waited_for(env):
    import os

    instance = DagsterInstance.ephemeral()
    Ledger(env / "sync.sqlite3").add_request("webhook")
    run = _started_by(instance, tick(instance), os.getpid())
    assert "is started" in tick(instance).skip_message
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED



def test_a_pid_taken_again_after_a_restart_is_not_the_worker(env):
    """A container restart counts pids from 1 anew: the dead worker's pid may now belong to a
    process that started after the run did. That one is not the worker: the run is released."""
    import subprocess

    instance = DagsterInstance.ephemeral()
    ledger = Ledger(env / "sync.sqlite3")
    hook = ledger.add_request("webhook")
    first = tick(instance)
    newcomer = subprocess.Popen(["sleep", "60"])
    try:
        run = _started_by(instance, first, newcomer.pid, at=time.time() - 30)  # began 30 s before it
        again = tick(instance)
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
        assert isinstance(again, RunRequest) and "retry" in again.tags["printfarm/trigger"]
        assert newcomer.poll() is None  # nothing was done to the newcomer
    finally:
        newcomer.kill()
        newcomer.wait()
    assert ledger.request(hook)["status"] == "failed" and "gone" in ledger.request(hook)["error"]


def test_a_run_killed_while_starting_is_released_by_the_pid_it_logged_first(env):
    """The code server killed ~2 s into a launch (seen in bench.soak): the worker had logged
    "Started process for run (pid: N)" but no RUN_START, and the run stayed STARTING for ever."""
    import subprocess

    from dagster._core.events import EngineEventData

    instance = DagsterInstance.ephemeral()
    ledger = Ledger(env / "sync.sqlite3")
    hook = ledger.add_request("webhook")
    run = launched(instance, tick(instance), status=DagsterRunStatus.QUEUED)
    instance.run_storage.handle_run_event(run.run_id, _event(run, "PIPELINE_STARTING"))
    gone = subprocess.Popen(["true"])
    gone.wait()
    instance.report_engine_event(f"Started process for run (pid: {gone.pid}).", run, EngineEventData.in_process(gone.pid))
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTING
    again = tick(instance)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    assert ledger.request(hook)["status"] == "failed" and "gone" in ledger.request(hook)["error"]
    assert isinstance(again, RunRequest) and "retry" in again.tags["printfarm/trigger"]


def test_a_starting_run_whose_worker_lives_is_waited_for(env):
    import os

    from dagster._core.events import EngineEventData

    instance = DagsterInstance.ephemeral()
    Ledger(env / "sync.sqlite3").add_request("webhook")
    run = launched(instance, tick(instance), status=DagsterRunStatus.QUEUED)
    instance.run_storage.handle_run_event(run.run_id, _event(run, "PIPELINE_STARTING"))
    instance.report_engine_event(f"Started process for run (pid: {os.getpid()}).", run,
                                 EngineEventData.in_process(os.getpid()))
    assert "is starting" in tick(instance).skip_message
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTING


def test_a_run_launched_from_the_ui_whose_worker_died_is_released_too(env):
    """`sync_prints` launched by hand carries the job's tags only, none of the scheduler's: the
    host tag is the job's, so a dead worker of such a run holds nothing either."""
    import subprocess

    from dagster._core.events import EngineEventData

    from orchestration.definitions import defs
    instance = DagsterInstance.ephemeral()
    job = defs.resolve_job_def("sync_prints")
    # the launchpad's run: the job's tags merged with its own (dagster_graphql run_lifecycle.py)
    run = instance.create_run_for_job(job, run_config={}, tags=dict(job.tags))
    assert "printfarm/host" in run.tags and LAUNCH_TAG not in run.tags
    instance.run_storage.handle_run_event(run.run_id, _event(run, "PIPELINE_STARTING"))
    gone = subprocess.Popen(["true"])
    gone.wait()
    instance.report_engine_event(f"Started process for run (pid: {gone.pid}).", run, EngineEventData.in_process(gone.pid))
    tick(instance)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
