"""JobTracker decisions that the scenarios do not reach. Contract: tests/contracts/mqtt/PROTOCOL.md
sections 5-7 (sticky end states, identity taken at start); the reports here are synthetic."""

from datetime import datetime, timedelta, timezone

from ingestion.job import JobTracker

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
CLOUD_A = {"task_id": "700000001", "subtask_id": "700000002", "subtask_name": "Bracket",
           "gcode_file": "/data/Metadata/plate_1.gcode"}
CLOUD_B = {"task_id": "700000011", "subtask_id": "700000012", "subtask_name": "Hinge",
           "gcode_file": "/data/Metadata/plate_1.gcode"}


def running(tracker: JobTracker, identity: dict) -> None:
    state = {**identity, "gcode_state": "RUNNING", "mc_percent": 40}
    tracker.observe(state, state, T0)


def test_end_state_of_another_job_ends_ours_unseen_and_takes_nothing_from_it():
    """Logger away while job A finished and job B ran and finished: the first report back is B's FINISH."""
    tracker = JobTracker("SER1", "bay 1")
    running(tracker, CLOUD_A)
    report = {**CLOUD_B, "gcode_state": "FINISH", "mc_percent": 100}
    events = tracker.observe(report, report, T0 + timedelta(hours=3))
    assert [(e.kind, e.from_status, e.to_status) for e in events] == [("end", "running", "aborted")]
    job = events[0].job
    assert job.job_key == "700000002" and job.identity["subtask_name"] == "Bracket"
    assert job.progress_pct == 40, "B's progress is not A's"
    assert "end not seen" in job.fail_reason
    # B's sticky FINISH, re-delivered, adds nothing; B's successor starts normally
    assert tracker.observe(report, {}, T0 + timedelta(hours=3, seconds=5)) == []
    nxt = {"task_id": "700000021", "subtask_id": "700000022", "subtask_name": "Knob", "gcode_state": "PREPARE"}
    started = tracker.observe({**report, **nxt}, nxt, T0 + timedelta(hours=4))
    assert started[0].kind == "start" and started[0].job.job_key == "700000022"


def test_own_end_state_completes_the_job():
    tracker = JobTracker("SER1", "bay 1")
    running(tracker, CLOUD_A)
    report = {**CLOUD_A, "gcode_state": "FINISH", "mc_percent": 100}
    events = tracker.observe(report, report, T0 + timedelta(hours=1))
    assert [(e.kind, e.to_status) for e in events] == [("end", "completed")]
    assert events[0].job.progress_pct == 100


def test_lan_job_whose_file_name_was_blanked_still_completes():
    """P1/A1 blank gcode_file after the job (PROTOCOL.md section 7): the name decides for LAN jobs."""
    lan = {"task_id": "0", "subtask_id": "0", "subtask_name": "Fidget", "gcode_file": "fidget.gcode.3mf"}
    tracker = JobTracker("SER1", "bay 1")
    running(tracker, lan)
    report = {**lan, "gcode_file": "", "gcode_state": "FINISH", "mc_percent": 100}
    events = tracker.observe(report, report, T0 + timedelta(hours=1))
    assert [(e.kind, e.to_status) for e in events] == [("end", "completed")]


def test_reused_ids_after_an_ended_job_make_a_new_job_with_a_distinct_key():
    """A restarted printer reuses subtask ids (issue #15 observation 5): the second print with
    the ids of an ended job is a new job, keyed with its start time, never dropped."""
    taken = {"700000002"}
    tracker = JobTracker("SER1", "bay 1", key_taken=lambda serial, key: key in taken)
    running(tracker, CLOUD_A)
    done = {**CLOUD_A, "gcode_state": "FINISH", "mc_percent": 100}
    tracker.observe(done, done, T0 + timedelta(hours=1))
    again = {**CLOUD_A, "gcode_state": "PREPARE", "mc_percent": 0}
    events = tracker.observe(again, again, T0 + timedelta(hours=2))
    assert [e.kind for e in events][:1] == ["start"]
    key = events[0].job.job_key
    assert key == f"700000002-{int((T0 + timedelta(hours=2)).timestamp())}"
    # and a later, different printer-wide collision (store only) is keyed apart as well
    tracker2 = JobTracker("SER1", "bay 1", key_taken=lambda serial, key: key in taken)
    events = tracker2.observe(again, again, T0 + timedelta(hours=3))
    assert events[0].job.job_key.startswith("700000002-")
