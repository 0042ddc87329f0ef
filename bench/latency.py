"""`python -m bench.latency`: how long a finished print takes to reach InvenTree, end to end.

Everything real on loopback except InvenTree and Bambuddy (the stand-ins from tests/fakes, the
Bambuddy one fed from the printers' MQTT reports as the real one is): a TLS broker, simulated
printers, the MQTT logger, the Dagster code server, daemon and webserver (as compose runs them)
with the default sensor settings. The printers finish K prints at random moments; per print we
measure from its FINISH message to its StockItem in the InvenTree stand-in and to the link in its
Bambuddy archive. The time is split with the Dagster run that pushed the print (its events): detect (FINISH until the sensor
queued a run), queue (behind the run before it), launch (dequeued until the run's own process
had loaded the code and started), prepare (steps before dbt), dbt, push (dbt done until the
stock item), link.
Prints one JSON line last: {"prints", "p50_s", "p95_s", "max_s", "lost", "duplicates", ...}.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.stand_ins import stand_in_env
from ingestion.devbroker import DevBroker
from ingestion.scenarios import Job, Step, start_steps
from ingestion.simulator import BrokerAddress, Simulator
from orchestration.processes import Supervisor
from orchestration.services import start_dagster

REPO = Path(__file__).resolve().parents[1]
MODELS = ("X1C", "P1S", "A1")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def schedule(prints: int, printers: int, window: float, rng: random.Random) -> list[list[float]]:
    """FINISH moments (seconds after the start) per printer: random, at least 3 s apart on a printer."""
    moments = sorted(rng.uniform(5, window) for _ in range(prints))
    plan: list[list[float]] = [[] for _ in range(printers)]
    for n, t in enumerate(moments):
        lane = plan[n % printers]
        lane.append(max(t, lane[-1] + 3) if lane else t)
    return plan


class Watcher(threading.Thread):
    """Notes when each print's stock item and archive link first exist in the stand-ins."""

    def __init__(self, inventree, bambuddy):
        super().__init__(daemon=True)
        self.inventree, self.bambuddy = inventree, bambuddy
        self.stock_at: dict[str, float] = {}
        self.link_at: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            now = time.time()
            batches = {s["batch"] for s in list(self.inventree.stock_items.values())}
            for archive in list(self.bambuddy.archives.values()):
                name = archive["print_name"]
                if name not in self.stock_at and f"bambuddy-{archive['id']}" in batches:
                    self.stock_at[name] = now
                if name not in self.link_at and archive.get("external_url"):
                    self.link_at[name] = now


