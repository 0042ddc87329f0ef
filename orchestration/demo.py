"""`make demo` / `python -m orchestration.demo`: the whole pipeline on one machine.

Starts an MQTT broker with TLS + password (mosquitto when installed, else the embedded Python
broker; --broker chooses), three simulated printers (X1C, P1S, A1) running a mix of
prints, the MQTT logger, Dagster as docker-compose.yml runs it (code server, webserver, daemon;
sensors on), the dbt docs and the sync API. InvenTree and Bambuddy are the real ones when
INVENTREE_BASE_URL / BAMBUDDY_BASE_URL are set (environment or .env), otherwise in-process demo
stand-ins (tests/fakes), fed by the simulated printers as the real Bambuddy would be. Ctrl-C
stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import requests

from ingestion.devbroker import BROKER_KINDS, BrokerUnavailable, DevBroker
from ingestion.simulator import default_fleet
from orchestration.processes import Supervisor
from orchestration.services import start_dagster

REPO = Path(__file__).resolve().parents[1]
FLEET_NAMES = {"X1C": "X1C bay 1", "P1S": "P1S bay 2", "A1": "A1 bay 3"}
DEMO_INSTANCE = "# demo only\nnux:\n  enabled: false\n"


def load_dotenv(path: Path) -> dict[str, str]:
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                if value.strip():
                    values[key.strip()] = value.strip()
    return values


def start_broker(workdir: Path, kind: str = "auto") -> DevBroker | None:
    """Start the demo's broker and say which one runs; None (and why, on stderr) if none could start."""
    try:
        broker = DevBroker(workdir=workdir, kind=kind).start()
    except BrokerUnavailable as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return None
    print(f"broker: {broker.describe()}", flush=True)
    return broker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="printfarm-demo", description=__doc__)
    parser.add_argument("--workdir", default=str(REPO / ".demo"), help="demo data (wiped at start)")
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--docs-port", type=int, default=8080)
    parser.add_argument("--api-port", type=int, default=8088)
    parser.add_argument("--speed", type=float, default=300.0, help="simulator time factor")
    parser.add_argument("--broker", choices=BROKER_KINDS, default="auto",
                        help="auto: mosquitto if installed, else the embedded Python broker")
    parser.add_argument("--screenshots", help="with --smoke: save screenshots and rendered pages of the Dagster "
                                              "asset page and the dbt docs here (needs chromium)")
    parser.add_argument("--smoke", type=float, default=0,
                        help="headless check: exit 0 once prints reached InvenTree (and links Bambuddy), "
                             "1 after this many seconds")
    args = parser.parse_args(argv)

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    data, home = work / "data", work / "dagster_home"
    data.mkdir(parents=True)
    home.mkdir(parents=True)
    # the production instance settings, plus: no "join the community" pop-up over a visitor's UI
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text() + DEMO_INSTANCE)
    env = {**os.environ, **load_dotenv(REPO / ".env"), "DATA_DIR": str(data), "DAGSTER_HOME": str(home),
           "SENSOR_INTERVAL_SECONDS": "5", "DAGSTER_UI_URL": f"http://127.0.0.1:{args.dagster_port}",
           "PYTHONUNBUFFERED": "1"}
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    broker = start_broker(work / "broker", args.broker)
    if broker is None:
        return 2
    fleet = default_fleet(3)
    fakes = []
    with Supervisor(work / "logs", env) as procs:
        try:
            if not env.get("INVENTREE_BASE_URL"):
                from tests.fakes.inventree import FakeInvenTree, seed_demo
                inventree = FakeInvenTree().start()
                fakes.append(inventree)
                ids = seed_demo(inventree)
                env.update(INVENTREE_BASE_URL=inventree.base_url, INVENTREE_TOKEN=inventree.token,
                           INVENTREE_PART_CATEGORY_ID=str(ids["INVENTREE_PART_CATEGORY_ID"]),
                           INVENTREE_STOCK_LOCATION_ID=str(ids["INVENTREE_STOCK_LOCATION_ID"]))
                print(f"InvenTree: DEMO STAND-IN at {inventree.base_url} (browse {inventree.base_url}/demo/)")
            else:
                inventree = None
                print(f"InvenTree: {env['INVENTREE_BASE_URL']}")
            if not env.get("BAMBUDDY_BASE_URL"):
                from tests.fakes.bambuddy import FakeBambuddy
                from tests.fakes.bambuddy_bridge import BambuddyBridge
                bambuddy = FakeBambuddy().start()
                fakes.append(bambuddy)
                for serial, model in fleet:
                    bambuddy.add_printer(FLEET_NAMES[model], serial, model)
                bridge = BambuddyBridge(bambuddy, broker.host, broker.port, broker.username, broker.password,
                                        str(broker.ca_file)).start()
                env["BAMBUDDY_BASE_URL"] = bambuddy.base_url
                print(f"Bambuddy: DEMO STAND-IN at {bambuddy.base_url}/archives/ (fed by the simulated printers)")
            else:
                bambuddy = bridge = None
                print(f"Bambuddy: {env['BAMBUDDY_BASE_URL']}")
            procs.env = env

            config = data / "printers.json"
            config.write_text(json.dumps({"printers": [
                {"name": FLEET_NAMES[model], "host": broker.host, "port": broker.port, "serial": serial,
                 "access_code": broker.password, "ca_file": str(broker.ca_file)} for serial, model in fleet]}))
            procs.python("simulator", ["ingestion.simulator", "--host", broker.host, "--port", str(broker.port),
                                       "--password", broker.password, "--cafile", str(broker.ca_file),
                                       "--printers", "3", "--scenario", "mix", "--speed", str(args.speed),
                                       "--forever"])  # keeps printing until the demo stops it
            time.sleep(2)  # printers first, as in a real farm: the logger's pushall finds them
            procs.python("logger", ["ingestion"], env={"LOGGER_CONFIG": str(config)})
            # Code server, webserver and daemon as compose runs them (orchestration/services.py).
            # cwd=work: Dagster's commands load .env from their folder over the environment, which
            # would put a user's DATA_DIR/DAGSTER_HOME from the repository's .env over the demo's
            try:
                start_dagster(procs, home, cwd=work, webserver_port=args.dagster_port)
            except RuntimeError as exc:  # the definitions did not load: the log says why
                print(f"demo: {exc}", file=sys.stderr)
                return 1
            procs.python("dbt-docs", ["orchestration.dbt.docs", "--port", str(args.docs_port), "--refresh", "60",
                                      "--target", str(work / "dbt-docs")])
            procs.python("sync-api", ["orchestration.api", "--port", str(args.api_port)])

            print(f"""
printfarm demo is starting (logs in {work / 'logs'}):
  Dagster UI     http://127.0.0.1:{args.dagster_port}   (assets: silver_print_jobs, inventree_stock)
  dbt docs       http://127.0.0.1:{args.docs_port}
  sync API       http://127.0.0.1:{args.api_port}/sync/status
The printers keep printing (completed, failed, cancelled, paused, reprints) until Ctrl-C; each
finished print reaches InvenTree within a minute, pushed by the sensors without a click.
Ctrl-C stops everything.""", flush=True)
            started = time.monotonic()
            reported = 0
            while not stop.is_set():
                for child in procs.revive():  # the code server, as compose's restart policy would
                    print(f"demo: {child.name} exited and was started again; see {child.log_path}", file=sys.stderr)
                dead = [c.name for c in procs.dead()]  # the simulator too: it prints until stopped
                if dead:
                    print(f"demo: {', '.join(dead)} exited; see {work / 'logs'}", file=sys.stderr)
                    return 1
                if inventree is not None and len(inventree.stock_items) != reported:
                    reported = len(inventree.stock_items)
                    newest = max(inventree.stock_items.values(), key=lambda item: item["pk"])
                    print(f"[{time.monotonic() - started:5.0f}s] InvenTree stand-in: {len(inventree.parts)} parts, "
                          f"{reported} stock items; newest {newest['batch']} at "
                          f"{inventree.base_url}/web/part/{newest['part']}/", flush=True)
                if args.smoke:
                    if smoke_done(inventree, bambuddy, args.dagster_port):
                        print(f"smoke: prints reached InvenTree and links reached Bambuddy after "
                              f"{time.monotonic() - started:.0f}s", flush=True)
                        if args.screenshots:
                            capture_pages(Path(args.screenshots), args.dagster_port, args.docs_port)
                        return 0
                    if time.monotonic() - started > args.smoke:
                        print("smoke: timed out", file=sys.stderr)
                        return 1
                stop.wait(2)
            return 0
        finally:
            print("demo: stopping ...", flush=True)
            procs.stop_all()
            if "bridge" in locals() and bridge is not None:
                bridge.stop()
            for fake in fakes:
                fake.stop()
            broker.close()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,900", "--virtual-time-budget=20000"]


