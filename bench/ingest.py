"""`python -m bench.ingest`: logger throughput through a real mosquitto (TLS + password).

N simulated printers publish M messages in all (P1S-style deltas with complete jobs in
between) as fast as they can; the logger runs as its own process. Measured: messages the
logger processed per second, job transitions lost, and the logger's peak RSS.
Prints one JSON line last:
{"messages", "printers", "msgs_per_s", "lost_transitions", "rss_mb", "seconds"}
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ingestion.devbroker import DevBroker
from ingestion.scenarios import Step
from ingestion.simulator import BrokerAddress, Simulator
from orchestration.processes import spawn

TRANSITIONS_PER_JOB = 3  # (new) -> preparing -> running -> completed


def job_steps(printer_no: int, job_no: int, deltas: int) -> list[Step]:
    name = f"bench-{printer_no}-{job_no}"
    task = str(10_000_000 + printer_no * 100_000 + job_no * 2)
    steps = [Step(0, {"gcode_state": "PREPARE", "task_id": task, "subtask_id": str(int(task) + 1),
                      "subtask_name": name, "gcode_file": f"{name}.3mf", "mc_percent": 0, "total_layer_num": 100}),
             Step(0, {"gcode_state": "RUNNING"})]
    steps += [Step(0, {"mc_percent": i * 100 // (deltas + 1), "layer_num": i % 100, "bed_temper": 55 + (i % 7) / 8})
              for i in range(deltas)]
    steps.append(Step(0, {"gcode_state": "FINISH", "mc_percent": 100}))
    return steps


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def processed(db: Path) -> tuple[int, int]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            msgs = conn.execute("SELECT COALESCE(SUM(messages), 0) FROM raw_logger_heartbeat").fetchone()[0]
            transitions = conn.execute("SELECT COUNT(*) FROM raw_job_transitions").fetchone()[0]
        finally:
            conn.close()
        return msgs, transitions
    except sqlite3.OperationalError:
        return 0, 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--printers", type=int, default=20)
    parser.add_argument("--messages", type=int, default=100_000, help="total messages over all printers")
    parser.add_argument("--deltas-per-job", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=50)
    args = parser.parse_args(argv)

    per_printer = args.messages // args.printers
    job_len = args.deltas_per_job + 3
    jobs_per_printer = max(1, per_printer // job_len)
    plans = {f"BENCH{i:03d}": [s for j in range(jobs_per_printer) for s in job_steps(i, j, args.deltas_per_job)]
             for i in range(args.printers)}
    total_msgs = sum(len(p) for p in plans.values())
    expected_transitions = args.printers * jobs_per_printer * TRANSITIONS_PER_JOB

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, DevBroker() as broker:
        tmp_path = Path(tmp)
        sim = Simulator(BrokerAddress(broker.host, broker.port, broker.username, broker.password, str(broker.ca_file)))
        for serial in plans:
            sim.add(serial, "P1S").wait_connected()
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"printers": [
            {"name": s, "host": broker.host, "port": broker.port, "serial": s, "access_code": broker.password,
             "ca_file": str(broker.ca_file)} for s in plans]}))
        env = {**os.environ, "DATA_DIR": str(tmp_path), "LOGGER_CONFIG": str(config),
               "HEARTBEAT_INTERVAL_SECONDS": "0.25"}
        logger = spawn([sys.executable, "-m", "ingestion", "--log-level", "WARNING"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        db = tmp_path / "print_history.db"
        try:
            deadline = time.monotonic() + 20
            while not all(p.pushalls_answered for p in sim.printers.values()):
                if time.monotonic() > deadline:
                    raise SystemExit("logger did not connect to every printer")
                time.sleep(0.05)
            baseline, _ = processed(db)
            while baseline < args.printers:  # wait for the pushall answers to be counted
                time.sleep(0.1)
                baseline, _ = processed(db)
            peak_rss = rss_mb(logger.pid)
            start = time.monotonic()
            threads = [threading.Thread(target=lambda s=s, steps=steps: [sim.printers[s].send(x) for x in steps])
                       for s, steps in plans.items()]
            for t in threads:
                t.start()
            done_at = None
            deadline = start + args.timeout
            last = (0, 0)
            while time.monotonic() < deadline:
                peak_rss = max(peak_rss, rss_mb(logger.pid))
                msgs, transitions = processed(db)
                if msgs - baseline >= total_msgs and transitions >= expected_transitions:
                    done_at = time.monotonic()
                    break
                if (msgs, transitions) != last:
                    last = (msgs, transitions)
                time.sleep(0.05)
            for t in threads:
                t.join()
            elapsed = (done_at or time.monotonic()) - start
            msgs, transitions = processed(db)
        finally:
            logger.terminate()
            logger.wait(30)
            sim.close()
        msgs, transitions = processed(db)
    handled = msgs - baseline
    result = {
        "messages": handled,
        "printers": args.printers,
        "msgs_per_s": round(handled / elapsed, 1),
        "lost_transitions": max(0, expected_transitions - transitions),
        "rss_mb": round(peak_rss, 1),
        "seconds": round(elapsed, 2),
        "expected_messages": total_msgs,
        "completed_in_time": done_at is not None,
    }
    print(json.dumps(result))
    return 0 if done_at is not None else 1


if __name__ == "__main__":
    sys.exit(main())
