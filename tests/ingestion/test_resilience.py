"""The logger loses nothing and invents nothing across broker restarts, logger restarts, SIGTERM
and bad payloads. Protocol facts from tests/contracts/mqtt/PROTOCOL.md (sticky FINISH, pushall
on reconnect, pitfalls 2, 3 and 7); the mid-print deltas here are synthetic."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager


from ingestion.logger import LoggerService
from ingestion.scenarios import Job, completed, finish_steps, progress_steps, start_steps

from .conftest import jobs, logger_settings, wait_until, write_config

JOB = Job("Bracket", duration_s=3600, cloud=True, ticks=4)


def start_logger_process(tmp_path, broker, serials):
    config = write_config(tmp_path / "config.json", broker, serials)
    env = {**os.environ, "DATA_DIR": str(tmp_path), "LOGGER_CONFIG": str(config)}
    env.pop("PRINTER_IP", None)
    return subprocess.Popen([sys.executable, "-m", "ingestion"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def stop_process(proc, sig=signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def play(printer, steps):
    for step in steps:
        printer.send(step)
        time.sleep(0.02)


@contextmanager
def logger_for(broker, simulator, serial: str, db):
    """One simulated P1S and an in-process logger following it (first pushall answered)."""
    printer = simulator.add(serial, "P1S")
    printer.wait_connected()
    service = LoggerService(logger_settings(broker, [printer.serial], db))
    service.start()
    try:
        wait_until(lambda: printer.pushalls_answered >= 1, what="first pushall")
        yield printer, service.printers[printer.serial]
    finally:
        service.stop()


def restart_broker_mid_print(broker, simulator, db, serial: str, down_seconds: float,
                             timeouts: tuple[float, float], after_restart=lambda: None) -> None:
    """A job running, the broker restarted under it, the job finished: recorded once, completed.
    timeouts: (printer reconnect, logger reconnect with a full report)."""
    with logger_for(broker, simulator, serial, db) as (printer, runtime):
        play(printer, start_steps(JOB) + progress_steps(JOB, 0.5))
        wait_until(lambda: jobs(db) and jobs(db)[0]["status"] == "running", what="job running")
        broker.restart(down_seconds=down_seconds)
        after_restart()
        # both sides reconnect, in either order; the logger must hold a full report again
        wait_until(lambda: printer.connects >= 2, timeout=timeouts[0], what="printer reconnect")
        wait_until(lambda: runtime.connects >= 2 and runtime.connected and runtime.have_full, timeout=timeouts[1],
                   what="logger reconnect with a full report")
        play(printer, progress_steps(JOB, 0.5)[1:] + finish_steps(JOB))
        wait_until(lambda: jobs(db)[0]["ended_at"], what="job ended")
    rows = jobs(db)
    assert [r["status"] for r in rows] == ["completed"]
    assert rows[0]["progress_pct"] == 100


def test_broker_restart_mid_print(broker, simulator, tmp_path):
    restart_broker_mid_print(broker, simulator, tmp_path / "print_history.db", "P1S-BROKER-RESTART",
                             down_seconds=1.0, timeouts=(40, 60))


def test_logger_killed_mid_print_and_finish_while_down(broker, simulator, tmp_path):
    printer = simulator.add("P1S-LOGGER-RESTART", "P1S")
    printer.wait_connected()
    db = tmp_path / "print_history.db"
    proc = start_logger_process(tmp_path, broker, [printer.serial])
    try:
        wait_until(lambda: printer.pushalls_answered >= 1, what="first pushall")
        play(printer, start_steps(JOB) + progress_steps(JOB, 0.5))
        wait_until(lambda: jobs(db) and jobs(db)[0]["status"] == "running", what="job running")
        proc.kill()  # kill -9: no flush
        proc.wait(10)
        play(printer, progress_steps(JOB, 0.5)[1:] + finish_steps(JOB))  # FINISH while the logger is down
        proc = start_logger_process(tmp_path, broker, [printer.serial])
        wait_until(lambda: jobs(db)[0]["ended_at"], what="job ended after restart")
        code, out = stop_process(proc)
        assert code == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = jobs(db)
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    # a further restart sees the sticky FINISH again and records nothing new
    proc = start_logger_process(tmp_path, broker, [printer.serial])
    answered = printer.pushalls_answered
    wait_until(lambda: printer.pushalls_answered > answered, what="pushall of the third logger")
    time.sleep(0.5)
    stop_process(proc)
    assert jobs(db) == rows


def test_finish_seen_at_startup_is_recorded_once(broker, simulator, tmp_path):
    printer = simulator.add("X1C-STICKY", "X1C")
    printer.wait_connected()
    for step in completed(Job("Old print", cloud=True, ticks=1)):
        printer.printer.apply(step)  # the printer finished this before any logger ran
    db = tmp_path / "print_history.db"
    for _ in range(2):
        proc = start_logger_process(tmp_path, broker, [printer.serial])
        wait_until(lambda: jobs(db), what="sticky job recorded")
        time.sleep(0.5)
        code, out = stop_process(proc)
        assert code == 0, out
    rows = jobs(db)
    assert [(r["status"], r["subtask_name"]) for r in rows] == [("completed", "Old print")]


def test_sigterm_flushes_and_exits_cleanly(broker, simulator, tmp_path):
    printer = simulator.add("A1-SIGTERM", "A1")
    printer.wait_connected()
    db = tmp_path / "print_history.db"
    proc = start_logger_process(tmp_path, broker, [printer.serial])
    wait_until(lambda: printer.pushalls_answered >= 1, what="first pushall")
    play(printer, completed(JOB))
    time.sleep(0.05)
    code, out = stop_process(proc)
    assert code == 0, out
    assert "logger stopped" in out
    assert [r["status"] for r in jobs(db)] == ["completed"]
    assert printer.printer.state["gcode_state"] == "FINISH"
    heartbeat = (tmp_path / "logger.heartbeat").read_text()
    assert heartbeat.strip().endswith("Z")
    assert "started (Bracket)" in out and "ended: completed" in out  # the log says what happened
    assert broker.password not in out  # ... and never shows the access code
    health = subprocess.run([sys.executable, "-m", "ingestion.healthcheck"], capture_output=True, text=True,
                            env={**os.environ, "DATA_DIR": str(tmp_path),
                                 "LOGGER_CONFIG": str(tmp_path / "config.json")})
    assert health.returncode == 0, health.stdout
    (tmp_path / "logger.heartbeat").unlink()
    health = subprocess.run([sys.executable, "-m", "ingestion.healthcheck"], capture_output=True, text=True,
                            env={**os.environ, "DATA_DIR": str(tmp_path),
                                 "LOGGER_CONFIG": str(tmp_path / "config.json")})
    assert health.returncode == 1 and "no heartbeat" in health.stdout


def test_bad_payloads_are_quarantined_and_logger_goes_on(broker, simulator, tmp_path):
    db = tmp_path / "print_history.db"
    with logger_for(broker, simulator, "P1S-QUARANTINE", db) as (printer, _):
        bad = [b"{truncated", b'{"print": {"gcode_state": 7}}', b'{"print": {"ams": {"ams": 5}}}',
               b'{"print": {"x": "' + b"y" * (1024 * 1024 + 10) + b'"}}', b"\x00\xff"]
        for payload in bad:
            printer.publish_raw(payload)
        play(printer, completed(JOB))
        wait_until(lambda: jobs(db) and jobs(db)[0]["ended_at"], what="job after bad payloads")
        conn = sqlite3.connect(db)
        wait_until(lambda: conn.execute("SELECT COUNT(*) FROM raw_mqtt_quarantine").fetchone()[0] >= 4,
                   what="quarantine rows")
    rows = conn.execute("SELECT printer_serial, reason, length(payload) FROM raw_mqtt_quarantine ORDER BY id").fetchall()
    reasons = " | ".join(r[1] for r in rows)
    assert "not JSON" in reasons and "print.gcode_state" in reasons and "too large" in reasons
    assert all(r[0] == printer.serial for r in rows)
    assert max(r[2] for r in rows) <= 16_384  # payloads are kept truncated
    assert [r["status"] for r in jobs(db)] == ["completed"]
    heartbeat = conn.execute("SELECT quarantined, messages FROM raw_logger_heartbeat").fetchone()
    assert heartbeat[0] >= 4 and heartbeat[1] > heartbeat[0]


def test_printer_restart_with_reused_ids_records_every_job(broker, simulator, tmp_path):
    """A restarted printer numbers its tasks from the start again (issue #15 observation 5): the
    logger records the repeated job as a new row with its own key; the first row is unchanged."""
    from ingestion.scenarios import reset_ids

    db = tmp_path / "print_history.db"
    with logger_for(broker, simulator, "P1S-REUSED-IDS", db) as (printer, runtime):
        reset_ids()
        play(printer, completed(JOB))
        wait_until(lambda: len(jobs(db)) == 1 and jobs(db)[0]["ended_at"], what="first job ended")
        first = jobs(db)[0]
        reset_ids()  # the printer restarts: the same task/subtask ids again
        play(printer, completed(JOB))
        wait_until(lambda: len(jobs(db)) == 2 and jobs(db)[1]["ended_at"], what="second job ended")
    rows = jobs(db)
    assert rows[0] == first
    assert rows[0]["subtask_id"] == rows[1]["subtask_id"] == first["job_key"]
    assert rows[1]["job_key"].startswith(first["job_key"] + "-")
    assert [r["status"] for r in rows] == ["completed", "completed"]
