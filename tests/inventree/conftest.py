import pytest

from orchestration.inventree.client import InvenTreeClient


@pytest.fixture
def client(inventree):
    return InvenTreeClient(inventree.base_url + "/api/", inventree.token, timeout=5, retries=2, backoff=0.01)
