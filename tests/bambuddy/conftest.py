import pytest

from orchestration.bambuddy import BambuddyClient
from tests.fakes.bambuddy import FakeBambuddy


@pytest.fixture
def bambuddy():
    with FakeBambuddy() as fake:
        fake.add_printer("X1C bay 1", "00M00A000000001", "X1C")
        yield fake


@pytest.fixture
def client(bambuddy):
    return BambuddyClient(bambuddy.base_url, timeout=5, page_size=3, retries=2, backoff=0.01)
