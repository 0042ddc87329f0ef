"""Job lifecycle of one printer, derived from its merged state (no I/O here).

PROTOCOL.md sections 5-7: a job starts when the printer leaves IDLE/FINISH/FAILED for
PREPARE/RUNNING; it ends on FINISH (completed), FAILED (failed, or cancelled when the
"task was cancelled" error was latched while it ran) or RUNNING/PAUSE -> IDLE (aborted).
FINISH and FAILED are sticky and re-delivered on every pushall, so ending is idempotent:
only an open job is closed, and a sticky end state for a job we already know is ignored.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from .protocol import active_tray, as_int

# print_error values that mean "the user cancelled" (0x0300400C "task was cancelled", and the
# same code reported by the AMS/print-head module on newer firmware).
CANCEL_ERROR_CODES = frozenset({0x0300400C, 0x0500400E})
STARTING_STATES = {"PREPARE", "RUNNING", "SLICING"}
LIVE_STATUSES = ("preparing", "running", "paused")
STATUS_BY_STATE = {"PREPARE": "preparing", "SLICING": "preparing", "RUNNING": "running", "PAUSE": "paused"}
IDENTITY_FIELDS = ("task_id", "subtask_id", "project_id", "profile_id", "subtask_name", "gcode_file")


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def job_key(identity: dict[str, str], started: datetime) -> str:
    """DESIGN.md "MQTT job key": subtask_id, else task_id, else a key minted at job start."""
    subtask = identity.get("subtask_id", "")
    if subtask not in ("", "0", "-1"):
        return subtask
    task = identity.get("task_id", "")
    if task not in ("", "0"):
        return task
    digest = hashlib.sha1(f"{identity.get('subtask_name', '')}|{identity.get('gcode_file', '')}".encode()).hexdigest()
    return f"lan:{int(started.timestamp())}:{digest[:8]}"


def identity_of(state: dict[str, Any]) -> dict[str, str]:
    return {f: _s(state.get(f)) for f in IDENTITY_FIELDS}


def same_job(identity: dict[str, str], other: dict[str, str]) -> bool:
    """Is the printer still on this job? Ids decide when the job has them; for LAN/SD jobs the
    name does (gcode_file may be blanked by later deltas, PROTOCOL.md section 7)."""
    for f in ("subtask_id", "task_id"):
        if identity.get(f, "") not in ("", "0", "-1") or other.get(f, "") not in ("", "0", "-1"):
            return identity.get(f) == other.get(f)
    return identity.get("subtask_name", "") == other.get("subtask_name", "")


@dataclass
class Job:
    printer_serial: str
    printer_name: str
    job_key: str
    identity: dict[str, str]
    status: str
    started_at: str
    print_type: str = ""
    gcode_state: str = ""
    ended_at: str | None = None
    progress_pct: int | None = None
    layer_num: int | None = None
    total_layers: int | None = None
    print_error: int | None = None
    error_codes: list[int] = field(default_factory=list)
    fail_reason: str | None = None
    filament_type: str | None = None
    filament_color: str | None = None
    tray_id: str | None = None
    remaining_min: int | None = None
    # The printer's merged state, rendered to JSON only when the row is written (once per
    # batch, not per message); frozen by copy when the job ends.
    state: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ended(self) -> bool:
        return self.status not in LIVE_STATUSES

    def row(self, updated_at: str) -> dict[str, Any]:
        return {
            "printer_serial": self.printer_serial, "printer_name": self.printer_name, "job_key": self.job_key,
            **self.identity, "print_type": self.print_type, "status": self.status,
            "gcode_state": self.gcode_state, "started_at": self.started_at, "ended_at": self.ended_at,
            "progress_pct": self.progress_pct, "layer_num": self.layer_num, "total_layers": self.total_layers,
            "print_error": self.print_error, "error_codes": json.dumps(self.error_codes),
            "fail_reason": self.fail_reason, "filament_type": self.filament_type,
            "filament_color": self.filament_color, "tray_id": self.tray_id,
            "remaining_min": self.remaining_min,
            "last_state_json": json.dumps(self.state, separators=(",", ":"), sort_keys=True),
            "updated_at": updated_at,
        }


@dataclass(frozen=True)
class JobEvent:
    """What the tracker tells the store: the job's current row, and a transition if any."""

    job: Job
    from_status: str | None = None
    to_status: str | None = None
    at: str | None = None
    kind: str = "update"  # start / update / transition / end


# Looks a job up in the store: (serial, identity) -> known? Used for sticky end states seen
# with no open job (logger start-up), so a re-delivered FINISH never becomes a phantom job.
KnownJobLookup = Callable[[str, dict[str, str], str], bool]
# Is (serial, job_key) already held by an ended job? Printers reuse ids (a restarted simulator,
# a LAN task counter): a new job must then get a distinct key, or its row would be lost.
KeyTakenLookup = Callable[[str, str], bool]


