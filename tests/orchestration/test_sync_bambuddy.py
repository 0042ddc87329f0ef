"""sync_prints end to end with Bambuddy as the source of truth: stand-ins for Bambuddy and
InvenTree over real HTTP, the real job in process. Contracts: tests/contracts/bambuddy/
CONTRACT.md (reprints, external_url, thumbnails) and tests/contracts/inventree/CONTRACT.md
(part web URL /web/part/<pk>/, images, parameters with units)."""

import pytest

from .conftest import add_mqtt_job, ledger_rows, run_sync


@pytest.fixture
def bb_env(env, bambuddy, monkeypatch):
    monkeypatch.setenv("BAMBUDDY_BASE_URL", bambuddy.base_url)
    return env


def finished(bambuddy, name="Benchy", status="completed", content_hash=None, **fields):
    archive = bambuddy.add_archive(printer_id=1, print_name=name, filament_used_grams=12.5,
                                   print_time_seconds=2700, content_hash=content_hash or f"hash-{name.lower()}",
                                   **fields)
    bambuddy.add_run(archive["id"], status=status)
    return archive


def test_bambuddy_prints_become_stock_with_image_parameters_and_links(bb_env, bambuddy, inventree):
    benchy = finished(bambuddy, "Benchy")
    vase = finished(bambuddy, "Vase", status="failed")
    add_mqtt_job(bb_env, "777", "Orphan")  # MQTT-only job: Bambuddy is the source of truth, not pushed
    result = run_sync()
    assert result.success
    (part,) = inventree.parts.values()
    assert part["IPN"] == "BMB-hash-benchy" and part["image"].startswith("/media/part_images/")
    (item,) = inventree.stock_items.values()
    assert item["batch"] == f"bambuddy-{benchy['id']}" and f"Bambuddy archive #{benchy['id']}" in item["notes"]
    params = {inventree.templates[p["template"]]["name"]: p["data"] for p in inventree.parameters.values()}
    assert params == {"Weight": "12.5 g", "PrintTime": "2700 s"}
    link = f"http://inventree.example/web/part/{part['pk']}/"
    assert bambuddy.archives[benchy["id"]]["external_url"] == link
    assert bambuddy.archives[vase["id"]]["external_url"] is None  # skipped prints get no link
    states = {r["print_id"]: (r["state"], r["link_state"]) for r in ledger_rows(bb_env)}
    assert states == {f"bambuddy:{benchy['id']}:1": ("synced", "written"), f"bambuddy:{vase['id']}:1": ("skipped", None)}


def test_reprint_adds_one_stock_item_to_the_same_part(bb_env, bambuddy, inventree):
    benchy = finished(bambuddy, "Benchy")
    assert run_sync().success
    bambuddy.add_run(benchy["id"], status="completed")  # the same archive printed again
    assert run_sync().success
    assert len(inventree.parts) == 1
    assert sorted(s["batch"] for s in inventree.stock_items.values()) == [f"bambuddy-{benchy['id']}",
                                                                        f"bambuddy-{benchy['id']}-r2"]


def test_force_refreshes_part_and_link_without_a_second_stock_item(bb_env, bambuddy, inventree, monkeypatch):
    benchy = finished(bambuddy, "Benchy")
    assert run_sync().success
    bambuddy.archives[benchy["id"]]["external_url"] = None  # someone cleared the link
    inventree.parameters.clear()
    monkeypatch.setenv("OVERWRITE_PART_IMAGES", "true")
    result = run_sync(archive_ids=[benchy["id"]], force=True)
    assert result.success
    assert len(inventree.stock_items) == 1
    assert len(inventree.parameters) == 2  # parameters put back
    assert bambuddy.archives[benchy["id"]]["external_url"].endswith(f"/web/part/{next(iter(inventree.parts))}/")


def test_foreign_links_are_kept_unless_overwrite(bb_env, bambuddy, inventree, monkeypatch):
    ours = finished(bambuddy, "Benchy")
    foreign = finished(bambuddy, "Clip", external_url="https://makerworld.com/models/42")
    assert run_sync().success
    assert bambuddy.archives[foreign["id"]]["external_url"] == "https://makerworld.com/models/42"
    assert "/web/part/" in bambuddy.archives[ours["id"]]["external_url"]
    monkeypatch.setenv("OVERWRITE_ARCHIVE_EXTERNAL_LINK", "true")
    assert run_sync(archive_ids=[foreign["id"]], force=True).success
    assert "/web/part/" in bambuddy.archives[foreign["id"]]["external_url"]


def test_links_and_images_off(bb_env, bambuddy, inventree, monkeypatch):
    monkeypatch.setenv("SYNC_ARCHIVE_EXTERNAL_LINK", "false")
    monkeypatch.setenv("SYNC_PART_IMAGES", "false")
    benchy = finished(bambuddy, "Benchy")
    assert run_sync().success
    assert bambuddy.archives[benchy["id"]]["external_url"] is None
    assert next(iter(inventree.parts.values()))["image"] is None
    assert bambuddy.count("POST", "/api/v1/printers/camera/stream-token") == 0
    # switched on later: the print synced before gets what it missed, and nothing twice
    monkeypatch.setenv("SYNC_ARCHIVE_EXTERNAL_LINK", "true")
    monkeypatch.setenv("SYNC_PART_IMAGES", "true")
    assert run_sync().success
    assert "/web/part/" in bambuddy.archives[benchy["id"]]["external_url"]
    assert next(iter(inventree.parts.values()))["image"] is not None
    assert len(inventree.stock_items) == 1 and len(inventree.parts) == 1


def test_success_only_off_and_max_archives(bb_env, bambuddy, inventree, monkeypatch):
    monkeypatch.setenv("SYNC_SUCCESS_ONLY", "false")
    for name in ("A", "B", "C"):
        finished(bambuddy, name, status="failed" if name == "A" else "completed")
    result = run_sync(max_archives=2)
    assert result.success
    assert len(inventree.stock_items) == 2  # stopped after two synced prints
    assert run_sync().success
    assert len(inventree.stock_items) == 3  # the failed print counts too when SYNC_SUCCESS_ONLY is false
