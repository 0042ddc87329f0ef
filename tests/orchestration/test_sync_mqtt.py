"""sync_prints end to end in MQTT-only mode (no BAMBUDDY_BASE_URL): raw logger rows -> dbt ->
InvenTree stand-in. InvenTree behaviour from tests/contracts/inventree/CONTRACT.md."""

from .conftest import add_mqtt_job, ledger_rows, run_sync


def test_first_sync_then_rerun_creates_nothing(env, inventree):
    add_mqtt_job(env, "101", "Benchy", ended="2026-11-20T11:00:00.000000Z")
    add_mqtt_job(env, "102", "Benchy", ended="2026-11-20T13:00:00.000000Z")
    add_mqtt_job(env, "103", "Vase", status="failed", ended="2026-11-20T14:00:00.000000Z")
    result = run_sync()
    assert result.success
    parts = list(inventree.parts.values())
    assert [(p["IPN"], p["name"], p["category"]) for p in parts] == [("BMB-benchy", "Benchy", 1)]
    batches = sorted(s["batch"] for s in inventree.stock_items.values())
    assert batches == ["mqtt-SERIAL1-101", "mqtt-SERIAL1-102"]
    item = next(iter(inventree.stock_items.values()))
    assert item["location"] == 1 and item["status"] == 10 and "X1C bay 1" in item["notes"]
    assert "mqtt:SERIAL1:10" in item["notes"]
    params = {inventree.templates[p["template"]]["name"]: p for p in inventree.parameters.values()}
    # Issue 14 observation 10: the part's PrintTime is the median of its successful prints (1 h and
    # 3 h -> 2 h), not whichever print came last; each stock item notes its own run's time.
    assert params["PrintTime"]["data"] == "7200 s" and "Weight" not in params  # MQTT knows no weight
    notes = {s["batch"]: s["notes"] for s in inventree.stock_items.values()}
    assert "print time 1h 00m" in notes["mqtt-SERIAL1-101"] and "print time 3h 00m" in notes["mqtt-SERIAL1-102"]
    assert len(inventree.parameters) == 1
    states = {r["print_id"]: r["state"] for r in ledger_rows(env)}
    assert states == {"mqtt:SERIAL1:101": "synced", "mqtt:SERIAL1:102": "synced", "mqtt:SERIAL1:103": "skipped"}
    meta = result.asset_materializations_for_node("inventree_stock")[0].metadata
    assert meta["created"].value == 2 and meta["skipped"].value == 1 and meta["parts_created"].value == 1

    requests_before = len(inventree.requests)
    again = run_sync()
    assert again.success
    assert len(inventree.stock_items) == 2 and len(inventree.parts) == 1
    assert len(inventree.requests) - requests_before <= 5  # nothing new: no lookups at all
    meta = again.asset_materializations_for_node("inventree_stock")[0].metadata
    assert meta["created"].value == 0


def test_stock_item_found_by_batch_when_the_ledger_forgot(env, inventree):
    """The ledger alone is not trusted: a lost ledger never duplicates a stock item."""
    add_mqtt_job(env, "201", "Clip")
    assert run_sync().success
    (env / "sync.sqlite3").unlink()
    result = run_sync()
    assert result.success
    assert len(inventree.stock_items) == 1
    meta = result.asset_materializations_for_node("inventree_stock")[0].metadata
    assert meta["reused"].value == 1 and meta["created"].value == 0


def test_a_transient_failure_retries_that_print_only_after_its_backoff(env, inventree, monkeypatch):
    monkeypatch.setenv("SYNC_RETRY_BASE_SECONDS", "600")
    monkeypatch.setenv("HTTP_RETRY_BACKOFF_SECONDS", "0.05")
    add_mqtt_job(env, "301", "Alpha", ended="2026-11-20T11:00:00.000000Z")
    add_mqtt_job(env, "302", "Beta", ended="2026-11-20T12:00:00.000000Z")
    # 1 + HTTP_RETRIES answers of 503: Alpha's tries in place run out while the server answers Beta;
    # Alpha's one more go at the end of the push brings it in, in the same run
    inventree.inject(status=503, times=4, method="POST", path_prefix="/api/stock/")
    result = run_sync()
    assert result.success and len(inventree.stock_items) == 2
    assert {r["print_id"]: (r["state"], r["attempts"]) for r in ledger_rows(env)} == {
        "mqtt:SERIAL1:301": ("synced", 0), "mqtt:SERIAL1:302": ("synced", 0)}

    # 503 for both goes: the print waits its backoff, one attempt spent; the others are not held
    add_mqtt_job(env, "303", "Gamma", ended="2026-11-20T13:00:00.000000Z")
    inventree.inject(status=503, times=8, method="POST", path_prefix="/api/stock/")
    result = run_sync()
    assert result.success  # one print's trouble is not the run's
    assert len(inventree.stock_items) == 2
    gamma = {r["print_id"]: r for r in ledger_rows(env)}["mqtt:SERIAL1:303"]
    assert gamma["state"] == "retrying" and gamma["step"] == "stock_item" and gamma["attempts"] == 1
    assert "503" in gamma["last_error"] and gamma["next_attempt_at"] > gamma["last_attempt_at"]
    meta = result.asset_materializations_for_node("inventree_stock")[0].metadata
    assert meta["retrying"].value == 1
    assert run_sync().success and len(inventree.stock_items) == 2  # not due yet: left alone
    monkeypatch.setenv("SYNC_RETRY_BASE_SECONDS", "0.01")
    from orchestration.ledger import Ledger
    Ledger(env / "sync.sqlite3").update("mqtt:SERIAL1:303", next_attempt_at="2000-01-01T00:00:00.000000Z")
    assert run_sync().success
    assert sorted(s["batch"] for s in inventree.stock_items.values()) == [
        "mqtt-SERIAL1-301", "mqtt-SERIAL1-302", "mqtt-SERIAL1-303"]
    assert {r["state"] for r in ledger_rows(env)} == {"synced"}


