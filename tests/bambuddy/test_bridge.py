"""The Bambuddy stand-in fed from MQTT behaves as issue #15 recorded from a real Bambuddy 1.2.5.2
next to the simulated printers: without FTP it archives 60-190 s after the start (here scaled
down) as a fallback archive (filename = the printer's gcode_file, extra_data.no_3mf_available,
no thumbnail, no content hash); a print that ended before that stays `printing` and is reconciled
to `aborted` ("Stale ...") at the next reconnect; with FTP a reprint reuses its archive and keeps
the first run's start; the API shows no subtask_id. Archive shape: tests/contracts/bambuddy/
CONTRACT.md (transcript 04 keys)."""

import time

import pytest

from ingestion.devbroker import DevBroker
from ingestion.scenarios import Job, completed
from ingestion.simulator import BrokerAddress, Simulator
from tests.fakes.bambuddy import FakeBambuddy
from tests.fakes.bambuddy_bridge import STALE_REASON, BambuddyBridge, BambuddyLag


@pytest.fixture(scope="module")
def broker():
    with DevBroker() as b:
        yield b


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def play(broker, bridge_lag, serial, model, runs, step_s=0.01):
    fake = FakeBambuddy()
    fake.start()
    fake.add_printer("p", serial, model)
    bridge = BambuddyBridge(fake, broker.host, broker.port, broker.username, broker.password, str(broker.ca_file),
                            lag=bridge_lag).start()
    wait_for(bridge.client.is_connected)
    time.sleep(0.5)  # subscribed before the printer's first full report
    sim = Simulator(BrokerAddress(broker.host, broker.port, broker.username, broker.password, str(broker.ca_file)))
    printer = sim.add(serial, model)
    printer.wait_connected()
    wait_for(lambda: serial in bridge.ready)
    try:
        for job, pause in runs:
            for step in completed(job):
                printer.send(step)
                time.sleep(step_s)
            time.sleep(pause)
        wait_for(lambda: bridge.pending() == 0 and sum(len(t) for t in bridge.truth.values()) == len(runs)
                 and all(t.get("entry_id") for t in bridge.truth[serial]))
        return fake, bridge
    finally:
        sim.close()
        bridge.stop()
        fake.stop()


def test_without_ftp_a_print_that_ended_first_stays_printing_then_stale_aborted(broker):
    lag = BambuddyLag(ftp=False, retry_s=(1.0, 1.5), reconnect_s=(0.5, 0.8))
    fake, bridge = play(broker, lag, "BRIDGE-P1S", "P1S", [(Job("Benchy", 600), 0)])
    (archive,) = fake.archives.values()
    assert archive["filename"] == "/data/Metadata/plate_1.gcode" and archive["print_name"] == "Benchy"
    assert archive["extra_data"] == {"no_3mf_available": True}
    assert archive["content_hash"] is None and archive["thumbnail_path"] is None
    assert archive["status"] == "aborted" and archive["failure_reason"] == STALE_REASON
    (entry,) = fake.runs.values()
    assert entry["status"] == "aborted" and "subtask_id" not in archive and "subtask_id" not in entry


def test_with_ftp_a_reprint_reuses_the_archive_and_keeps_the_first_start(broker):
    lag = BambuddyLag(ftp=True, ftp_delay_s=0.2)
    long_job = Job("Benchy", 600, ticks=6)
    # each print takes about 1.5 s: it ends after its archive exists
    fake, bridge = play(broker, lag, "BRIDGE-X1C", "X1C", [(long_job, 1.2), (long_job, 0)], step_s=0.1)
    (archive,) = fake.archives.values()
    assert archive["content_hash"] and archive["thumbnail_path"] and archive["run_count"] == 2
    first, second = sorted(fake.runs.values(), key=lambda r: r["id"])
    assert first["status"] == second["status"] == "completed"
    assert second["started_at"] == first["started_at"]  # the reprint's start is the first run's
