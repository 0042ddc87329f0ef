"""A failing dbt data test never stops the push silently (issue #15 observation 1): the build goes
on, inventree_stock still runs for the other prints, DATA_DIR/dbt_test_failures.json names the
failing test, and the Dagster run carries a failing asset check (ERROR for a push-key test).
InvenTree's batch limit of 100 characters: tests/contracts/inventree/CONTRACT.md."""

import json

from dagster import AssetCheckSeverity

from tests.orchestration.conftest import add_mqtt_job, run_sync


def test_a_failing_push_key_test_is_reported_and_blocks_nothing_else(env, inventree):
    add_mqtt_job(env, "1", "Benchy")
    add_mqtt_job(env, "2", "Clip", serial="S" * 120)  # batch mqtt-SSS...-2 longer than 100: max_length fails
    result = run_sync()
    # the push ran and stocked the healthy print
    assert "inventree_stock" in {e.step_key for e in result.all_events if e.is_step_success or e.is_step_failure}
    assert any(i["batch"] == "mqtt-SERIAL1-1" for i in inventree.stock_items.values())
    failures = json.loads((env / "dbt_test_failures.json").read_text())
    failed = [f for f in failures if "max_length_silver_print_jobs_batch" in f["test"]]
    assert failed and failed[0]["status"] == "fail" and failed[0]["model"] == "silver_print_jobs"
    assert failed[0]["failures"] == 1
    checks = [e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    bad = [c for c in checks if "max_length_silver_print_jobs_batch" in c.check_name]
    assert bad and not bad[0].passed and bad[0].severity == AssetCheckSeverity.ERROR
    assert all(c.passed for c in checks if c not in bad and "batch" not in c.check_name and "description" not in c.check_name)


def test_all_passing_writes_an_empty_list(env, inventree):
    add_mqtt_job(env, "1", "Benchy")
    run_sync()
    assert json.loads((env / "dbt_test_failures.json").read_text()) == []
