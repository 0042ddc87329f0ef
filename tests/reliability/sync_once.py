"""One `sync_prints` run in this process, configured by the environment (DATA_DIR, stand-in URLs).
The crash tests start it as a real subprocess so they can kill -9 it in the middle of a step."""

import sys

from tests.orchestration.conftest import run_sync

if __name__ == "__main__":
    sys.exit(0 if run_sync().success else 1)
