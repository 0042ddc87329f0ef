"""Feeds the Bambuddy stand-in from the printers' MQTT reports, as the real Bambuddy does when it
watches the printers: every job that ends becomes an archive run (a reprint of the same file
reuses its archive, as Bambuddy's reprint does). Demo and benchmark use only."""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
from datetime import datetime, timezone

import paho.mqtt.client as mqtt

from ingestion.job import JobTracker
from ingestion.protocol import BadPayload, is_full_report, merge_report, parse_report

from .bambuddy import FakeBambuddy


class BambuddyBridge:
    def __init__(self, fake: FakeBambuddy, host: str, port: int, username: str, password: str,
                 ca_file: str | None = None):
        self.fake = fake
        self.states: dict[str, dict] = {}
        self.trackers: dict[str, JobTracker] = {}
        self.ready: set[str] = set()
        self.ended = 0
        self._lock = threading.Lock()
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
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

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
                if event.kind == "end":
                    self._record(serial, event.job)

    def _record(self, serial: str, job) -> None:
        name = job.identity.get("subtask_name") or "Unnamed print"
        filename = f"{name.lower().replace(' ', '_')}.gcode.3mf"
        existing = next((a for a in self.fake.archives.values() if a["print_name"] == name
                         and a["printer_id"] == self._printer_id(serial)), None)
        if existing is None:
            existing = self.fake.add_archive(printer_id=self._printer_id(serial), print_name=name, filename=filename,
                                             content_hash=hashlib.sha256(name.encode()).hexdigest(),
                                             filament_used_grams=round(5 + len(name) * 1.7, 1),
                                             print_time_seconds=1800 + 60 * len(name),
                                             filament_type=job.filament_type or "PLA",
                                             filament_color=f"#{(job.filament_color or 'FF0000FF')[:6]}")
        # Bambuddy stores naive UTC times; the run's times are the printer's, so MQTT jobs match it
        self.fake.add_run(existing["id"], status=job.status, minutes=30, started_at=job.started_at[:19],
                          completed_at=(job.ended_at or job.started_at)[:19],
                          failure_reason=job.fail_reason if job.status != "completed" else None)
        self.ended += 1


def describe(fake: FakeBambuddy) -> str:
    return json.dumps([{k: a[k] for k in ("id", "print_name", "status", "run_count", "external_url")}
                       for a in fake.archives.values()], indent=1)
