"""`python -m ingestion.simulator`: acts as Bambu printers on an MQTT broker.

Each simulated printer publishes its reports on `device/<serial>/report` (full objects for an
X1C, deltas for P1S/A1) and answers a pushall on `device/<serial>/request` with a full
report, as a real printer does. A real printer is its own broker; here a broker such as
mosquitto stands in for it, and the logger subscribes to that broker.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import ssl
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from .scenarios import MIX, SCENARIOS, SimPrinterState, Step, build

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str = "bblp"
    password: str = ""
    ca_file: str | None = None   # None: TLS without verification (like a printer's self-signed cert)
    tls: bool = True


# A real printer keeps reporting while idle (temperatures, wifi); Bambuddy drops a connection that
# stays silent for about a minute ("Connection stale") and reconnects (issue #15 observation 7).
IDLE_REPORT_SECONDS = 10.0


class SimulatedPrinter:
    def __init__(self, broker: BrokerAddress, serial: str, model: str,
                 idle_report_seconds: float | None = IDLE_REPORT_SECONDS):
        self.printer = SimPrinterState(serial, model)
        self.serial = serial
        self._lock = threading.Lock()
        self._last_publish = time.monotonic()
        self._closed = threading.Event()
        self.idle_reports = 0
        self.published = 0
        self.pushalls_answered = 0
        self.connects = 0
        self._connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"sim-{serial}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv311)
        self.client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            if broker.ca_file:
                ctx.load_verify_locations(broker.ca_file)
            else:
                ctx.verify_mode = ssl.CERT_NONE
            self.client.tls_set_context(ctx)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect_async(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        if idle_report_seconds:
            threading.Thread(target=self._report_while_quiet, args=(idle_report_seconds,), daemon=True).start()

    def _report_while_quiet(self, interval: float) -> None:
        """A report when nothing was published for `interval` s: a temperature delta for P1/A1,
        the full state for an X1C (it always sends full objects), as real printers do."""
        tick = 0
        while not self._closed.wait(min(1.0, interval / 4)):
            if time.monotonic() - self._last_publish < interval or not self._connected.is_set():
                continue
            tick += 1
            with self._lock:
                self._publish(self.printer.apply(Step(0, {"bed_temper": 24.0 + tick % 2 * 0.5,
                                                          "wifi_signal": f"-{50 + tick % 3}dBm"})))
                self.idle_reports += 1

    def wait_connected(self, timeout: float = 10) -> None:
        if not self._connected.wait(timeout):
            raise TimeoutError(f"simulated printer {self.serial} could not connect to the broker")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("sim %s: broker refused connection: %s", self.serial, reason_code)
            return
        client.subscribe(f"device/{self.serial}/request", qos=1)
        self.connects += 1
        # A printer also pushes its full state on its own; doing it on every (re)connect means a
        # logger that reconnected first (and whose pushall found nobody) still gets a full report.
        with self._lock:
            self._publish(self.printer.full_report())
        self._connected.set()

    def _on_message(self, client, userdata, message) -> None:
        try:
            request = json.loads(message.payload)
        except ValueError:
            return
        if request.get("pushing", {}).get("command") == "pushall":
            with self._lock:
                self._publish(self.printer.full_report())
                self.pushalls_answered += 1

    def _publish(self, report: dict) -> None:
        self.client.publish(f"device/{self.serial}/report", json.dumps(report), qos=0)
        self.published += 1
        self._last_publish = time.monotonic()

    def send(self, step: Step) -> None:
        with self._lock:
            self._publish(self.printer.apply(step))

    def publish_raw(self, payload: bytes) -> None:
        self.client.publish(f"device/{self.serial}/report", payload, qos=0)

    def play(self, steps: list[Step], speed: float, stop: threading.Event | None = None) -> None:
        for step in steps:
            if stop is not None and stop.wait(step.after / speed):
                return
            if stop is None:
                time.sleep(step.after / speed)
            self.send(step)

    def close(self) -> None:
        self._closed.set()
        self.client.disconnect()
        self.client.loop_stop()


class Simulator:
    """A set of simulated printers on one broker."""

    def __init__(self, broker: BrokerAddress):
        self.broker = broker
        self.printers: dict[str, SimulatedPrinter] = {}

    def add(self, serial: str, model: str,
            idle_report_seconds: float | None = IDLE_REPORT_SECONDS) -> SimulatedPrinter:
        printer = SimulatedPrinter(self.broker, serial, model, idle_report_seconds)
        self.printers[serial] = printer
        return printer

    def run(self, plan: dict[str, list[str]], speed: float = 600.0, repeat: int = 1,
            stop: threading.Event | None = None) -> None:
        """plan: serial -> scenario names, played one after another; printers run in parallel."""
        def worker(serial: str, names: list[str]) -> None:
            printer = self.printers[serial]
            for _ in range(repeat):
                for name in names:
                    printer.play(build(name, printer.printer.model), speed, stop)
        threads = [threading.Thread(target=worker, args=(s, n), daemon=True) for s, n in plan.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def close(self) -> None:
        for printer in self.printers.values():
            printer.close()


def default_fleet(count: int) -> list[tuple[str, str]]:
    models = ["X1C", "P1S", "A1"]
    return [(f"SIM{models[i % 3]}{i:04d}", models[i % 3]) for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="printfarm-simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8883)
    parser.add_argument("--username", default="bblp")
    parser.add_argument("--password", default="", help="the broker password (a printer's access code)")
    parser.add_argument("--cafile", help="CA certificate to verify the broker (default: no verification)")
    parser.add_argument("--no-tls", action="store_true", help="plain MQTT (only for brokers without TLS)")
    parser.add_argument("--printers", type=int, default=3, help="number of printers (models X1C, P1S, A1 in turn)")
    parser.add_argument("--scenario", default="mix", help=f"mix or one of: {', '.join(SCENARIOS)}")
    parser.add_argument("--speed", type=float, default=600.0, help="time factor (600: a 2 h print takes 12 s)")
    parser.add_argument("--count", type=int, default=1, help="how many times to play the scenarios")
    parser.add_argument("--forever", action="store_true",
                        help="keep playing the scenarios (completed, failed, cancelled, reprints) until SIGTERM/SIGINT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.scenario != "mix" and args.scenario not in SCENARIOS:
        parser.error(f"unknown scenario {args.scenario!r}")
    sim = Simulator(BrokerAddress(args.host, args.port, args.username, args.password, args.cafile, not args.no_tls))
    plan = {}
    for serial, model in default_fleet(args.printers):
        sim.add(serial, model).wait_connected()
        plan[serial] = MIX[model] if args.scenario == "mix" else [args.scenario]
    log.info("simulating %d printer(s): %s", len(plan), ", ".join(plan))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        # Task ids keep counting up across loops, as on a real printer; idle reports continue between.
        while not stop.is_set():
            sim.run(plan, speed=args.speed, repeat=args.count, stop=stop)
            if not args.forever:
                break
    finally:
        time.sleep(0.5)  # let the last reports leave
        sim.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
