"""Fixtures shared by several test folders: the stand-ins over real HTTP."""

import pytest

from tests.fakes.bambuddy import FakeBambuddy
from tests.fakes.inventree import FakeInvenTree, seed_demo


@pytest.fixture
def inventree():
    """InvenTree stand-in with the demo's category, location and Weight/PrintTime templates."""
    with FakeInvenTree() as fake:
        fake.ids = seed_demo(fake)
        yield fake


@pytest.fixture
def bambuddy_with_printer():
    with FakeBambuddy() as fake:
        fake.add_printer("X1C bay 1", "SERIAL1", "X1C", printer_id=1)
        yield fake