def capture_pages(folder: Path, dagster_port: int, docs_port: int) -> None:
    """Screenshot and rendered DOM of the pages a person would open (headless Chromium)."""
    import subprocess
    import tempfile
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("--screenshots needs chromium (apt-get install chromium)")
    folder.mkdir(parents=True, exist_ok=True)
    pages = {"dagster-inventree_stock": f"http://127.0.0.1:{dagster_port}/assets/inventree_stock",
             "dbt-docs-silver_print_jobs": f"http://127.0.0.1:{docs_port}/#!/model/model.printfarm.silver_print_jobs"}
    for name, url in pages.items():
        with tempfile.TemporaryDirectory() as profile:
            flags = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
            subprocess.run(flags + [f"--screenshot={folder / (name + '.png')}", url], capture_output=True, timeout=120)
            dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
            (folder / f"{name}.html").write_text(dom.stdout)
    print(f"screenshots in {folder}", flush=True)


def smoke_done(inventree, bambuddy, dagster_port: int) -> bool:
    if inventree is None or bambuddy is None or not inventree.stock_items:
        return False
    linked = [a for a in bambuddy.archives.values() if (a.get("external_url") or "").endswith("/")]
    if not linked:
        return False
    try:  # the link a visitor clicks in Bambuddy leads to the part's page
        page = requests.get(linked[0]["external_url"], timeout=5)
    except requests.RequestException:
        return False
    if page.status_code != 200 or "Stock items" not in page.text:
        return False
    # shouldShowNux: the community pop-up a fresh browser would see (off in the demo's instance)
    query = '{ shouldShowNux assetOrError(assetKey: {path: ["inventree_stock"]}) { ... on Asset { ' \
            'assetMaterializations(limit: 1) { runId } } } }'
    try:
        answer = requests.post(f"http://127.0.0.1:{dagster_port}/graphql", json={"query": query}, timeout=5).json()
    except (requests.RequestException, ValueError):
        return False
    data = answer.get("data") or {}
    return data.get("shouldShowNux") is False and bool((data.get("assetOrError") or {}).get("assetMaterializations"))


if __name__ == "__main__":
    sys.exit(main())
