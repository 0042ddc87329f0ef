"""MQTT-side faults: a printer that falls asleep mid-print and comes back finished, and a logger
killed with -9 in the middle of a flood of reports while jobs end. Every job is recorded once,
with the right status and the end time at which the logger first saw the end state.
Protocol facts from tests/contracts/mqtt/PROTOCOL.md (section 9: a sleeping printer is
silent, no last-will; sticky FINISH/FAILED re-delivered on every pushall); the reports are the
simulator's, built from tests/contracts/mqtt/samples/. Broker: real mosquitto, TLS + password.
"""

import signal
import sqlite3
import threading
import time
from datetime import datetime, timezone

from ingestion.config import LoggerSettings, PrinterConfig
from ingestion.logger import LoggerService
from ingestion.scenarios import CANCEL_CODE, Job, Step, finish_steps, progress_steps, start_steps
from tests.ingestion.conftest import broker, jobs, simulator, wait_until  # noqa: F401 (fixtures)
from tests.ingestion.test_resilience import start_logger_process, stop_process

from .link import SleepyLink


def parse(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def transitions(db) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT printer_serial, job_key, from_status, to_status FROM raw_job_transitions"
                            " ORDER BY id").fetchall()
    finally:
        conn.close()


def test_printer_asleep_mid_print_comes_back_finished(broker, simulator, tmp_path):  # noqa: F811
    """The link goes half-open (bytes vanish, nothing closes, reconnects fail) for several keep-alive
    periods while the printer finishes; the logger notices by its keep-alive, keeps retrying, and
    records the end once when the printer answers again."""
    job = Job("Asleep", ticks=6)
    printer = simulator.add("P1S-ASLEEP", "P1S")
    printer.wait_connected()
    link = SleepyLink((broker.host, broker.port))
    db = tmp_path / "print_history.db"
    settings = LoggerSettings(
        printers=(PrinterConfig(printer.serial, "127.0.0.1", broker.password, name="asleep", port=link.port,
                                ca_file=str(broker.ca_file)),),
        db_path=db, heartbeat_interval=0.5, keepalive=2)  # 2 s stands for the 30 s default
    service = LoggerService(settings)
    runtime = service.printers[printer.serial]
    service.start()
    try:
        wait_until(lambda: printer.pushalls_answered >= 1, what="first pushall")
        for step in start_steps(job) + progress_steps(job, 0.5):
            printer.send(step)
        wait_until(lambda: jobs(db) and jobs(db)[0]["status"] == "running", what="job running")
        started_at = jobs(db)[0]["started_at"]

        link.sleep()
        wait_until(lambda: not runtime.connected, timeout=20, what="logger noticing the dead link")
        for step in progress_steps(job)[3:] + finish_steps(job):
            printer.send(step)  # reaches the broker, never the sleeping link
        wait_until(lambda: link.refused >= 2, timeout=30, what="reconnects failing while asleep")
        assert jobs(db)[0]["ended_at"] is None, "nothing invented while the printer was silent"

        woke = datetime.now(timezone.utc)
        link.wake()
        wait_until(lambda: jobs(db)[0]["ended_at"], timeout=60, what="end recorded after wake-up")
        time.sleep(0.5)  # a second pushall or full report must not add anything
    finally:
        service.stop()
        link.close()
    rows = jobs(db)
    assert len(rows) == 1
    row = rows[0]
    assert (row["status"], row["progress_pct"], row["started_at"]) == ("completed", 100, started_at)
    assert parse(row["ended_at"]) >= woke, "the end is when the logger first saw FINISH"
    ends = [t for t in transitions(db) if t[3] == "completed"]
    assert ends == [(printer.serial, row["job_key"], "running", "completed")]
    assert runtime.connects >= 2


def flood(printer, stop: threading.Event, counter: list[int]) -> None:
    """Mid-print deltas as fast as the client takes them (temperatures and layer ticks)."""
    i = 0
    while not stop.is_set():
        i += 1
        printer.send(Step(0, {"bed_temper": 55.0 + (i % 10) / 10, "layer_num": i % 120,
                              "mc_percent": min(95, 40 + i % 50)}))
        counter[0] += 1


