"""`python -m bench.soak`: the automatic loop left alone with things going wrong.

The Dagster code server, daemon and webserver and the sync API run as docker-compose.yml runs
them (default settings:
SYNC_ON_STARTUP, the 5 s scheduler, POLL_INTERVAL_SECONDS 300) against the InvenTree and Bambuddy
stand-ins. Prints arrive throughout on several printers as Bambuddy archives, each announced by
Bambuddy's webhook, a mix of completed and failed ones and one poison print (a thumbnail InvenTree
refuses). Meanwhile: Bambuddy is down for a while (webhooks keep coming), InvenTree answers 5xx
in bursts, the code server is killed (its supervisor starts it again, as compose's restart
policy does), and DAGSTER_HOME is wiped and the Dagster services restarted. Afterwards every
good print must be in stock exactly once and linked, the poison print in needs_attention with
its reason, no request left pending, one startup run per daemon start. Prints one JSON line
last (the targets are the issue's; exit 1 when one is missed).

Latency is print end -> link written in Bambuddy (the last side effect). p95_s counts from when
the print could be read: its arrival, or Bambuddy's return for a print that ended while Bambuddy
was down (it exists nowhere else). p95_from_arrival_s counts from the arrival regardless, so the
outage's own share of the wait stays visible.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import requests

from bench.stand_ins import SENSOR_SETTINGS, stand_in_env
from orchestration.processes import Supervisor, signal_group, stop
from ingestion.devbroker import free_port
from orchestration.services import start_dagster

REPO = Path(__file__).resolve().parents[1]
CORRUPT_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 12  # PNG magic, no image: InvenTree refuses it
AUTOMATIC = {"startup", "poll", "finished_prints", "retry", "webhook"}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 2)


@dataclass
class Print:
    archive_id: int
    good: bool
    poison: bool
    arrived: float


@dataclass
class Soak:
    prints: int
    printers: int
    duration: float
    seed: int
    work: Path
    events: list[str] = field(default_factory=list)
    daemon_starts: int = 0
    outages: list[list[float]] = field(default_factory=list)  # [down, back] wall clock, Bambuddy

    def note(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self.t0:6.1f}s {text}")
        print(self.events[-1], file=sys.stderr, flush=True)

    def run(self) -> dict:
        from tests.fakes.bambuddy import FakeBambuddy
        from tests.fakes.inventree import FakeInvenTree, seed_demo

        rng = random.Random(self.seed)
        self.t0 = time.monotonic()
        data, self.home = self.work / "data", self.work / "dagster_home"
        data.mkdir(parents=True)
        with FakeInvenTree() as inventree, FakeBambuddy() as bambuddy:
            ids = seed_demo(inventree)
            printer_ids = [bambuddy.add_printer(f"Soak {n}", f"SOAK{n:03d}", ("X1C", "P1S", "A1")[n % 3])["id"]
                           for n in range(self.printers)]
            api_port = free_port()
            env = stand_in_env(data, self.home, inventree, bambuddy, ids, drop=(*SENSOR_SETTINGS, "SYNC_ON_STARTUP"),
                               PYTHONUNBUFFERED="1", SYNC_API_PORT=str(api_port), SYNC_WAIT_SECONDS="1")
            with Supervisor(self.work / "logs", env) as procs:
                self.procs = procs
                procs.python("sync-api", ["orchestration.api"])
                self.start_dagster()
                self.steady(data)
                self.t0 = time.monotonic()  # prints and faults are timed from the steady state
                self.wall0 = time.time()
                plan = self.plan(rng)
                made: list[Print] = []
                faults = [(0.15, "bambuddy down", lambda: self.bambuddy_down(bambuddy)),
                          (0.30, "bambuddy back", lambda: self.bambuddy_back(bambuddy)),
                          (0.35, "inventree 5xx burst", lambda: inventree.fail_rate(0.4, statuses=(500, 502, 503))),
                          (0.45, "inventree calm", inventree.clear_faults),
                          (0.50, "code server killed", self.kill_code_server),
                          (0.65, "DAGSTER_HOME wiped, Dagster services restarted", self.reset_dagster_home)]
                for n, (moment, status) in enumerate(plan):
                    while faults and faults[0][0] * self.duration <= moment:
                        self.wait_until(faults[0][0] * self.duration)
                        self.note(faults[0][1])
                        faults.pop(0)[2]()
                    self.wait_until(moment)
                    made.append(self.arrive(bambuddy, n, status, printer_ids[n % self.printers], api_port))
                for _, text, action in faults:
                    self.note(text)
                    action()
                self.note("last print arrived; waiting for the loop to settle")
                settled = self.settle(inventree, bambuddy, made, data)
                self.note("settled" if settled else "did not settle in time")
            return self.measure(inventree, bambuddy, made, data)

    # --- the things a user does and that go wrong -------------------------------------------
    def bambuddy_down(self, bambuddy) -> None:
        bambuddy.fail_rate(1.0, kinds=("drop",))
        self.outages.append([time.time(), float("inf")])

    def bambuddy_back(self, bambuddy) -> None:
        bambuddy.clear_faults()
        self.outages[-1][1] = time.time()

    def readable_at(self, p: Print) -> float:
        """When the print could first be read: a print that ends while Bambuddy is down exists
        only inside Bambuddy, so no pipeline can see it before Bambuddy is back."""
        for down, back in self.outages:
            if down <= p.arrived < back:
                return back
        return p.arrived

    def start_dagster(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "deploy" / "dagster.yaml", self.home / "dagster.yaml")
        self.dagster = start_dagster(self.procs, self.home, cwd=REPO)
        self.daemon_starts += 1

    def steady(self, data: Path) -> None:
        """Wait for the startup sync of the fresh daemon: a user's daemon runs for weeks."""
        from orchestration.ledger import Ledger
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if (data / "sync.sqlite3").exists() and any(r["kind"] == "startup" for r in
                                                        Ledger(data / "sync.sqlite3").requests(("done", "failed"))):
                self.note("daemon up, startup sync done")
                return
            if self.procs.dead():
                raise SystemExit(f"a service died; logs in {self.work / 'logs'}")
            self.supervise()
            time.sleep(1)
        raise SystemExit(f"no startup sync within 240 s; logs in {self.work / 'logs'}")

    def stop(self, child) -> None:
        # processes.stop also kills what is left in the group after the leader exits: a code server
        # the daemon spawned while shutting down outlived it otherwise (seen once after a soak)
        stop(child.proc, timeout=30)
        self.procs.children.remove(child)

    def reset_dagster_home(self) -> None:
        """Everything that uses DAGSTER_HOME goes down (as `docker compose down` would stop the
        code server too), the folder is wiped, and they come up again."""
        children = self.dagster.children()
        for child in children:  # all at once, as `docker compose down` does
            signal_group(child.proc, signal.SIGTERM)
        for child in children:
            self.stop(child)
        # gone for Dagster, kept for a look at its runs (the work directory goes unless --keep)
        self.home.rename(self.work / "dagster_home.wiped")
        self.start_dagster()

    def kill_code_server(self) -> None:
        """The code server's container dies (OOM, crash): its whole group, run workers too. Its
        supervisor (compose's `restart: unless-stopped`, here revive()) starts it again."""
        code = self.dagster.code_server
        os.killpg(code.proc.pid, signal.SIGKILL)
        self.note(f"killed code server pid {code.proc.pid} and its group")

    def plan(self, rng: random.Random) -> list[tuple[float, str]]:
        """Arrival moments over the first 80 % of the soak: mostly completed, some failed, one poison."""
        moments = sorted(rng.uniform(3, self.duration * 0.8) for _ in range(self.prints))
        statuses = ["completed" if rng.random() > 0.15 else "failed" for _ in moments]
        statuses[min(2, len(statuses) - 1)] = "poison"
        return list(zip(moments, statuses))

    def arrive(self, bambuddy, n: int, status: str, printer_id: int, api_port: int) -> Print:
        poison = status == "poison"
        archive = bambuddy.add_archive(printer_id=printer_id, print_name=f"Soak part {n % 7}",
                                       content_hash=f"soak-{n % 7}", filament_used_grams=5.0 + n % 7,
                                       print_time_seconds=600)
        if poison:
            bambuddy.thumbnails[archive["id"]] = CORRUPT_PNG
        bambuddy.add_run(archive["id"], status="failed" if status == "failed" else "completed")
        try:  # Bambuddy's webhook (it keeps sending while its own API is down)
            requests.post(f"http://127.0.0.1:{api_port}/webhooks/bambuddy", timeout=10,
                          json={"event": "print_complete" if status != "failed" else "print_failed"})
        except requests.RequestException:
            pass  # the API may still be starting: the finished-prints watermark finds it anyway
        return Print(archive["id"], good=status == "completed", poison=poison, arrived=time.time())

    def wait_until(self, moment: float) -> None:
        while True:
            left = self.t0 + moment - time.monotonic()
            self.supervise()
            if left <= 0:
                return
            time.sleep(min(left, 0.5))

    def supervise(self) -> None:
        for child in self.procs.revive():
            self.note(f"{child.name} exited; started again")

    def settle(self, inventree, bambuddy, made: list[Print], data: Path) -> bool:
        from orchestration.ledger import Ledger
        deadline = time.monotonic() + max(120.0, self.duration)
        ledger = Ledger(data / "sync.sqlite3")
        while time.monotonic() < deadline:
            linked = all("/web/part/" in (bambuddy.archives[p.archive_id].get("external_url") or "")
                         for p in made if p.good)
            poison = all(getattr(ledger.get(f"bambuddy:{p.archive_id}:1"), "state", None) == "needs_attention"
                         for p in made if p.poison)
            if linked and poison and not ledger.requests():
                time.sleep(3)  # a late duplicate would show up here
                return True
            self.supervise()
            time.sleep(1)
        return False

    def measure(self, inventree, bambuddy, made: list[Print], data: Path) -> dict:
        from orchestration.ledger import Ledger
        ledger = Ledger(data / "sync.sqlite3")
        batches = Counter(s["batch"] for s in inventree.stock_items.values())
        good = [p for p in made if p.good]
        entries = ledger.entries([f"bambuddy:{p.archive_id}:1" for p in made])
        latencies, from_arrival, slowest = [], [], []
        for p in good:
            entry = entries.get(f"bambuddy:{p.archive_id}:1")
            written = ledger_link_time(ledger, entry.print_id) if entry else None
            if written:
                latency = written - self.readable_at(p)
                latencies.append(latency)
                from_arrival.append(written - p.arrived)
                slowest.append((round(latency, 1), round(p.arrived - self.wall0, 1), p.archive_id))
        for latency, at, archive_id in sorted(slowest, reverse=True)[:8]:
            print(f"  slow: archive {archive_id:3d} arrived at {at:6.1f}s, linked {latency:5.1f}s after it was "
                  "readable", file=sys.stderr)
        with ledger._connect() as conn:
            served = conn.execute("SELECT run_id, kind FROM sync_requests WHERE run_id IS NOT NULL").fetchall()
            runs = conn.execute("SELECT run_id, created + reused + skipped + failed + links AS work, details_json "
                                "FROM sync_runs").fetchall()
        kinds: dict[str, set[str]] = {}
        for row in served:
            kinds.setdefault(row["run_id"], set()).add(row["kind"])
        idle = sum(1 for r in runs if not r["work"] and r["details_json"] in (None, "[]")
                   and kinds.get(r["run_id"], {"retry"}) <= AUTOMATIC)
        return {
            "prints": len(made),
            "good": len(good),
            "in_stock_once": sum(1 for p in good if batches.get(f"bambuddy-{p.archive_id}") == 1),
            "linked": sum(1 for p in good if "/web/part/" in (bambuddy.archives[p.archive_id].get("external_url") or "")),
            "needs_attention": ledger.counts()["needs_attention"],
            "poison": sum(1 for p in made if p.poison),
            "duplicates": sum(n - 1 for n in batches.values()),
            "lost": sum(1 for p in good if f"bambuddy-{p.archive_id}" not in batches),
            "runs": len(runs),
            "idle_runs": idle,
            "startup_runs": len({r["run_id"] for r in served if r["kind"] == "startup"}),
            "daemon_starts": self.daemon_starts,
            "pending_requests_left": len(ledger.requests()),
            "p95_s": percentile(latencies, 0.95),
            "p50_s": percentile(latencies, 0.5),
            "p95_from_arrival_s": percentile(from_arrival, 0.95),
            "seconds": round(time.monotonic() - self.t0, 1),
        }


