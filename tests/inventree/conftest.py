import pytest

from orchestration.inventree.client import InvenTreeClient
from tests.fakes.inventree import FakeInvenTree, seed_demo


@pytest.fixture
def inventree():
    with FakeInvenTree() as fake:
        fake.ids = seed_demo(fake)
        yield fake


@pytest.fixture
def client(inventree):
    return InvenTreeClient(inventree.base_url + "/api/", inventree.token, timeout=5, retries=2, backoff=0.01)
