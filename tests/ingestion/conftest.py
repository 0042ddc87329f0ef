import json
import sqlite3
import time
from pathlib import Path

import pytest

from ingestion.config import LoggerSettings, PrinterConfig
from ingestion.devbroker import DevBroker
from ingestion.simulator import BrokerAddress, Simulator

# Real printer reports (sources in tests/contracts/mqtt/samples/SOURCES.md).
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "contracts" / "mqtt" / "samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    assert SAMPLES_DIR.is_dir(), f"contract samples missing at {SAMPLES_DIR} (tests/contracts/ is the repository copy)"
    return SAMPLES_DIR


@pytest.fixture(scope="module")
def broker():
    """A real mosquitto with TLS (certificates made for the test) and a password file."""
    with DevBroker() as b:
        yield b


def broker_address(broker: DevBroker) -> BrokerAddress:
    return BrokerAddress(broker.host, broker.port, broker.username, broker.password, str(broker.ca_file))


@pytest.fixture
def simulator(broker):
    sim = Simulator(broker_address(broker))
    yield sim
    sim.close()


def logger_settings(broker: DevBroker, serials: list[str], db_path: Path) -> LoggerSettings:
    printers = tuple(PrinterConfig(s, broker.host, broker.password, name=f"printer-{s[-4:]}", port=broker.port,
                                   ca_file=str(broker.ca_file)) for s in serials)
    return LoggerSettings(printers=printers, db_path=db_path, heartbeat_interval=0.5)


def write_config(path: Path, broker: DevBroker, serials: list[str]) -> Path:
    path.write_text(json.dumps({"printers": [
        {"name": f"printer-{s[-4:]}", "host": broker.host, "port": broker.port, "serial": s,
         "access_code": broker.password, "ca_file": str(broker.ca_file)} for s in serials]}))
    return path


def jobs(db_path: Path, serial: str | None = None) -> list[dict]:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        sql = "SELECT * FROM raw_printer_jobs" + (" WHERE printer_serial = ?" if serial else "") + " ORDER BY id"
        return [dict(r) for r in conn.execute(sql, (serial,) if serial else ())]
    finally:
        conn.close()


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except sqlite3.OperationalError:
            pass  # table not created yet
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