def ledger_link_time(ledger, print_id: str) -> float | None:
    with ledger._connect() as conn:
        row = conn.execute("SELECT link_written_at FROM sync_ledger WHERE print_id = ?", (print_id,)).fetchone()
    if not row or not row[0]:
        return None
    return datetime.strptime(row[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def targets_met(r: dict) -> list[str]:
    missed = []
    if not (r["in_stock_once"] == r["linked"] == r["good"]):
        missed.append("in_stock_once == linked == good")
    if r["duplicates"] or r["lost"]:
        missed.append("duplicates == lost == 0")
    if r["needs_attention"] != r["poison"]:
        missed.append("needs_attention == poison prints")
    if r["startup_runs"] != r["daemon_starts"]:
        missed.append("startup_runs == daemon_starts")
    if r["pending_requests_left"]:
        missed.append("pending_requests_left == 0")
    if r["idle_runs"] > r["daemon_starts"] + 1:
        missed.append("idle_runs <= daemon_starts + 1")
    if r["p95_s"] is None or r["p95_s"] > 30:
        missed.append("p95_s <= 30")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prints", type=int, default=60)
    parser.add_argument("--printers", type=int, default=4)
    parser.add_argument("--duration", type=float, default=300, help="seconds over which prints and faults happen")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", help="keep the work directory (logs, ledger) here")
    args = parser.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-soak-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = Soak(args.prints, args.printers, args.duration, args.seed, work).run()
    missed = targets_met(result)
    result["targets_missed"] = missed
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
