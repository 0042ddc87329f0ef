"""dbt runs inside the run worker (orchestration/dbt/in_process.py): the same dbt build gives the
same Dagster events as the `dbt` subprocess dagster-dbt starts otherwise, and a dbt that fails
fails the same way."""

import os
from pathlib import Path

from dagster import DagsterInstance, materialize

from orchestration.dbt.assets import PrintfarmDbtCli, dbt_print_history_assets, dbt_resource
from orchestration.dbt.in_process import DbtInProcess
from orchestration.dbt.project import dbt_executable, dbt_project

from .conftest import add_mqtt_job


def build(data_dir: Path, monkeypatch, resource) -> dict:
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    add_mqtt_job(data_dir, "1", "Benchy")
    add_mqtt_job(data_dir, "2", "Clip", status="failed")
    result = materialize([dbt_print_history_assets], resources={"dbt": resource},
                         instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success
    materialized = {}
    for event in result.get_asset_materialization_events():
        m = event.event_specific_data.materialization
        materialized[m.asset_key.to_user_string()] = m.metadata.get("dagster/row_count")
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed
              for e in result.get_asset_check_evaluations()}
    return {"materialized": materialized, "checks": checks}


def test_in_process_and_subprocess_dbt_give_the_same_events(tmp_path, monkeypatch):
    from ingestion.raw_schema import connect
    for name in ("in_process", "subprocess"):
        (tmp_path / name).mkdir()
        connect(tmp_path / name / "print_history.db").close()
    inside = build(tmp_path / "in_process", monkeypatch, dbt_resource())
    other_dbt = tmp_path / "bin" / "dbt"  # the same dbt under another path: run as a subprocess
    other_dbt.parent.mkdir()
    other_dbt.symlink_to(dbt_executable())
    outside = build(tmp_path / "subprocess", monkeypatch,
                    PrintfarmDbtCli(project_dir=dbt_project, dbt_executable=str(other_dbt)))
    assert inside == outside
    assert inside["materialized"]["silver_print_jobs"].value >= 1 and len(inside["checks"]) > 20


def test_the_worker_runs_dbt_itself_and_a_failing_dbt_says_why(tmp_path, monkeypatch):
    from ingestion.raw_schema import connect
    connect(tmp_path / "print_history.db").close()
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    resource = dbt_resource()
    ok = resource.cli(["parse"], manifest=dbt_project.manifest_path, target_path=tmp_path / "t1", raise_on_error=False)
    assert isinstance(ok.process, DbtInProcess) and ok.process.pid == os.getpid()
    assert ok.is_successful() and ok.get_error() is None
    assert (tmp_path / "t1" / "manifest.json").exists()
    bad = resource.cli(["build", "--no-such-flag"], manifest=dbt_project.manifest_path, target_path=tmp_path / "t2",
                       raise_on_error=False)
    list(bad.stream_raw_events())
    assert bad.process.returncode == 2 and not bad.is_successful()
    error = str(bad.get_error())
    assert "--no-such-flag" in error and "exit code `2`" in error
    assert os.environ.get("DBT_LOG_LEVEL") is None  # the in-process run's environment is put back
