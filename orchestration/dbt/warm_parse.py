"""The dbt project, parsed once per code server for all its runs. Importing this module parses
it: it is meant to be imported only by the code server's forkserver (orchestration/code_server.py
preloads it), whose forks are the run workers.

Each run's dbt build began with a parse (a partial one: reading target/partial_parse.msgpack and
hashing every project file), 1.3-1.5 s of a one-print run of ~6 s. A worker forked from here has
the Manifest in memory and in_process.py hands it to dbtRunner, which then skips parsing; only
for an invocation whose parse inputs (in_process.parse_key) are these, else dbt parses as ever.
The project's files cannot change under a running code server: it loaded them at start too.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any

from .in_process import _environment, parse_key

log = logging.getLogger(__name__)


def parse() -> tuple[tuple, Any] | None:
    """(key, Manifest) parsed with the environment and vars a sync run's build has."""
    from dbt.cli.main import dbtRunner

    from orchestration.settings import SyncSettings

    from .assets import dbt_resource
    from .project import dbt_env, dbt_vars

    settings = SyncSettings.from_env()
    resource = dbt_resource()
    project_dir = str(resource.project_dir)
    env = {**os.environ, **dbt_env(settings), "DBT_PROJECT_DIR": project_dir,
           **({"DBT_PROFILES_DIR": resource.profiles_dir} if resource.profiles_dir else {})}
    args = ["dbt", "build", "--vars", json.dumps(dbt_vars(settings))]
    with tempfile.TemporaryDirectory(prefix="dbt-warm-parse-") as target:
        # its artifacts go to a scratch target: the project's partial_parse.msgpack stays the runs'
        with _environment({**env, "DBT_TARGET_PATH": target, "DBT_LOG_PATH": target, "DBT_LOG_LEVEL": "none",
                           "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}):
            previous = os.getcwd()
            os.chdir(project_dir)
            try:
                result = dbtRunner().invoke(["parse", *args[2:]])
            finally:
                os.chdir(previous)
    if not result.success or result.result is None:
        return None
    return parse_key(args, env, project_dir), result.result


try:
    PARSED = parse()
except Exception:  # noqa: BLE001 - a project that does not parse: each run parses and says why
    log.warning("dbt project not parsed ahead of the runs", exc_info=True)
    PARSED = None