def test_a_refused_setting_waits_in_needs_attention_and_heals_when_fixed(env, inventree, monkeypatch):
    """The stock location was deleted in InvenTree: 400 {"location": ["Invalid pk ..."]} (transcript
    36_create_stock_bad_location). The print waits with the fix; a fixed setting heals it."""
    add_mqtt_job(env, "311", "Gamma")
    monkeypatch.setenv("INVENTREE_STOCK_LOCATION_ID", "999")
    result = run_sync()
    assert result.success and inventree.stock_items == {}
    (row,) = ledger_rows(env)
    assert row["state"] == "needs_attention" and row["step"] == "stock_item"
    assert "INVENTREE_STOCK_LOCATION_ID" in row["fix"] and "location" in row["reason"]
    check = [c for c in result.get_asset_check_evaluations() if c.check_name == "inventree_settings"][0]
    assert not check.passed and "INVENTREE_STOCK_LOCATION_ID=999" in str(check.metadata["problems"].value)
    queue = [c for c in result.get_asset_check_evaluations() if c.check_name == "print_queue"][0]
    assert not queue.passed
    assert run_sync().success and inventree.stock_items == {}  # same data, same settings: not tried again
    monkeypatch.setenv("INVENTREE_STOCK_LOCATION_ID", str(inventree.ids["INVENTREE_STOCK_LOCATION_ID"]))
    assert run_sync().success
    assert [s["batch"] for s in inventree.stock_items.values()] == ["mqtt-SERIAL1-311"]
    assert ledger_rows(env)[0]["state"] == "synced"


def test_wrong_token_fails_fast_and_writes_nothing(env, inventree, monkeypatch):
    add_mqtt_job(env, "401", "Gamma")
    monkeypatch.setenv("INVENTREE_TOKEN", "inv-" + "0" * 40 + "-20991231")
    result = run_sync()
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    text = str(failure.event_specific_data.error)
    assert "INVENTREE_TOKEN" in text and "inv-" + "0" * 40 not in text
    assert inventree.parts == {} and inventree.stock_items == {}


def test_missing_templates_warn_without_failing(env, inventree):
    inventree.templates.clear()
    add_mqtt_job(env, "501", "Delta")
    result = run_sync()
    assert result.success
    meta = result.asset_materializations_for_node("inventree_stock")[0].metadata
    assert "PrintTime" in meta["warnings"].value and len(inventree.stock_items) == 1


def test_dbt_assets_report_row_counts_and_columns(env, inventree):
    add_mqtt_job(env, "601", "Epsilon")
    result = run_sync()
    assert result.success
    silver = result.asset_materializations_for_node("dbt_print_history_assets")
    meta = {m.asset_key.to_user_string(): m.metadata for m in silver}
    assert meta["silver_print_jobs"]["dagster/row_count"].value == 1
    # the columns come from the model's yml (documented once, no per-run database round trip)
    from dagster import AssetKey
    from orchestration.definitions import defs
    spec = next(s for s in defs.resolve_all_asset_specs() if s.key == AssetKey("silver_print_jobs"))
    columns = spec.metadata["dagster/column_schema"].columns
    assert {"print_id", "batch", "ipn", "weight_g"} <= {c.name for c in columns}


def test_old_dbt_run_targets_are_pruned(env, inventree):
    """dagster-dbt writes a target dir per run; only the newest few are kept (disk stays bounded)."""
    import os
    import time

    from orchestration.dbt.assets import RUN_TARGET_GRACE_SECONDS, RUN_TARGETS_KEPT
    from orchestration.dbt.project import dbt_project

    target = dbt_project.project_dir / "target"
    old = [target / f"dbt_print_history_assets-old{n}-0000000" for n in range(RUN_TARGETS_KEPT + 3)]
    for n, d in enumerate(old):
        d.mkdir(parents=True, exist_ok=True)
        (d / "dbt.log").write_text("old run\n")
        os.utime(d, (1_000_000 + n, 1_000_000 + n))  # long ago
    add_mqtt_job(env, "701", "Zeta")
    assert run_sync().success
    left = [d for d in target.iterdir() if d.name.startswith("dbt_print_history_assets-")]
    # beyond the newest few, only dirs young enough to be another run's (pytest-xdist workers) stay
    young = [d for d in left if time.time() - d.stat().st_mtime <= RUN_TARGET_GRACE_SECONDS + 60]
    assert len(left) - len(young) <= RUN_TARGETS_KEPT
    kept_old = [d for d in old if d.exists()]
    assert len(kept_old) <= RUN_TARGETS_KEPT - 1, "this run's own dir is one of the newest"
    assert kept_old == old[len(old) - len(kept_old):], "the oldest run dirs went first"
    assert (target / "partial_parse.msgpack").exists() and (target / "manifest.json").exists()
