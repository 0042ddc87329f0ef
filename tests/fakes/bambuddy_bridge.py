"""Feeds the Bambuddy stand-in from the printers' MQTT reports, as the real Bambuddy does when it
watches the printers: every job that ends becomes an archive run (a reprint of the same file
reuses its archive, as Bambuddy's reprint does). Demo and benchmark use only.

With `lag` (BambuddyLag) it behaves as issue #15 recorded from a real Bambuddy 1.2.5.2 at
slicer-like speed, instead of archiving at once:
- the archive appears only after Bambuddy fetched the 3MF over FTP (ftp=True, a few seconds), or,
  when FTP fails, after 60-190 s of retries as a fallback archive: filename = the printer's
  gcode_file (/data/Metadata/plate_1.gcode), print_name = the subtask name, no content hash, no
  thumbnail, extra_data.no_3mf_available = true;
- its started_at is the archive's creation (late), and a reprint keeps the first run's start;
- a print that ended before its archive existed is never completed: the archive stays `printing`
  and becomes `aborted` ("Stale - reconciled ...") at Bambuddy's next reconnect;
- the API carries no subtask_id.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import random
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import paho.mqtt.client as mqtt

from ingestion.job import JobTracker
from ingestion.protocol import BadPayload, is_full_report, merge_report, parse_report

from .bambuddy import FakeBambuddy

STALE_REASON = "Stale - reconciled after reconnect (print ended while Bambuddy had no archive)"


@dataclass(frozen=True)
class BambuddyLag:
    ftp: bool | frozenset = False          # FTP works (for these serials); else fallback archives after the retries
    ftp_delay_s: float = 4.0               # 3MF fetched: archive this long after the start
    retry_s: tuple[float, float] = (60, 190)  # FTP retries before the fallback archive
    reconnect_s: tuple[float, float] = (60, 90)  # "Connection stale" reconnects: reconcile then
    time_scale: float = 1.0                # benchmarks run Bambuddy's clock faster
    seed: int = 15


def _naive(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


class BambuddyBridge:
    def __init__(self, fake: FakeBambuddy, host: str, port: int, username: str, password: str,
                 ca_file: str | None = None, lag: BambuddyLag | None = None):
        self.fake = fake
        self.lag = lag
        self.rng = random.Random(lag.seed if lag else 0)
        self.states: dict[str, dict] = {}
        self.trackers: dict[str, JobTracker] = {}
        self.ready: set[str] = set()
        self.ended = 0
        # serial -> [{archive_id, entry_id}] in job order: the ground truth benchmarks check (job
        # keys may repeat on a printer, the order of jobs does not)
        self.truth: dict[str, list[dict]] = {}
        self._open: dict[str, dict] = {}   # serial -> the print Bambuddy is following
        self._lock = threading.RLock()
        self._timers: list = []
        self._seq = itertools.count()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run_timers, daemon=True)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bambuddy-standin-bridge")
        self.client.username_pw_set(username, password)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        if ca_file:
            ctx.load_verify_locations(ca_file)
        else:
            ctx.verify_mode = ssl.CERT_NONE
        self.client.tls_set_context(ctx)
        self.client.on_connect = lambda c, *a: c.subscribe("device/+/report")
        self.client.on_message = self._on_message
        self.client.connect_async(host, port)

    def start(self) -> "BambuddyBridge":
        self._thread.start()
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.client.disconnect()
        self.client.loop_stop()

    # --- timers (Bambuddy's own clock) ------------------------------------------------------
    def _later(self, seconds: float, fn, *args) -> None:
        with self._lock:
            heapq.heappush(self._timers, (time.time() + seconds * self.lag.time_scale, next(self._seq), fn, args))
        self._wake.set()

    def _run_timers(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                due = [heapq.heappop(self._timers) for _ in range(len(self._timers))
                       if self._timers and self._timers[0][0] <= time.time()]
                wait = (self._timers[0][0] - time.time()) if self._timers else 1.0
            for _, _, fn, args in due:
                with self._lock:
                    fn(*args)
            self._wake.wait(max(0.01, min(wait, 1.0)))
            self._wake.clear()

    def pending(self) -> int:
        """Timers not yet fired (archives to create, reconciles to do)."""
        with self._lock:
            return len(self._timers)

    # --- MQTT -------------------------------------------------------------------------------
    def _printer_id(self, serial: str) -> int | None:
        for pid, printer in self.fake.printers.items():
            if printer["serial_number"] == serial:
                return pid
        return None

    def _on_message(self, client, userdata, message) -> None:
        serial = message.topic.split("/")[1]
        try:
            data = parse_report(message.payload)
        except BadPayload:
            return
        report = data.get("print")
        if not isinstance(report, dict):
            return
        with self._lock:
            state = merge_report(self.states.setdefault(serial, {}), report)
            if is_full_report(report):
                self.ready.add(serial)
            if serial not in self.ready:
                return
            tracker = self.trackers.setdefault(serial, JobTracker(serial, serial))
            for event in tracker.observe(state, report, datetime.now(timezone.utc)):
                if self.lag is None:
                    if event.kind == "end":
                        self._record(serial, event.job)
                elif event.kind == "start":
                    self._print_started(serial, event.job)
                elif event.kind == "end":
                    self._print_ended(serial, event.job)

    # --- instant archives (no lag) ------------------------------------------------------------
    def _record(self, serial: str, job) -> None:
        name = job.identity.get("subtask_name") or "Unnamed print"
        existing = self._archive_3mf(serial, name) or self._new_3mf_archive(serial, job, name)
        # Bambuddy stores naive UTC times; the run's times are the printer's, so MQTT jobs match it
        entry = self.fake.add_run(existing["id"], status=job.status, minutes=30, started_at=job.started_at[:19],
                                  completed_at=(job.ended_at or job.started_at)[:19],
                                  failure_reason=job.fail_reason if job.status != "completed" else None)
        self.truth.setdefault(serial, []).append({"archive_id": existing["id"], "entry_id": entry["id"]})
        self.ended += 1

    def _archive_3mf(self, serial: str, name: str) -> dict | None:
        return next((a for a in self.fake.archives.values() if a["print_name"] == name and a["content_hash"]
                     and a["printer_id"] == self._printer_id(serial)), None)

    def _new_3mf_archive(self, serial: str, job, name: str, **fields) -> dict:
        return self.fake.add_archive(printer_id=self._printer_id(serial), print_name=name,
                                     filename=f"{name.lower().replace(' ', '_')}.gcode.3mf",
                                     content_hash=hashlib.sha256(name.encode()).hexdigest(),
                                     filament_used_grams=round(5 + len(name) * 1.7, 1),
                                     print_time_seconds=1800 + 60 * len(name),
                                     filament_type=job.filament_type or "PLA",
                                     filament_color=f"#{(job.filament_color or 'FF0000FF')[:6]}", **fields)

    # --- Bambuddy as recorded (lag) -----------------------------------------------------------
    def _print_started(self, serial: str, job) -> None:
        follow = {"job": job, "archive_id": None, "ended": False, "truth": {}}
        self._open[serial] = follow
        self.truth.setdefault(serial, []).append(follow["truth"])
        delay = self.lag.ftp_delay_s if self._ftp_ok(serial) else self.rng.uniform(*self.lag.retry_s)
        self._later(delay, self._create_archive, serial, follow)

    def _ftp_ok(self, serial: str) -> bool:
        ftp = self.lag.ftp
        return serial in ftp if isinstance(ftp, frozenset) else bool(ftp)

    def _create_archive(self, serial: str, follow: dict) -> None:
        job, now = follow["job"], _naive(time.time())
        name = job.identity.get("subtask_name") or "Unnamed print"
        if self._ftp_ok(serial):
            archive = self._archive_3mf(serial, name)
            if archive is None:
                archive = self._new_3mf_archive(serial, job, name, status="printing", started_at=now, created_at=now)
            else:  # a reprint reuses the row; started_at stays the first run's
                archive.update(status="printing", completed_at=None)
        else:
            archive = self.fake.add_archive(
                thumbnail=None, printer_id=self._printer_id(serial), print_name=name,
                filename=job.identity.get("gcode_file") or "", content_hash=None, file_size=0,
                print_time_seconds=7200, filament_used_grams=None, status="printing", started_at=now,
                created_at=now, extra_data={"no_3mf_available": True})
        follow["archive_id"] = archive["id"]
        if follow["ended"]:
            # the printer already finished: Bambuddy never sees the end; a reconnect reconciles it
            self._later(self.rng.uniform(*self.lag.reconnect_s), self._reconcile, serial, follow)

    def _print_ended(self, serial: str, job) -> None:
        follow = self._open.get(serial)
        if follow is None or follow["job"].job_key != job.job_key:
            return  # Bambuddy was not following this print
        follow["ended"] = True
        if follow["archive_id"] is None:
            return  # no archive yet: _create_archive will leave it printing
        archive = self.fake.archives[follow["archive_id"]]
        status = {"completed": "completed", "failed": "failed", "cancelled": "cancelled"}.get(job.status, "aborted")
        now = time.time()
        started = archive["started_at"]
        minutes = max(0.0, (now - datetime.fromisoformat(started).replace(tzinfo=timezone.utc).timestamp()) / 60)
        entry = self.fake.add_run(archive["id"], status=status, minutes=minutes, started_at=started,
                                  completed_at=_naive(now), failure_reason=job.fail_reason if status != "completed" else None)
        follow["truth"].update(archive_id=archive["id"], entry_id=entry["id"])
        self.ended += 1

    def _reconcile(self, serial: str, follow: dict) -> None:
        archive = self.fake.archives[follow["archive_id"]]
        if archive["status"] != "printing":
            return
        entry = self.fake.add_run(archive["id"], status="aborted", minutes=0, started_at=archive["started_at"],
                                  completed_at=_naive(time.time()), failure_reason=STALE_REASON)
        entry["duration_seconds"] = None
        archive["failure_reason"] = STALE_REASON
        follow["truth"].update(archive_id=archive["id"], entry_id=entry["id"], stale=True)
        self.ended += 1


def describe(fake: FakeBambuddy) -> str:
    return json.dumps([{k: a[k] for k in ("id", "print_name", "status", "run_count", "external_url")}
                       for a in fake.archives.values()], indent=1)
