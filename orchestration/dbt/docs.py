"""`python -m orchestration.dbt.docs [--host H] [--port 8080]`: build and serve the dbt docs.

With a raw database present the docs include the catalog (column types, row counts); on a cold
start (no DATA_DIR/print_history.db yet) they fall back to compile-only docs
(`dbt docs generate --empty-catalog`), so the lineage is browsable from the first minute.
While serving, the docs are generated again when dbt builds changed the warehouse (looked at every
--refresh seconds), so the catalog gains the models' column types once they exist.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from orchestration.processes import default_signals
from orchestration.settings import SyncSettings

from .project import TRANSFORMATION_DIR, dbt_env, dbt_executable, dbt_vars

SITE_FILES = ("index.html", "manifest.json", "catalog.json")


def _dbt(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, preexec_fn=default_signals)


def generate(target: Path, settings: SyncSettings) -> bool:
    """Returns True for full docs, False for the compile-only fallback."""
    base = [dbt_executable(), "docs", "generate", "--project-dir", str(TRANSFORMATION_DIR),
            "--profiles-dir", str(TRANSFORMATION_DIR), "--target-path", str(target)]
    base += ["--vars", json.dumps(dbt_vars(settings))]
    env = {**os.environ, **dbt_env(settings)}
    full = settings.print_history_db.exists()
    if full:
        proc = _dbt(base, env)
        if proc.returncode == 0:
            return True
        print(f"dbt docs generate failed, falling back to compile-only docs:\n{proc.stdout[-1500:]}", file=sys.stderr)
    # Cold start: no database to read a catalog from. Compile in a scratch DATA_DIR so nothing
    # is created where the logger will put its database.
    scratch = target / "cold-start-data"
    scratch.mkdir(parents=True, exist_ok=True)
    proc = _dbt(base + ["--empty-catalog"], {**env, "DATA_DIR": str(scratch)})
    if proc.returncode != 0:
        raise RuntimeError(f"dbt docs generate --empty-catalog failed:\n{proc.stdout[-1500:]}")
    return False


def warehouse_stamp(settings: SyncSettings) -> tuple[float, int] | None:
    path = settings.warehouse_db
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime, stat.st_size


class Refresher(threading.Thread):
    """Regenerates the site after the warehouse changed: in a staging folder, then the three
    files the site reads are swapped in one by one (os.replace), so a reader never sees half a file."""

    def __init__(self, target: Path, settings: SyncSettings, interval: float, stamp):
        super().__init__(name="dbt-docs-refresh", daemon=True)
        self.target, self.settings, self.interval, self.stamp = target, settings, interval, stamp
        self.stopped = threading.Event()
        self.generations = 0

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            # A generation during a build may miss a table; the build's later writes change the
            # stamp again, so the next look generates once more.
            stamp = warehouse_stamp(self.settings)
            if stamp is None or stamp == self.stamp:
                continue
            staging = self.target / ".staging"
            shutil.rmtree(staging, ignore_errors=True)
            try:
                full = generate(staging, self.settings)
            except RuntimeError as exc:
                print(f"dbt docs refresh failed: {exc}", file=sys.stderr, flush=True)
                continue
            for name in SITE_FILES:
                os.replace(staging / name, self.target / name)
            self.stamp = stamp
            self.generations += 1
            print(f"dbt docs regenerated ({'full' if full else 'compile-only'}) after a warehouse change", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("DBT_DOCS_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DBT_DOCS_PORT", "8080")))
    parser.add_argument("--target", default=str(TRANSFORMATION_DIR / "target-docs"))
    parser.add_argument("--refresh", type=float, default=60.0,
                        help="seconds between looks at the warehouse (0: generate once)")
    args = parser.parse_args(argv)
    settings = SyncSettings.from_env()
    target = Path(args.target)
    target.mkdir(parents=True, exist_ok=True)
    stamp = warehouse_stamp(settings)
    full = generate(target, settings)
    refresher = Refresher(target, settings, args.refresh, stamp)
    if args.refresh > 0:
        refresher.start()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(target))
    server = ThreadingHTTPServer((args.host, args.port), handler)
    kind = "full" if full else "compile-only (cold start: no raw database yet)"
    print(f"dbt docs ({kind}) at http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        refresher.stopped.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
