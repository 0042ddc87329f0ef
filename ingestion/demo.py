"""`python -m ingestion.demo`: broker + 3 simulated printers (X1C, P1S, A1) + the logger, then a
table of the jobs the logger recorded. The broker is mosquitto when it is installed, else the
embedded Python broker (--broker chooses). Everything it starts is stopped before it returns."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from .config import LoggerSettings, PrinterConfig
from .devbroker import BROKER_KINDS, BrokerUnavailable, DevBroker
from .logger import LoggerService
from .scenarios import MIX, expected
from .simulator import BrokerAddress, Simulator

FLEET = [("SIMX1C0001", "X1C", "X1C bay 1"), ("SIMP1S0002", "P1S", "P1S bay 2"), ("SIMA10003", "A1", "A1 bay 3")]


def record_jobs(db_path: Path, speed: float = 800.0, timeout: float = 90.0, broker_kind: str = "auto") -> list[tuple]:
    with DevBroker(kind=broker_kind) as broker:
        print(f"broker: {broker.describe()}", flush=True)
        sim = Simulator(BrokerAddress(broker.host, broker.port, broker.username, broker.password, str(broker.ca_file)))
        for serial, model, _ in FLEET:
            sim.add(serial, model).wait_connected()
        printers = tuple(PrinterConfig(serial, broker.host, broker.password, name=name, port=broker.port,
                                       ca_file=str(broker.ca_file)) for serial, _, name in FLEET)
        service = LoggerService(LoggerSettings(printers=printers, db_path=db_path, heartbeat_interval=1))
        service.start()
        want = sum(len(expected(n)) for _, model, _ in FLEET for n in MIX[model])
        try:
            sim.run({serial: MIX[model] for serial, model, _ in FLEET}, speed=speed)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and len(ended(db_path)) < want:
                time.sleep(0.2)
        finally:
            sim.close()
            service.stop()
    return ended(db_path)


def ended(db_path: Path) -> list[tuple]:
    if not db_path.exists():
        return []
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(
            "SELECT printer_name, job_key, subtask_name, status, started_at, ended_at FROM raw_printer_jobs "
            "WHERE ended_at IS NOT NULL ORDER BY started_at").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", help="keep the database here (default: a temporary folder)")
    parser.add_argument("--speed", type=float, default=800.0)
    parser.add_argument("--broker", choices=BROKER_KINDS, default="auto",
                        help="auto: mosquitto if installed, else the embedded Python broker")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="printfarm-demo-") as tmp:
        db = Path(args.data_dir or tmp) / "print_history.db"
        try:
            rows = record_jobs(db, speed=args.speed, broker_kind=args.broker)
        except BrokerUnavailable as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 2
        print(f"\n{len(rows)} jobs recorded in {db}:")
        print(f"{'printer':<12} {'job key':<26} {'name':<18} {'status':<10} {'started':<27} ended")
        for printer, key, name, status, started, ended_at in rows:
            print(f"{printer:<12} {key:<26} {(name or '')[:18]:<18} {status:<10} {started:<27} {ended_at}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
