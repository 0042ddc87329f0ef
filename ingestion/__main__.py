"""`python -m ingestion` / `printfarm-logger`: run the MQTT print-job logger until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .config import ConfigError, LoggerSettings
from .logger import LoggerService


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="printfarm-logger", description=__doc__)
    parser.add_argument("--config", help="config file (default: $LOGGER_CONFIG or ingestion/config.json)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = LoggerSettings.load(config_path=args.config)
    except ConfigError as exc:
        print(f"printfarm-logger: configuration error: {exc}", file=sys.stderr)
        return 2
    service = LoggerService(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    # Wake up now and then to notice a dead writer thread (exit non-zero for the supervisor).
    while not stop.wait(1.0):
        if not service.writer_alive:
            logging.getLogger("ingestion").error("writer thread died; exiting")
            service.stop()
            return 1
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
