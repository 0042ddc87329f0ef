"""Each simulator scenario through a real mosquitto (TLS + password) into the logger yields
exactly the expected job rows. The lifecycle rules come from tests/contracts/mqtt/PROTOCOL.md
sections 5-7; scenarios without a real capture are synthetic (see ingestion/scenarios.py)."""

import json
import sqlite3

import pytest

from ingestion.logger import LoggerService
from ingestion.scenarios import SCENARIOS, expected

from .conftest import broker_address, jobs, logger_settings, wait_until
from ingestion.simulator import Simulator

MODELS = ("X1C", "P1S")  # full reports and deltas
CASES = [(name, model) for name in SCENARIOS for model in MODELS]


def serial_for(name: str, model: str) -> str:
    return f"{model}-{name}".upper()


@pytest.fixture(scope="module")
def played(broker, tmp_path_factory):
    """Play every scenario at once, one printer each, and return the logger's database."""
    db = tmp_path_factory.mktemp("scenarios") / "print_history.db"
    serials = [serial_for(n, m) for n, m in CASES]
    sim = Simulator(broker_address(broker))
    for name, model in CASES:  # the printers are up before the logger, as real ones are
        sim.add(serial_for(name, model), model).wait_connected()
    service = LoggerService(logger_settings(broker, serials, db))
    service.start()
    try:
        # wait for the logger's pushall to be answered by every printer (full report merged)
        wait_until(lambda: all(p.pushalls_answered for p in sim.printers.values()), what="pushall answers")
        sim.run({serial_for(n, m): [n] for n, m in CASES}, speed=1500)
        total = sum(len(expected(n)) for n, _ in CASES)
        wait_until(lambda: sum(1 for j in jobs(db) if j["ended_at"]) >= total, what="all jobs ended")
    finally:
        sim.close()
        service.stop()
    return db


@pytest.mark.parametrize("name, model", CASES)
def test_scenario_yields_expected_jobs(played, name, model):
    rows = jobs(played, serial_for(name, model))
    assert [r["status"] for r in rows] == expected(name)
    for row in rows:
        assert row["ended_at"] and row["ended_at"] >= row["started_at"]
        assert row["ended_at"].endswith("Z")
        assert row["printer_name"].startswith("printer-")
        assert json.loads(row["last_state_json"])["gcode_state"] in ("FINISH", "FAILED", "IDLE", "RUNNING")
    if expected(name)[-1] == "completed":
        assert rows[-1]["progress_pct"] == 100
        assert rows[-1]["layer_num"] == rows[-1]["total_layers"] > 0
        assert rows[-1]["filament_type"] == "PLA"


def test_cloud_and_lan_job_keys(played):
    cloud = jobs(played, serial_for("cloud_completed", "P1S"))[0]
    assert cloud["job_key"] == cloud["subtask_id"] != "0"
    lan = jobs(played, serial_for("back_to_back", "P1S"))
    assert all(r["job_key"].startswith("lan:") for r in lan)
    assert len({r["job_key"] for r in lan}) == 2  # the same file twice is two jobs


def test_cancel_and_fault_are_told_apart(played):
    cancel = jobs(played, serial_for("cancel", "X1C"))[0]
    fault = jobs(played, serial_for("failure", "X1C"))[0]
    assert cancel["status"] == "cancelled" and cancel["fail_reason"] == "cancelled by user"
    assert fault["status"] == "failed" and 0x07008011 in json.loads(fault["error_codes"])


def test_every_transition_is_recorded(played):
    conn = sqlite3.connect(played)
    serial = serial_for("pause_resume", "P1S")
    key = jobs(played, serial)[0]["job_key"]
    steps = conn.execute("SELECT from_status, to_status FROM raw_job_transitions WHERE printer_serial = ? "
                         "AND job_key = ? ORDER BY id", (serial, key)).fetchall()
    assert steps == [(None, "preparing"), ("preparing", "running"), ("running", "paused"),
                     ("paused", "running"), ("running", "completed")]


def test_duplicate_finish_does_not_move_end(played):
    rows = jobs(played, serial_for("duplicate_finish", "P1S"))
    assert len(rows) == 1
    conn = sqlite3.connect(played)
    ends = conn.execute("SELECT COUNT(*) FROM raw_job_transitions WHERE printer_serial = ? AND to_status = 'completed'",
                        (serial_for("duplicate_finish", "P1S"),)).fetchone()[0]
    assert ends == 1
