"""`python -m orchestration.api [--host H] [--port P]` / `printfarm-sync-api`: serve the sync API."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from orchestration.settings import SettingsError

from .app import create_app
from .settings import ApiSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="printfarm-sync-api", description=__doc__)
    parser.add_argument("--host", help="default SYNC_API_HOST or 127.0.0.1")
    parser.add_argument("--port", type=int, help="default SYNC_API_PORT or 8088")
    args = parser.parse_args(argv)
    try:
        settings = ApiSettings.from_env()
    except SettingsError as exc:
        print(f"printfarm-sync-api: configuration error: {exc}", file=sys.stderr)
        return 2
    # access_log off: query strings and headers never reach the log (no secret in any log line)
    uvicorn.run(create_app(settings), host=args.host or settings.host, port=args.port or settings.port,
                log_level="info", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
