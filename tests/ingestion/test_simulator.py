"""The simulator as a real printer (issue #15 observation 7): periodic reports while idle (a real
printer is never silent; Bambuddy drops silent connections, "Connection stale") that make no
job, and `--forever` playing a mix until SIGTERM. Report shapes: tests/contracts/mqtt/PROTOCOL.md
(P1/A1 deltas, X1 full objects, sticky end states)."""

import signal
import subprocess
import sys
import time

from ingestion.logger import LoggerService
from ingestion.simulator import SimulatedPrinter

from .conftest import broker_address, jobs, logger_settings, wait_until


def test_idle_printer_reports_periodically_and_makes_no_job(broker, tmp_path):
    db = tmp_path / "print_history.db"
    printers = [SimulatedPrinter(broker_address(broker), serial, model, idle_report_seconds=0.5)
                for serial, model in (("IDLE-P1S", "P1S"), ("IDLE-X1C", "X1C"))]
    for p in printers:
        p.wait_connected()
    service = LoggerService(logger_settings(broker, [p.serial for p in printers], db))
    service.start()
    try:
        wait_until(lambda: all(p.idle_reports >= 3 for p in printers), timeout=20, what="idle reports")
        wait_until(lambda: all(r.messages >= 3 for r in service.printers.values()), timeout=20,
                   what="the logger receiving them")
    finally:
        service.stop()
        for p in printers:
            p.close()
    assert jobs(db) == []


def test_forever_plays_until_sigterm(broker, tmp_path):
    db = tmp_path / "print_history.db"
    serial = "SIMX1C0000"  # default_fleet(1)
    service = LoggerService(logger_settings(broker, [serial], db))
    service.start()
    proc = subprocess.Popen([sys.executable, "-m", "ingestion.simulator", "--host", broker.host, "--port",
                             str(broker.port), "--password", broker.password, "--cafile", str(broker.ca_file),
                             "--printers", "1", "--scenario", "cloud_completed", "--speed", "3000", "--forever"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: sum(1 for j in jobs(db) if j["ended_at"]) >= 3, timeout=60, what="three jobs played")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        service.stop()
    assert proc.returncode == 0, out
    rows = jobs(db)
    assert len({r["job_key"] for r in rows}) == len(rows), "every loop is a new job with its own key"
    assert all(r["status"] in ("completed", "running", "preparing", "aborted") for r in rows)
