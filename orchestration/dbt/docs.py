"""`python -m orchestration.dbt.docs [--host H] [--port 8080]`: build and serve the dbt docs.

With a raw database present the docs include the catalog (column types, row counts); on a cold
start (no DATA_DIR/print_history.db yet) they fall back to compile-only docs
(`dbt docs generate --empty-catalog`), so the lineage is browsable from the first minute.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from orchestration.settings import SyncSettings

from .project import TRANSFORMATION_DIR, dbt_env, dbt_executable, dbt_vars


def generate(target: Path, settings: SyncSettings) -> bool:
    """Returns True for full docs, False for the compile-only fallback."""
    base = [dbt_executable(), "docs", "generate", "--project-dir", str(TRANSFORMATION_DIR),
            "--profiles-dir", str(TRANSFORMATION_DIR), "--target-path", str(target)]
    base += ["--vars", json.dumps(dbt_vars(settings))]
    env = {**os.environ, **dbt_env(settings)}
    full = settings.print_history_db.exists()
    if full:
        proc = subprocess.run(base, env=env, capture_output=True, text=True)
        if proc.returncode == 0:
            return True
        print(f"dbt docs generate failed, falling back to compile-only docs:\n{proc.stdout[-1500:]}", file=sys.stderr)
    # Cold start: no database to read a catalog from. Compile in a scratch DATA_DIR so nothing
    # is created where the logger will put its database.
    scratch = target / "cold-start-data"
    scratch.mkdir(parents=True, exist_ok=True)
    subprocess.run(base + ["--empty-catalog"], env={**env, "DATA_DIR": str(scratch)}, check=True,
                   capture_output=True, text=True)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("DBT_DOCS_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DBT_DOCS_PORT", "8080")))
    parser.add_argument("--target", default=str(TRANSFORMATION_DIR / "target-docs"))
    args = parser.parse_args(argv)
    settings = SyncSettings.from_env()
    target = Path(args.target)
    target.mkdir(parents=True, exist_ok=True)
    full = generate(target, settings)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(target))
    server = ThreadingHTTPServer((args.host, args.port), handler)
    kind = "full" if full else "compile-only (cold start: no raw database yet)"
    print(f"dbt docs ({kind}) at http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
