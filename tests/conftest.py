"""Fixtures shared by several test folders: the stand-ins over real HTTP and a pipeline environment
(temporary DATA_DIR, InvenTree stand-in settings, MQTT-only unless a test sets BAMBUDDY_BASE_URL)."""

import signal

import pytest

from ingestion.raw_schema import connect

from tests.fakes.bambuddy import FakeBambuddy
from tests.fakes.inventree import FakeInvenTree, seed_demo


@pytest.fixture
def inventree():
    """InvenTree stand-in with the demo's category, location and Weight/PrintTime templates."""
    with FakeInvenTree() as fake:
        fake.ids = seed_demo(fake)
        yield fake


@pytest.fixture
def bambuddy():
    """Bambuddy stand-in knowing one printer (SERIAL1, id 1)."""
    with FakeBambuddy() as fake:
        fake.add_printer("X1C bay 1", "SERIAL1", "X1C", printer_id=1)
        yield fake


@pytest.fixture
def env(tmp_path, monkeypatch, inventree):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INVENTREE_BASE_URL", inventree.base_url)
    monkeypatch.setenv("INVENTREE_TOKEN", inventree.token)
    monkeypatch.setenv("INVENTREE_PART_CATEGORY_ID", str(inventree.ids["INVENTREE_PART_CATEGORY_ID"]))
    monkeypatch.setenv("INVENTREE_STOCK_LOCATION_ID", str(inventree.ids["INVENTREE_STOCK_LOCATION_ID"]))
    monkeypatch.setenv("INVENTREE_WEB_URL", "http://inventree.example")
    # a print that failed transiently is due again at once: the next run of a test retries it
    monkeypatch.setenv("SYNC_RETRY_BASE_SECONDS", "0.01")
    monkeypatch.delenv("BAMBUDDY_BASE_URL", raising=False)
    monkeypatch.delenv("BAMBUDDY_API_KEY", raising=False)
    connect(tmp_path / "print_history.db").close()
    return tmp_path




@pytest.fixture(autouse=True)
def _signal_handlers_as_found():
    """An in-process Dagster run leaves SIGTERM set like SIGINT (ignored under a background runner):
    put both back, so one test's run cannot change what the next test's children inherit."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in before.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)
