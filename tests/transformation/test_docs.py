"""The dbt docs command: compile-only fallback on a cold start, full docs once the raw layer exists,
served over HTTP."""

import json
import os
import subprocess
import sys

import requests

from ingestion.raw_schema import connect
from orchestration.dbt.docs import generate
from orchestration.settings import SyncSettings


def test_cold_start_falls_back_then_full_docs(tmp_path):
    settings = SyncSettings.from_env({"DATA_DIR": str(tmp_path / "data")})
    assert generate(tmp_path / "cold", settings) is False
    assert not (tmp_path / "data" / "print_history.db").exists()  # nothing created where the logger writes
    manifest = json.loads((tmp_path / "cold" / "manifest.json").read_text())
    assert "model.printfarm.silver_print_jobs" in manifest["nodes"]
    assert json.loads((tmp_path / "cold" / "catalog.json").read_text())["nodes"] == {}
    connect(tmp_path / "data" / "print_history.db").close()
    assert generate(tmp_path / "full", settings) is True
    catalog = json.loads((tmp_path / "full" / "catalog.json").read_text())
    assert "source.printfarm.raw.raw_printer_jobs" in catalog["sources"]


def test_docs_are_served(tmp_path):
    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "orchestration.dbt.docs", "--port", "0",
                             "--target", str(tmp_path / "docs")], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "compile-only" in line
        url = line.split(" at ", 1)[1].strip()
        page = requests.get(url + "index.html", timeout=10)
        assert page.status_code == 200 and "dbt" in page.text.lower()
        assert requests.get(url + "manifest.json", timeout=10).json()["metadata"]["project_name"] == "printfarm"
    finally:
        proc.terminate()
        proc.wait(10)
