"""The README's "Without Docker" steps, run as written in a copy of the repository: the setup lines
in bash, then each service line as its own process (its own group, default signals), on loopback
and free ports instead of 0.0.0.0:3000/8088/8080. They must all come up, see the same absolute
DAGSTER_HOME and DATA_DIR, and stop on SIGTERM."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ingestion.devbroker import DevBroker, free_port
from orchestration.processes import spawn, stop
from orchestration.services import code_server_serving

REPO = Path(__file__).resolve().parents[2]
LEFT_OUT = {".git", ".venv", ".demo", "data", ".dagster_home", "target", "target-docs", "logs", "__pycache__",
            ".pytest_cache", "screenshots", ".env"}


def readme_steps() -> list[str]:
    text = (REPO / "README.md").read_text()
    start = text.index("```sh", text.index("Without Docker, run the services directly"))
    block = text[start + len("```sh"):text.index("```", start + 5)]
    return [line for line in block.strip().splitlines() if line.strip()]


def copy_repo(dest: Path) -> Path:
    def ignore(folder, names):
        left = {n for n in names if n in LEFT_OUT}
        if Path(folder).name == "ingestion":
            left.add("config.json")  # someone's real printers
        return left
    shutil.copytree(REPO, dest, ignore=ignore)
    os.symlink(sys.prefix, dest / ".venv")  # the venv `make venv` made; its stamp is newer than the copied lock
    return dest


def bash(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{script}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def wait_for(what: str, check, procs: dict, logs: Path, timeout: float = 150):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n" \
                                        f"{(logs / (name + '.log')).read_text(errors='replace')[-3000:]}"
        try:
            result = check()
            if result:
                return result
        except (requests.RequestException, ValueError, KeyError):
            pass
        time.sleep(1)
    raise AssertionError(f"{what} not within {timeout}s; logs in {logs}")


@pytest.mark.slow
def test_the_readme_steps_without_docker_run_as_written(tmp_path, inventree):
    steps = readme_steps()
    last_setup = next(i for i, line in enumerate(steps) if "instance migrate" in line)
    setup, services = steps[:last_setup + 1], steps[last_setup + 1:]
    assert setup[0].startswith("make venv") and len(services) == 6
    fill_in = next(i for i, line in enumerate(setup) if line.startswith("set -a"))  # after the two cp lines
    repo = copy_repo(tmp_path / "printfarm")
    shell_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    bash("\n".join(setup[:fill_in]), repo, shell_env)

    # what the user fills in: the InvenTree stand-in (MQTT-only mode), one printer on a real broker
    with DevBroker() as broker:
        with (repo / ".env").open("a") as env_file:
            env_file.write(f"INVENTREE_BASE_URL={inventree.base_url}\nINVENTREE_TOKEN={inventree.token}\n"
                           f"INVENTREE_PART_CATEGORY_ID={inventree.ids['INVENTREE_PART_CATEGORY_ID']}\n"
                           f"INVENTREE_STOCK_LOCATION_ID={inventree.ids['INVENTREE_STOCK_LOCATION_ID']}\n")
        (repo / "ingestion" / "config.json").write_text(json.dumps({"printers": [
            {"name": "X1C", "host": broker.host, "port": broker.port, "serial": "SIM1",
             "access_code": broker.password, "ca_file": str(broker.ca_file)}]}))
        dumped = bash("\n".join(setup[fill_in:]) + "\nenv -0", repo, shell_env).stdout
        env = dict(item.split("=", 1) for item in dumped.split("\0") if "=" in item)
        home = Path(env["DAGSTER_HOME"])
        assert home == repo / ".dagster_home" and (home / "dagster.yaml").exists()

        ports = {"3000": free_port(), "8088": free_port(), "8080": free_port(), "4000": free_port()}
        assert env["DAGSTER_CODE_SERVER_PORT"] == "4000"  # .env's port, the code server's line's
        env["DAGSTER_CODE_SERVER_PORT"] = str(ports["4000"])
        procs = {}
        try:
            for line in services:
                args = shlex.split(line, comments=True)
                args = [str(ports.get(a, a)) if a != "0.0.0.0" else "127.0.0.1" for a in args]
                name = "-".join(Path(a).name for a in args[:2]) if args[0].endswith("/dagster") else Path(args[0]).name
                log = open(tmp_path / f"{name}.log", "wb")
                procs[name] = spawn(args, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
                if name == "printfarm-code-server":  # "Start it first": the others find it serving
                    wait_for("the code server", lambda: code_server_serving(ports["4000"]), procs, tmp_path)
            api = f"http://127.0.0.1:{ports['8088']}"
            health = wait_for("the sync API seeing the daemon's heartbeat in DAGSTER_HOME", lambda: (
                h := requests.get(f"{api}/health", timeout=5).json())["dagster"]["daemon_running"] and h, procs, tmp_path)
            assert repo / health["ledger"]["path"] == repo / "data" / "sync.sqlite3" and health["ledger"]["reachable"]
            ui = f"http://127.0.0.1:{ports['3000']}"
            query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
            entries = wait_for("the Dagster UI with the code location loaded", lambda: [
                e for e in requests.post(f"{ui}/graphql", json={"query": query}, timeout=10).json()
                ["data"]["workspaceOrError"]["locationEntries"] if e["loadStatus"] == "LOADED"], procs, tmp_path)
            assert entries
            docs = wait_for("the dbt docs", lambda: requests.get(f"http://127.0.0.1:{ports['8080']}/", timeout=5), procs, tmp_path)
            assert docs.status_code == 200 and "dbt" in docs.text.lower()
            heartbeat = wait_for("the logger's heartbeat", lambda: subprocess.run(
                [str(repo / ".venv/bin/python"), "-m", "ingestion.healthcheck"], cwd=repo, env=env,
                capture_output=True, text=True).returncode == 0, procs, tmp_path)
            assert heartbeat and (repo / "data" / "print_history.db").exists()
        finally:
            codes = {name: stop(proc, timeout=20) for name, proc in procs.items()}
            logs = {name: (tmp_path / f"{name}.log").read_text(errors="replace")[-1500:] for name in procs}
        # SIGTERM stopped every one of them: none needed the SIGKILL after 20 s
        assert all(code is not None and code != -signal.SIGKILL for code in codes.values()), (codes, logs)
