"""InvenTreeClient (over the `inventree` library) against the stand-in over real HTTP.
Contract: tests/contracts/inventree/CONTRACT.md (surprises 1-4, client notes) and
transcripts/client/c04, c10, c30, c33/c34, c43-c47, c50."""

import logging
import socket
from types import SimpleNamespace

import pytest

from orchestration.inventree.client import (
    InvenTreeAuthError,
    InvenTreeClient,
    InvenTreeServerError,
    InvenTreeUnreachable,
    InvenTreeValidationError,
)
from tests.fakes.bambuddy import PNG_1PX


def test_duplicate_ipns_resolve_to_the_lowest_pk_case_insensitively(inventree, client):
    first = client.create_part(name="Benchy red", ipn="BMB-benchy", description="", category=None)
    second = client.create_part(name="Benchy blue", ipn="BMB-BENCHY", description="", category=None)
    found = client.find_parts_by_ipn("bmb-benchy")
    assert [p.pk for p in found] == [first.pk, second.pk]
    assert client.find_parts_by_ipn("BMB-bench") == []  # exact, not partial


def test_failed_lookup_raises_instead_of_looking_empty(inventree, client):
    client.check()
    inventree.inject(status=500, times=10, path_prefix="/api/part/")
    with pytest.raises(InvenTreeServerError):
        client.find_parts_by_ipn("BMB-x")
    assert inventree.count("GET", "/api/part/") == 3  # one try + two retries
    inventree.clear_faults()
    inventree.inject(status=503, times=1, path_prefix="/api/stock/")
    assert client.find_stock_by_batch("nope") == []  # retried once, then a real answer


def test_retries_wait_as_urllib3_does_for_the_bambuddy_client(inventree, monkeypatch):
    """One schedule for both servers: the first retry at once, then backoff x 2, x 4 (urllib3's
    Retry, which BambuddyClient uses; the InvenTree client used to wait 0.5 s before the first)."""
    from urllib3.util.retry import RequestHistory, Retry

    from orchestration.inventree import client as client_module
    from orchestration.settings import retry_delay

    history = ()
    for n in range(1, 5):
        history += (RequestHistory("GET", "/", None, 503, None),)
        assert retry_delay(0.5, n) == Retry(total=9, backoff_factor=0.5, history=history).get_backoff_time()
    waits: list[float] = []
    monkeypatch.setattr(client_module, "time", SimpleNamespace(sleep=waits.append))  # this module's waits only
    client = InvenTreeClient(inventree.base_url + "/api/", inventree.token, timeout=5, retries=3, backoff=0.5)
    inventree.inject(status=502, times=3, path_prefix="/api/part/")
    assert client.find_parts_by_ipn("BMB-x") == []  # three 502s, then the real answer
    assert waits == [0.0, 1.0, 2.0]


def test_stock_create_returns_one_item_and_batch_lookup_is_exact(inventree, client):
    part = client.create_part(name="Clip", ipn="BMB-clip", description="d", category=inventree.ids["INVENTREE_PART_CATEGORY_ID"])
    item = client.create_stock_item(part=part.pk, quantity=2, location=inventree.ids["INVENTREE_STOCK_LOCATION_ID"],
                                    status=10, batch="bambuddy-7", notes="n")
    assert item.part == part.pk and item.quantity == 2 and item.status == 10
    client.create_stock_item(part=part.pk, quantity=1, location=None, status=10, batch="bambuddy-7-r2", notes="n")
    assert [s.pk for s in client.find_stock_by_batch("BAMBUDDY-7", part=part.pk)] == [item.pk]


def test_invalid_status_is_refused_before_inventree_silently_stores_10(inventree, client):
    part = client.create_part(name="Clip", ipn="BMB-clip", description="", category=None)
    with pytest.raises(InvenTreeValidationError, match="INVENTREE_STOCK_STATUS"):
        client.create_stock_item(part=part.pk, quantity=1, location=None, status=999, batch="b", notes="")
    assert inventree.stock_items == {}


def test_parameters_are_created_then_updated_never_duplicated(inventree, client):
    part = client.create_part(name="Vase", ipn="BMB-vase", description="", category=None)
    templates = client.parameter_templates()
    assert set(templates) == {"Weight", "PrintTime"}
    client.set_parameter(part.pk, templates["PrintTime"], "5400 s")
    current = client.part_parameters(part.pk)
    assert client.set_parameter(part.pk, templates["PrintTime"], "5400 s", existing=current[templates["PrintTime"]]) is None
    client.set_parameter(part.pk, templates["PrintTime"], "90 min", existing=current[templates["PrintTime"]])
    stored = [p for p in inventree.parameters.values() if p["model_id"] == part.pk]
    assert len(stored) == 1 and stored[0]["data_numeric"] == 5400.0  # converted to the template's unit
    with pytest.raises(InvenTreeValidationError, match="Could not convert"):
        client.set_parameter(part.pk, templates["Weight"], "heavy")


def test_image_upload_and_has_image(inventree, client):
    part = client.create_part(name="Gear", ipn="BMB-gear", description="", category=None)
    assert not client.part_has_image(part)
    client.upload_part_image(part, PNG_1PX, "BMB-gear.png")
    assert client.part_has_image(part)
    assert inventree.parts[part.pk]["image"].startswith("/media/part_images/")
    with pytest.raises(InvenTreeValidationError, match="image"):
        client.upload_part_image(part.pk, b"not an image", "x.png")


def test_wrong_token_names_the_setting_and_never_shows_the_token(inventree, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "inv-" + "f" * 40 + "-20991231"
    bad = InvenTreeClient(inventree.base_url, secret, retries=0)
    with pytest.raises(InvenTreeAuthError) as exc:
        bad.find_parts_by_ipn("BMB-x")
    assert "INVENTREE_TOKEN" in str(exc.value)
    assert secret not in str(exc.value) and secret not in caplog.text
    assert inventree.parts == {}


def test_unreachable_host_and_bad_category(inventree, client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(InvenTreeUnreachable, match="INVENTREE_BASE_URL"):
        InvenTreeClient(f"http://127.0.0.1:{port}", "inv-x", timeout=1, retries=0).check()
    with pytest.raises(InvenTreeValidationError, match="INVENTREE_PART_CATEGORY_ID"):
        client.create_part(name="X", ipn="BMB-x", description="", category=9999)
    assert client.category_exists(inventree.ids["INVENTREE_PART_CATEGORY_ID"]) and not client.category_exists(9999)
    assert not client.location_exists(4242)


def test_calls_are_counted_as_the_server_sees_them(inventree, client):
    part = client.create_part(name="Bolt", ipn="BMB-bolt", description="", category=None)
    client.find_stock_by_batch("b1", part=part.pk)
    client.create_stock_item(part=part.pk, quantity=1, location=None, status=10, batch="b1", notes="")
    assert client.calls == len(inventree.requests) == 5  # connect (2) + create part + lookup + create
