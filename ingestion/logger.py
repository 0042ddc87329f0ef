"""The logger service: N printer connections feeding one processing thread.

Network threads only enqueue raw payloads. One thread parses, merges, follows jobs and writes
in small batches (every `flush_interval` or `max_batch` messages, one transaction), so no
state transition is ever throttled away and SQLite has a single writer.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .config import LoggerSettings, PrinterConfig
from .job import Job, JobTracker, iso
from .printer import PrinterConnection
from .protocol import BadPayload, is_full_report, is_status_report, merge_report, parse_report
from .store import JobStore, truncate_payload

log = logging.getLogger(__name__)
_STOP = object()


@dataclass
class PrinterRuntime:
    config: PrinterConfig
    tracker: JobTracker
    state: dict[str, Any]
    have_full: bool = False
    connected: bool = False
    connects: int = 0
    messages: int = 0
    quarantined: int = 0
    last_message_at: str | None = None


class LoggerService:
    def __init__(self, settings: LoggerSettings, *, connect: bool = True):
        self.settings = settings
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.store = JobStore(settings.db_path)
        self.printers: dict[str, PrinterRuntime] = {}
        for p in settings.printers:
            tracker = JobTracker(p.serial, p.display_name, self.store.open_job(p.serial), self.store.known_job,
                                 self.store.key_taken)
            self.printers[p.serial] = PrinterRuntime(p, tracker, {})
        self.connections = ([PrinterConnection(p, self.deliver, settings.keepalive) for p in settings.printers]
                            if connect else [])
        self._thread = threading.Thread(target=self._run, name="logger-writer", daemon=True)
        self._stopped = threading.Event()
        self.processed = 0
        self.transitions_written = 0

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        for conn in self.connections:
            conn.start()
        log.info("logger started for %d printer(s), writing %s", len(self.printers), self.settings.db_path)

    def stop(self) -> None:
        """Disconnect, then flush everything received so far and close the database."""
        for conn in self.connections:
            conn.stop()
        self.inbox.put(_STOP)
        self._thread.join(timeout=30)
        self._stopped.set()
        log.info("logger stopped; %d messages processed", self.processed)

    @property
    def writer_alive(self) -> bool:
        return self._thread.is_alive()

    def deliver(self, serial: str, kind: str, payload: bytes, received: datetime) -> None:
        self.inbox.put((serial, kind, payload, received))

    # --- processing thread -------------------------------------------------------------
    def _run(self) -> None:
        next_heartbeat = 0.0
        try:
            while True:
                batch, stop = self._collect()
                dirty: dict[int, Job] = {}
                transitions: list[tuple] = []
                quarantine: list[tuple] = []
                for item in batch:
                    self._handle(item, dirty, transitions, quarantine)
                heartbeats: list[tuple] = []
                now_mono = time.monotonic()
                if now_mono >= next_heartbeat or stop:
                    heartbeats = self._heartbeats()
                    next_heartbeat = now_mono + self.settings.heartbeat_interval
                if dirty or transitions or quarantine or heartbeats:
                    self.store.write_batch(dirty.values(), transitions, quarantine, heartbeats,
                                           iso(datetime.now(timezone.utc)))
                    self.transitions_written += len(transitions)
                if heartbeats:
                    self._touch_heartbeat_file()
                if stop:
                    break
        except Exception:  # never silently: the process exits non-zero and the healthcheck fails
            log.exception("logger writer thread crashed")
            raise
        finally:
            self.store.close()

    def _collect(self) -> tuple[list, bool]:
        """Block for the first item, then take what arrives within flush_interval (or max_batch)."""
        batch: list = []
        try:
            first = self.inbox.get(timeout=self.settings.heartbeat_interval)
        except queue.Empty:
            return batch, False
        if first is _STOP:
            return self._drain(batch), True
        batch.append(first)
        deadline = time.monotonic() + self.settings.flush_interval
        while len(batch) < self.settings.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self.inbox.get(timeout=remaining)
            except queue.Empty:
                break
            if item is _STOP:
                return self._drain(batch), True
            batch.append(item)
        return batch, False

    def _drain(self, batch: list) -> list:
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return batch
            if item is not _STOP:
                batch.append(item)

    def _handle(self, item: tuple, dirty: dict[int, Job], transitions: list[tuple], quarantine: list[tuple]) -> None:
        serial, kind, payload, received = item
        rt = self.printers[serial]
        if kind == "connected":
            rt.connected, rt.have_full = True, False  # decide nothing from deltas until a full report
            rt.connects += 1
            return
        if kind == "disconnected":
            rt.connected = False
            return
        self.processed += 1
        rt.messages += 1
        rt.last_message_at = iso(received)
        try:
            data = parse_report(payload)
        except BadPayload as exc:
            rt.quarantined += 1
            quarantine.append((serial, rt.config.report_topic, iso(received), str(exc), truncate_payload(payload)))
            log.warning("printer %s: message quarantined: %s", rt.config.display_name, exc)
            return
        if not is_status_report(data):
            return  # info/get_version and other modules carry nothing about jobs
        report = data["print"]
        merge_report(rt.state, report)
        if is_full_report(report):
            rt.have_full = True
        if not rt.have_full:
            return
        try:
            events = rt.tracker.observe(rt.state, report, received)
        except (TypeError, ValueError, AttributeError) as exc:
            # A shape the model does not expect (wrong nested types): keep the payload, go on.
            rt.quarantined += 1
            quarantine.append((serial, rt.config.report_topic, iso(received),
                               f"unusable report: {type(exc).__name__}: {exc}", truncate_payload(payload)))
            return
        for event in events:
            dirty[id(event.job)] = event.job
            if event.to_status is not None:
                transitions.append((serial, event.job.job_key, event.from_status, event.to_status, event.at))
            if event.kind == "start":
                log.info("printer %s: job %s started (%s)", rt.config.display_name, event.job.job_key,
                         event.job.identity.get("subtask_name") or "unnamed")
            elif event.kind == "end":
                log.info("printer %s: job %s ended: %s", rt.config.display_name, event.job.job_key, event.to_status)

    def _heartbeats(self) -> list[tuple]:
        now = iso(datetime.now(timezone.utc))
        return [(s, rt.config.display_name, int(rt.connected), rt.state.get("gcode_state"), rt.last_message_at,
                 now, rt.messages, rt.quarantined) for s, rt in self.printers.items()]

    def _touch_heartbeat_file(self) -> None:
        try:
            self.settings.heartbeat_file.write_text(iso(datetime.now(timezone.utc)) + "\n")
        except OSError as exc:
            log.warning("cannot write heartbeat file %s: %s", self.settings.heartbeat_file, exc)
