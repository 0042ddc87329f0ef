"""SQLite contention: the logger keeps writing print_history.db at more than 1,000 messages a
second while dbt builds the warehouse from it and the push runs, all in one DATA_DIR. No
"database is locked" on either side, no lost message, no lost job, every ended job in stock once.
Broker: real mosquitto (TLS + password); InvenTree: the stand-in built from
tests/contracts/inventree/CONTRACT.md and its transcripts."""

import os
import sqlite3
import subprocess
import sys
import threading
import time

from ingestion.scenarios import Job, Step, start_steps
from tests.ingestion.conftest import broker, simulator, wait_until, write_config  # noqa: F401 (fixtures)
from tests.orchestration.conftest import run_sync
from orchestration.processes import spawn

RATE_PER_PRINTER = 300          # messages a second; four printers offer 1,200 msg/s
DELTAS_PER_JOB = 600
MODELS = ("Bracket", "Hinge", "Knob", "Clip", "Spacer")


def play_jobs(printer, stop: threading.Event, started: list[str], sent: list[int]) -> None:
    """Short jobs back to back, paced to RATE_PER_PRINTER: start, deltas, FINISH, repeat."""
    t0, n = time.monotonic(), 0
    while not stop.is_set():
        job = Job(MODELS[len(started) % len(MODELS)], ticks=1)
        steps = start_steps(job)
        steps += [Step(0, {"mc_percent": i * 100 // DELTAS_PER_JOB, "layer_num": i % 120,
                           "bed_temper": 55 + i % 5 / 10}) for i in range(DELTAS_PER_JOB)]
        steps += [Step(0, {"gcode_state": "FINISH", "mc_percent": 100, "mc_remaining_time": 0})]
        started.append(job.name)
        for step in steps:
            printer.send(step)
            n += 1
            sent[0] += 1
            ahead = t0 + n / RATE_PER_PRINTER - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


def logger_counts(db) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        messages = conn.execute("SELECT COALESCE(SUM(messages), 0) FROM raw_logger_heartbeat").fetchone()[0]
        ended = conn.execute("SELECT COUNT(*) FROM raw_printer_jobs WHERE ended_at IS NOT NULL").fetchone()[0]
        return messages, ended
    finally:
        conn.close()


def test_logger_flood_while_dbt_builds_and_pushes(env, broker, simulator, inventree):  # noqa: F811
    db = env / "print_history.db"
    # No idle reports: this test balances every message published against every message logged,
    # and an idle report landing after the count is taken would make the books differ.
    printers = [simulator.add(f"LOCK-{i}", ("X1C", "P1S", "A1", "P1S")[i], idle_report_seconds=None)
                for i in range(4)]
    for p in printers:
        p.wait_connected()
    config = write_config(env / "config.json", broker, [p.serial for p in printers])
    log = (env / "logger.log").open("w")  # a file, not a pipe: nobody drains a pipe while a run goes on
    proc = spawn([sys.executable, "-m", "ingestion"], stdout=log, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "DATA_DIR": str(env), "LOGGER_CONFIG": str(config),
                                            "HEARTBEAT_INTERVAL_SECONDS": "0.25"})
    stop = threading.Event()
    try:
        wait_until(lambda: all(p.pushalls_answered for p in printers), what="first pushalls")
        wait_until(lambda: logger_counts(db)[0] >= len(printers), what="pushall answers counted")
        time.sleep(0.5)
        base_logged, base_sent = logger_counts(db)[0], sum(p.published for p in printers)

        started = {p.serial: [] for p in printers}
        sent = [0]
        threads = [threading.Thread(target=play_jobs, args=(p, stop, started[p.serial], sent)) for p in printers]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        wait_until(lambda: logger_counts(db)[1] >= 4, what="first jobs ended")
        runs = []
        for _ in range(1):  # dbt build + push with the flood going on
            before = logger_counts(db)[0]
            runs.append(run_sync())
            during = logger_counts(db)[0] - before
            assert during > 1000, f"the logger kept writing during the run ({during} messages)"
        stop.set()
        for t in threads:
            t.join()
        offered = sent[0] / (time.monotonic() - t0)
        assert offered >= 1000, f"offered load {offered:.0f} msg/s"

        total_sent = sum(p.published for p in printers) - base_sent
        try:
            wait_until(lambda: logger_counts(db)[0] - base_logged >= total_sent, timeout=30, what="catch up")
        except AssertionError:
            raise AssertionError(f"logger processed {logger_counts(db)[0] - base_logged} of {total_sent}")
        runs.append(run_sync())
        proc.terminate()
        proc.wait(30)
        out = (env / "logger.log").read_text()
        assert proc.returncode == 0, out[-2000:]
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        log.close()

    for result in runs:
        assert result.success
        for event in result.all_events:
            assert "database is locked" not in str(event.message or ""), event.message
    assert "locked" not in out and "Traceback" not in out, out[-2000:]
    assert logger_counts(db)[0] - base_logged == total_sent, "every message processed"

    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT printer_serial, job_key, subtask_name, status, ended_at FROM raw_printer_jobs").fetchall()
    conn.close()
    for p in printers:
        names = [r[2] for r in rows if r[0] == p.serial]
        assert names == started[p.serial], f"{p.serial}: every job recorded once, in order"
    ended = [r for r in rows if r[4] is not None]
    assert ended and all(r[3] == "completed" for r in ended)
    assert len(rows) - len(ended) <= len(printers), "at most the last job per printer is still open"

    batches = sorted(s["batch"] for s in inventree.stock_items.values())
    assert batches == sorted(f"mqtt-{r[0]}-{r[1]}" for r in ended), "every ended job in stock, once"