class JobTracker:
    """Follows one printer's jobs. Feed it merged states; it returns the events to persist."""

    def __init__(self, serial: str, name: str, open_job: Job | None = None,
                 known_job: KnownJobLookup | None = None, key_taken: KeyTakenLookup | None = None):
        self.serial = serial
        self.key_taken = key_taken or (lambda serial, key: False)
        self.name = name
        self.job = open_job
        self.known_job = known_job or (lambda serial, identity, status: False)
        self.last_state: str | None = open_job.gcode_state if open_job else None
        self._latched_error = open_job.print_error if open_job else None

    def observe(self, state: dict[str, Any], delta: dict[str, Any], received: datetime) -> list[JobEvent]:
        """All or nothing: if a report breaks the model half-way (the logger then quarantines it),
        the tracker is put back as it was, so no job is left ended or started without its row."""
        job = self.job
        saved = (job, self.last_state, self._latched_error,
                 None if job is None else {**vars(job), "identity": dict(job.identity),
                                           "error_codes": list(job.error_codes)})
        try:
            return self._observe(state, delta, received)
        except Exception:
            self.job, self.last_state, self._latched_error, fields = saved
            if job is not None:
                vars(job).update(fields)
            raise

    def _observe(self, state: dict[str, Any], delta: dict[str, Any], received: datetime) -> list[JobEvent]:
        events: list[JobEvent] = []
        gstate = _s(state.get("gcode_state")).upper()
        error = as_int(delta.get("print_error"))
        if error and self.job is not None and not self.job.ended:
            self._latched_error = error  # the cancel code is reset to 0 seconds later: latch it
        now = iso(received)
        if gstate and self.job is not None and not self.job.ended:
            self.job.gcode_state = gstate

        if gstate in STARTING_STATES or (gstate == "PAUSE" and self.job is not None and not self.job.ended):
            identity = identity_of(state)
            if self.job is not None and not self.job.ended and not same_job(self.job.identity, identity):
                # A new job while ours is open: we missed its end (disconnect, fast start).
                events.append(self._end("aborted", now, "new job started before an end state was seen"))
            if self.job is None or self.job.ended:
                # Never start a job from a pause we did not see begin. A start after an end is a
                # new job even when the printer reuses the ended job's ids (_start keys it apart).
                if gstate != "PAUSE":
                    events.append(self._start(state, identity, received))
            if self.job is not None and not self.job.ended:
                new_status = STATUS_BY_STATE.get(gstate, self.job.status)
                self._absorb(state)
                if new_status != self.job.status:
                    old = self.job.status
                    self.job.status = new_status
                    events.append(JobEvent(self.job, old, new_status, now, "transition"))
                else:
                    events.append(JobEvent(self.job))
        elif gstate in ("FINISH", "FAILED"):
            if self.job is not None and not self.job.ended and not same_job(self.job.identity, identity_of(state)):
                # Another job's end state: the printer finished ours and ran the next while nobody
                # listened. Ours ended unseen; nothing of the other job's report goes into its row.
                events.append(self._end("aborted", now, "end not seen: the printer reported another job's end"))
            elif self.job is not None and not self.job.ended:
                self._absorb(state)
                status = "completed" if gstate == "FINISH" else self._failure_status(state)
                events.append(self._end(status, now, self._fail_reason(state, status)))
            elif self.last_state is None or self.job is None:
                # A sticky end state seen with no open job (typically at start-up).
                events.extend(self._ended_unseen(state, gstate, received))
        elif gstate == "IDLE":
            if self.job is not None and not self.job.ended:
                events.append(self._end("aborted", now, "printer went IDLE without FINISH/FAILED"))
        if gstate:
            self.last_state = gstate
        return events

    # --- helpers -----------------------------------------------------------------------
    def _start(self, state: dict[str, Any], identity: dict[str, str], received: datetime) -> JobEvent:
        started = received
        printer_start = as_int(state.get("gcode_start_time"))
        if printer_start and printer_start > 1_500_000_000:
            try:
                started = datetime.fromtimestamp(printer_start, tz=timezone.utc)
            except (ValueError, OverflowError, OSError):
                pass  # a start time no calendar holds (year > 9999): keep the arrival time
        gstate = _s(state.get("gcode_state")).upper()
        key = job_key(identity, started)
        if self.job is not None and key == self.job.job_key and key.startswith("lan:"):
            # Two LAN jobs of one file started within a second: keep the minted keys apart.
            started = started + timedelta(seconds=1)
            key = job_key(identity, started)
        elif not key.startswith("lan:") and (
                (self.job is not None and self.job.job_key.split("-")[0] == key) or self.key_taken(self.serial, key)):
            # Reused printer ids: the earlier job keeps its key, this one gets its start time.
            key = f"{key}-{int(started.timestamp())}"
        self.job = Job(self.serial, self.name, key, identity,
                       STATUS_BY_STATE.get(gstate, "running"), iso(started),
                       print_type=_s(state.get("print_type")), gcode_state=gstate)
        self._latched_error = None
        self._absorb(state)
        return JobEvent(self.job, None, self.job.status, iso(received), "start")

    def _absorb(self, state: dict[str, Any]) -> None:
        job = self.job
        assert job is not None
        job.progress_pct = as_int(state.get("mc_percent"))
        job.layer_num = as_int(state.get("layer_num"))
        job.total_layers = as_int(state.get("total_layer_num"))
        job.remaining_min = as_int(state.get("mc_remaining_time"))
        for code in (as_int(state.get("print_error")), as_int(state.get("mc_print_error_code")),
                     self._latched_error):
            if code and code not in job.error_codes:
                job.error_codes.append(code)
        for h in state.get("hms") or []:
            if isinstance(h, dict):
                code = as_int(h.get("code"))
                if code and code not in job.error_codes:
                    job.error_codes.append(code)
        if self._latched_error:
            job.print_error = self._latched_error
        tray = active_tray(state)
        if tray:
            job.filament_type = _s(tray.get("tray_type")) or job.filament_type
            job.filament_color = _s(tray.get("tray_color")) or job.filament_color
            job.tray_id = _s(tray.get("id")) or job.tray_id
        if not job.identity.get("gcode_file") and state.get("gcode_file"):
            job.identity["gcode_file"] = _s(state.get("gcode_file"))
        job.state = state

    def _failure_status(self, state: dict[str, Any]) -> str:
        codes = {self._latched_error, as_int(state.get("print_error"))}
        return "cancelled" if codes & CANCEL_ERROR_CODES else "failed"

    @staticmethod
    def _fail_reason(state: dict[str, Any], status: str) -> str | None:
        if status == "cancelled":
            return "cancelled by user"
        if status == "failed":
            reason = _s(state.get("fail_reason"))
            return reason if reason not in ("", "0") else None
        return None

    def _end(self, status: str, now: str, reason: str | None) -> JobEvent:
        job = self.job
        assert job is not None
        old = job.status
        job.status = status
        job.ended_at = now
        job.state = copy.deepcopy(job.state)
        job.fail_reason = reason if status != "completed" else None
        if status == "completed":
            job.progress_pct = 100 if job.progress_pct is None else job.progress_pct
        return JobEvent(job, old, status, now, "end")

    def _ended_unseen(self, state: dict[str, Any], gstate: str, received: datetime) -> list[JobEvent]:
        identity = identity_of(state)
        if not any(identity.get(f) for f in ("subtask_name", "gcode_file")) and \
                identity.get("subtask_id", "") in ("", "0") and identity.get("task_id", "") in ("", "0"):
            return []  # nothing that identifies a job
        status = "completed" if gstate == "FINISH" else self._failure_status(state)
        if self.known_job(self.serial, identity, status):
            # Re-delivered end state of a job we know: remember it so later reports are quiet.
            self.job = Job(self.serial, self.name, job_key(identity, received), identity, status,
                           iso(received), gcode_state=gstate, ended_at=iso(received))
            return []
        self.job = Job(self.serial, self.name, job_key(identity, received), identity, "running", iso(received),
                       print_type=_s(state.get("print_type")), gcode_state=gstate)
        self._absorb(state)
        start = JobEvent(self.job, None, "running", iso(received), "start")
        end = self._end(status, iso(received), self._fail_reason(state, status))
        return [start, end]


def restore_job(row: dict[str, Any]) -> Job:
    """Rebuild an open job from its stored row (logger restart mid-print)."""
    identity = {f: _s(row.get(f)) for f in IDENTITY_FIELDS}
    job = Job(row["printer_serial"], row.get("printer_name") or "", row["job_key"], identity, row["status"],
              row["started_at"], print_type=_s(row.get("print_type")), gcode_state=_s(row.get("gcode_state")),
              ended_at=row.get("ended_at"), progress_pct=row.get("progress_pct"), layer_num=row.get("layer_num"),
              total_layers=row.get("total_layers"), print_error=row.get("print_error"),
              error_codes=json.loads(row.get("error_codes") or "[]"), fail_reason=row.get("fail_reason"),
              filament_type=row.get("filament_type"), filament_color=row.get("filament_color"),
              tray_id=row.get("tray_id"), remaining_min=row.get("remaining_min"),
              state=json.loads(row.get("last_state_json") or "{}"))
    return job


