"""`python -m bench.run_start`: how long a sync run's worker takes to start, Dagster's way and ours.

The Dagster services run as docker-compose.yml runs them, against the InvenTree and Bambuddy
stand-ins, twice in one session: with the plain code server (`dagster api grpc`: each run worker
is a spawned interpreter that imports dagster and the definitions) and with
orchestration/code_server.py (each worker a fork of a process that imported them once). Each
time, one print at a time is asked for and synced; per run we read its events: launch (STARTING
until the worker's RUN_START), dbt (the dbt step; a warm worker does not parse the project) and
run (STARTING until RUN_SUCCESS). The modes alternate, so a
busy moment of this shared machine falls on both. One JSON line last, medians in seconds and
the ratios spawn / warm.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.latency import run_phases
from bench.stand_ins import stand_in_env
from orchestration.processes import Supervisor
from orchestration.services import start_dagster

REPO = Path(__file__).resolve().parents[1]


def one_round(warm: bool, runs: int, work: Path, inventree, bambuddy, ids: dict) -> list[dict]:
    from dagster import DagsterInstance

    from orchestration.ledger import Ledger

    data, home = work / "data", work / "dagster_home"
    data.mkdir(parents=True)
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = stand_in_env(data, home, inventree, bambuddy, ids, SYNC_ON_STARTUP="false")
    printer = bambuddy.add_printer("Bench", f"BENCH{int(warm)}", "X1C")["id"]
    with Supervisor(work / "logs", env) as procs:
        start_dagster(procs, home, cwd=REPO, warm_workers=warm)
        ledger = Ledger(data / "sync.sqlite3")
        for n in range(runs):
            archive = bambuddy.add_archive(printer_id=printer, print_name=f"Bench part {n}",
                                           content_hash=f"bench-{warm}-{n}", filament_used_grams=5.0)
            bambuddy.add_run(archive["id"], status="completed")
            request_id = ledger.add_request("archive", archive_ids=[archive["id"]])
            deadline = time.monotonic() + 180
            while ledger.request(request_id)["status"] not in ("done", "failed"):
                if time.monotonic() > deadline or procs.dead():
                    raise SystemExit(f"request {request_id} not served; logs in {work / 'logs'}")
                time.sleep(0.2)
        with DagsterInstance.from_config(str(home)) as instance:
            phases = run_phases(instance)
    dbt = "dbt_print_history_assets"
    return [{"launch": p["RUN_START"] - p["RUN_STARTING"], "dbt": p[f"STEP_SUCCESS:{dbt}"] - p[f"STEP_START:{dbt}"],
             "run": p["RUN_SUCCESS"] - p["RUN_STARTING"]}
            for p in phases if {"RUN_STARTING", "RUN_START", "RUN_SUCCESS", f"STEP_SUCCESS:{dbt}"} <= p.keys()]


def main(argv: list[str] | None = None) -> int:
    from tests.fakes.bambuddy import FakeBambuddy
    from tests.fakes.inventree import FakeInvenTree, seed_demo

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per mode, alternating")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-run-start-"))
    results: dict[str, list[dict]] = {"spawn": [], "warm": []}
    try:
        with FakeInvenTree() as inventree, FakeBambuddy() as bambuddy:
            ids = seed_demo(inventree)
            for r in range(args.rounds):
                for mode in ("spawn", "warm"):
                    got = one_round(mode == "warm", args.runs, work / f"{mode}-{r}", inventree, bambuddy, ids)
                    results[mode] += got
                    print(f"round {r} {mode}: " + ", ".join(f"launch {g['launch']:.2f} dbt {g['dbt']:.2f}" for g in got),
                          file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    phases = ("launch", "dbt", "run")
    median = {mode: {k: round(statistics.median(g[k] for g in got), 2) for k in phases} for mode, got in results.items()}
    line = {"runs": {m: len(g) for m, g in results.items()}}
    for k in phases:
        line[f"{k}_s"] = {m: v[k] for m, v in median.items()}
        line[f"{k}_ratio"] = round(median["spawn"][k] / median["warm"][k], 2)
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