def run_phases(instance) -> list[dict]:
    """Event times of every sync_prints run, from the Dagster instance the daemon used."""
    runs = []
    for record in instance.get_run_records():
        times: dict[str, float] = {}
        for entry in instance.all_logs(record.dagster_run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            kind = event.event_type.name  # RUN_* (their values still say PIPELINE_*)
            if kind in ("RUN_ENQUEUED", "RUN_DEQUEUED", "RUN_STARTING", "RUN_START", "RUN_SUCCESS", "RUN_FAILURE"):
                times.setdefault(kind, entry.timestamp)
            elif kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE") and event.step_key:
                times.setdefault(f"{kind}:{event.step_key}", entry.timestamp)
        times.setdefault("RUN_ENQUEUED", record.create_timestamp.timestamp())
        runs.append(times)
    return runs


def breakdown(finish: float, done: float, stock: float, runs: list[dict]) -> dict[str, float] | None:
    dbt_key = next((k for r in runs for k in r if k.startswith("STEP_SUCCESS:dbt")), None)
    if dbt_key is None:
        return None
    for r in sorted(runs, key=lambda r: r["RUN_ENQUEUED"]):
        dbt_end = r.get(dbt_key)
        end = r.get("RUN_SUCCESS") or r.get("RUN_FAILURE")
        if dbt_end is None or end is None or not dbt_end <= stock <= end + 1:
            continue
        enq = r["RUN_ENQUEUED"]
        deq = r.get("RUN_DEQUEUED") or r.get("RUN_STARTING") or enq  # the launch starts once dequeued
        start = r.get("RUN_START", deq)
        dbt_start = r.get(dbt_key.replace("SUCCESS", "START"), start)
        return {"detect": max(0.0, enq - finish), "queue": max(0.0, deq - max(enq, finish)),
                "launch": max(0.0, start - max(deq, finish)), "prepare": max(0.0, dbt_start - max(start, finish)),
                "dbt": dbt_end - max(dbt_start, finish), "push": stock - dbt_end, "link": done - stock}
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prints", type=int, default=24, help="K prints in all")
    parser.add_argument("--printers", type=int, default=4)
    parser.add_argument("--window", type=float, default=150, help="FINISH moments spread over this many seconds")
    parser.add_argument("--drain", type=float, default=90, help="wait this long after the last FINISH")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", help="keep the work directory (logs, DAGSTER_HOME) here")
    args = parser.parse_args(argv)

    from dagster import DagsterInstance

    from tests.fakes.bambuddy import FakeBambuddy
    from tests.fakes.bambuddy_bridge import BambuddyBridge
    from tests.fakes.inventree import FakeInvenTree, seed_demo

    rng = random.Random(args.seed)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-latency-"))
    shutil.rmtree(work, ignore_errors=True)
    data, home = work / "data", work / "dagster_home"
    data.mkdir(parents=True)
    home.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    bench_started = time.monotonic()
    with DevBroker(workdir=work / "broker") as broker, FakeInvenTree() as inventree, FakeBambuddy() as bambuddy:
        ids = seed_demo(inventree)
        serials = [(f"LAT{n:03d}", MODELS[n % len(MODELS)]) for n in range(args.printers)]
        for serial, model in serials:
            bambuddy.add_printer(f"{model} {serial}", serial, model)
        bridge = BambuddyBridge(bambuddy, broker.host, broker.port, broker.username, broker.password,
                                str(broker.ca_file)).start()
        time.sleep(1)  # the bridge listens before the printers' first full reports
        sim = Simulator(BrokerAddress(broker.host, broker.port, broker.username, broker.password, str(broker.ca_file)))
        printers = [sim.add(serial, model) for serial, model in serials]
        for p in printers:
            p.wait_connected()
        config = data / "printers.json"
        config.write_text(json.dumps({"printers": [
            {"name": s, "host": broker.host, "port": broker.port, "serial": s, "access_code": broker.password,
             "ca_file": str(broker.ca_file)} for s, _ in serials]}))
        env = stand_in_env(data, home, inventree, bambuddy, ids, PYTHONUNBUFFERED="1")
        watcher = Watcher(inventree, bambuddy)
        with Supervisor(work / "logs", env) as procs:
            procs.python("logger", ["ingestion", "--log-level", "WARNING"], env={"LOGGER_CONFIG": str(config)})
            start_dagster(procs, home, cwd=REPO)  # code server, webserver, daemon: as compose runs them
            # Steady state first: the startup sync has run, so the code location and dbt are warm.
            with DagsterInstance.from_config(str(home)) as instance:
                deadline = time.monotonic() + 180
                while not any(r.is_finished for r in instance.get_runs(limit=5)):
                    if time.monotonic() > deadline or procs.dead():
                        raise SystemExit(f"no sync run finished within 180 s; logs in {work / 'logs'}")
                    time.sleep(0.5)
            watcher.start()
            finish_at: dict[str, float] = {}
            threads = [threading.Thread(target=play, args=(p, lane, n, finish_at), daemon=True)
                       for n, (p, lane) in enumerate(zip(printers, schedule(args.prints, args.printers,
                                                                            args.window, rng)))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            deadline = time.monotonic() + args.drain
            while time.monotonic() < deadline and not all(n in watcher.link_at for n in finish_at):
                time.sleep(0.2)
            time.sleep(2)  # a late duplicate would show up here
            watcher.stop.set()
            with DagsterInstance.from_config(str(home)) as instance:
                runs = run_phases(instance)
        sim.close()
        bridge.stop()
        batches = Counter(s["batch"] for s in inventree.stock_items.values())

    latencies, parts = [], []
    for name, finished in finish_at.items():
        if name in watcher.stock_at and name in watcher.link_at:
            done = max(watcher.stock_at[name], watcher.link_at[name])
            latencies.append(done - finished)
            split = breakdown(finished, done, watcher.stock_at[name], runs)
            if split:
                parts.append(split)
    lost = len(finish_at) - len(latencies)
    result = {
        "prints": len(finish_at),
        "p50_s": round(percentile(latencies, 0.5), 2) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 2) if latencies else None,
        "max_s": round(max(latencies), 2) if latencies else None,
        "lost": lost,
        "duplicates": sum(n - 1 for n in batches.values()),
        "runs": len(runs),
        "mean_s": {k: round(statistics.fmean(p[k] for p in parts), 2) for k in parts[0]} if parts else {},
        "seconds": round(time.monotonic() - bench_started, 1),
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0 if lost == 0 and result["duplicates"] == 0 else 1


def play(printer, lane: list[float], n: int, finish_at: dict[str, float]) -> None:
    """Jobs back to back on one printer: each starts right after the last and FINISHes on time."""
    t0 = time.monotonic()
    for k, moment in enumerate(lane):
        job = Job(f"latency print {n}-{k}", ticks=1)
        for step in start_steps(job):
            printer.send(step)
        time.sleep(max(0.0, t0 + moment - time.monotonic()))
        printer.send(Step(0, {"gcode_state": "FINISH", "mc_percent": 100, "mc_remaining_time": 0}))
        finish_at[job.name] = time.time()
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