ENDINGS = {  # printer -> (model, last steps, expected status)
    "FLOOD-X1C": ("X1C", [Step(0, {"gcode_state": "FINISH", "mc_percent": 100, "mc_remaining_time": 0})],
                  "completed"),
    "FLOOD-P1S": ("P1S", [Step(0, {"gcode_state": "FINISH", "mc_percent": 100, "mc_remaining_time": 0})],
                  "completed"),
    "FLOOD-A1": ("A1", [Step(0, {"print_error": 0x07008011}),
                        Step(0, {"gcode_state": "FAILED", "fail_reason": str(0x07008011)})], "failed"),
    "FLOOD-P1S-2": ("P1S", [Step(0, {"print_error": CANCEL_CODE}), Step(0, {"gcode_state": "FAILED"})],
                  "cancelled"),
}


def test_logger_killed_mid_flood_jobs_end_while_down_and_mid_batch(broker, simulator, tmp_path):  # noqa: F811
    db = tmp_path / "print_history.db"
    printers = {s: simulator.add(s, model) for s, (model, _, _) in ENDINGS.items()}
    for p in printers.values():
        p.wait_connected()
    proc = start_logger_process(tmp_path, broker, list(printers))
    try:
        wait_until(lambda: all(p.pushalls_answered for p in printers.values()), what="first pushalls")

        # Round 1: jobs running under a flood; kill -9 mid-batch; the jobs end while the logger is down.
        for s, p in printers.items():
            for step in start_steps(Job(f"round1 {s}")):
                p.send(step)
        stop, counters = threading.Event(), {s: [0] for s in printers}
        threads = [threading.Thread(target=flood, args=(p, stop, counters[s])) for s, p in printers.items()]
        for t in threads:
            t.start()
        wait_until(lambda: len(jobs(db)) == 4 and all(r["status"] == "running" for r in jobs(db)),
                   what="four jobs running")
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(0.5)  # the flood goes on with nobody listening
        stop.set()
        for t in threads:
            t.join()
        assert sum(c[0] for c in counters.values()) > 1000, "a real flood was running"
        before = {r["printer_serial"]: r for r in jobs(db)}
        assert all(r["ended_at"] is None for r in before.values())
        for s, p in printers.items():
            for step in ENDINGS[s][1]:
                p.send(step)
        restarted = datetime.now(timezone.utc)
        proc = start_logger_process(tmp_path, broker, list(printers))
        wait_until(lambda: all(r["ended_at"] for r in jobs(db)), timeout=30, what="round 1 ends recorded")

        # Round 2: new jobs, the flood again, and the end states sent right before a kill -9, so
        # they may sit in the batch that dies with the process.
        for s, p in printers.items():
            for step in [Step(0, {"print_error": 0})] + start_steps(Job(f"round2 {s}")):
                p.send(step)
        wait_until(lambda: len(jobs(db)) == 8, what="round 2 jobs started")
        stop = threading.Event()
        threads = [threading.Thread(target=flood, args=(p, stop, counters[s])) for s, p in printers.items()]
        for t in threads:
            t.start()
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join()
        ended_sent = datetime.now(timezone.utc)
        for s, p in printers.items():
            for step in ENDINGS[s][1]:
                p.send(step)
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = start_logger_process(tmp_path, broker, list(printers))
        wait_until(lambda: len(jobs(db)) == 8 and all(r["ended_at"] for r in jobs(db)), timeout=30,
                   what="round 2 ends recorded")
        time.sleep(1.0)  # re-delivered sticky end states must add nothing
        code, out = stop_process(proc)
        assert code == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()

    rows = jobs(db)
    assert len(rows) == 8, "each job once"
    assert len({(r["printer_serial"], r["job_key"]) for r in rows}) == 8
    for r in rows:
        expected = ENDINGS[r["printer_serial"]][2]
        assert r["status"] == expected, (r["subtask_name"], r["status"])
        assert parse(r["ended_at"]) >= parse(r["started_at"])
    for r in rows:
        if r["subtask_name"].startswith("round1"):
            assert r["started_at"] == before[r["printer_serial"]]["started_at"], "the restart kept the job open"
            assert parse(r["ended_at"]) >= restarted, "ended when first seen, after the restart"
        else:
            assert parse(r["ended_at"]) >= ended_sent
    ends = [t for t in transitions(db) if t[3] in ("completed", "failed", "cancelled")]
    assert len(ends) == 8 and len(set(ends)) == 8, "one end transition per job"
