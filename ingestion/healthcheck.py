"""`python -m ingestion.healthcheck`: exit 0 when the logger's heartbeat file is fresh, else 1.

The logger rewrites DATA_DIR/logger.heartbeat every few seconds from its writer thread, so a
stale file means the writer is stuck or dead (a container healthcheck restarts it then)."""

from __future__ import annotations

import sys
import time

from .config import ConfigError, LoggerSettings

MAX_AGE_SECONDS = 60


def main() -> int:
    try:
        path = LoggerSettings.load().heartbeat_file
    except ConfigError as exc:
        print(f"unhealthy: configuration error: {exc}")
        return 1
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        print(f"unhealthy: no heartbeat file {path}")
        return 1
    if age > MAX_AGE_SECONDS:
        print(f"unhealthy: heartbeat {age:.0f}s old")
        return 1
    print(f"healthy: heartbeat {age:.0f}s old")
    return 0


if __name__ == "__main__":
    sys.exit(main())
