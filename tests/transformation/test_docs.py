"""The dbt docs command: compile-only fallback on a cold start, served over HTTP, and generated
again (now with the models' column types) after a dbt build changed the warehouse."""

import os
import subprocess
import sys
import time

import requests

from ingestion.raw_schema import connect
from orchestration.processes import spawn, stop

from .conftest import dbt


def test_docs_are_served_and_gain_column_types_after_a_build(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = {**os.environ, "DATA_DIR": str(data)}
    proc = spawn([sys.executable, "-m", "orchestration.dbt.docs", "--port", "0", "--refresh", "0.5",
                  "--target", str(tmp_path / "docs")], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "compile-only" in line  # cold start: no raw database yet
        assert not (data / "print_history.db").exists()  # nothing created where the logger writes
        url = line.split(" at ", 1)[1].strip()
        page = requests.get(url + "index.html", timeout=10)
        assert page.status_code == 200 and "dbt" in page.text.lower()
        manifest = requests.get(url + "manifest.json", timeout=10).json()
        assert manifest["metadata"]["project_name"] == "printfarm"
        assert "model.printfarm.silver_print_jobs" in manifest["nodes"]  # the lineage, from the first minute
        assert requests.get(url + "catalog.json", timeout=10).json()["nodes"] == {}

        connect(data / "print_history.db").close()
        dbt(data, "run", "--select", "+silver_print_jobs")  # the models a sync run builds
        deadline = time.monotonic() + 90
        while "model.printfarm.silver_print_jobs" not in requests.get(url + "catalog.json", timeout=10).json()["nodes"]:
            assert time.monotonic() < deadline, "the docs were not generated again after the build"
            time.sleep(0.5)
        node = requests.get(url + "catalog.json", timeout=10).json()["nodes"]["model.printfarm.silver_print_jobs"]
        assert node["columns"]["print_id"]["type"] == "TEXT", node["columns"]["print_id"]
    finally:
        assert stop(proc, timeout=10) is not None
    assert "dbt docs regenerated (full) after a warehouse change" in proc.stdout.read()
