"""dbt run inside the run worker instead of a `dbt` subprocess.

A `dbt` subprocess pays for a Python start and dbt's imports on every run: about 2.5 s of a
one-print run on an idle machine, 5-8 s on a loaded one, while the worker has most of dbt
imported already (dagster-dbt needs it). dagster-dbt reads dbt's JSON log lines from the
process's stdout; `DbtInProcess` is just enough of `subprocess.Popen` to hand it the same lines
from dbt's programmatic runner (dbtRunner), so everything dagster-dbt derives from them (asset
materializations, check results, run_results.json) stays the same.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import types
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

# Exit codes of the dbt CLI (dbt.cli.exceptions / ExitCodes): 1 = a node failed, 2 = dbt itself did.
EXIT_SUCCESS, EXIT_FAILURE, EXIT_ERROR = 0, 1, 2

# What a parsed manifest depends on besides the project's files (fixed while a code server runs):
# profiles.yml reads DATA_DIR, no model reads an environment variable (test_dbt_warm_parse).
KEY_ENV_PATHS = ("DATA_DIR", "DBT_PROJECT_DIR", "DBT_PROFILES_DIR")
KEY_FLAGS = ("--vars", "--profile", "--target", "--project-dir", "--profiles-dir")
WARM_MODULE = "orchestration.dbt.warm_parse"


def parse_key(args: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike) -> tuple:
    flags = tuple((flag, args[i + 1]) for i, flag in enumerate(args[:-1]) if flag in KEY_FLAGS)
    paths = tuple(os.path.realpath(env[k]) if env.get(k) else None for k in KEY_ENV_PATHS)
    return (os.path.realpath(cwd), paths, flags)


def warm_manifest(args: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike) -> Any:
    """The Manifest the code server's forkserver parsed (warm_parse.py), if this worker is one of
    its forks and the invocation is a `build` like the one it was parsed for; else None and dbt
    parses (as `dbt parse` must, to write its files)."""
    parsed = getattr(sys.modules.get(WARM_MODULE), "PARSED", None)
    if not parsed or list(args[1:2]) != ["build"]:
        return None
    return parsed[1] if parsed[0] == parse_key(args, env, cwd) else None


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """The subprocess's environment for dbt's flags (read from os.environ). Only the keys that
    differ are set and put back: other threads of the worker keep reading the rest."""
    changed = {k: os.environ.get(k) for k, v in env.items() if os.environ.get(k) != v}
    os.environ.update({k: env[k] for k in changed})
    try:
        yield
    finally:
        for key, old in changed.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class DbtInProcess:
    """Popen(args=[dbt, *dbt_args], stdout=PIPE, stderr=STDOUT, env=..., cwd=...) done in process.

    dbt runs to its end in the constructor (dbt-sqlite runs one thread anyway); its events come
    back as the JSON lines the CLI would print, in order, through `stdout`."""

    def __init__(self, args: Sequence[str], stdout=None, stderr=None, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike | None = None, **_):
        from dbt.cli.main import dbtRunner
        from dbt_common.events.functions import msg_to_json

        self.args = list(args)
        self.pid = os.getpid()
        lines: list[str] = []
        # the worker's stdout gets dagster-dbt's copy of each event, not a second one from dbt
        env = {**(env or os.environ), "DBT_LOG_LEVEL": "none"}
        with _environment(env):
            previous = os.getcwd()
            os.chdir(cwd or previous)
            try:
                result = dbtRunner(manifest=warm_manifest(self.args, env, os.getcwd()),
                                   callbacks=[lambda msg: lines.append(msg_to_json(msg))]).invoke(self.args[1:])
            finally:
                os.chdir(previous)
        if result.success:
            self.returncode = EXIT_SUCCESS
        else:
            self.returncode = EXIT_ERROR if result.exception is not None else EXIT_FAILURE
            if result.exception is not None:  # what the CLI would print as its last words
                lines.append(_error_line(result.exception))
        self.stdout = io.BytesIO("".join(line + "\n" for line in lines).encode())

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode

    def poll(self) -> int:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """dbt has finished by the time anyone could interrupt it."""


def _error_line(exc: BaseException) -> str:
    return json.dumps({"info": {"level": "error", "msg": f"Encountered an error:\n{exc}", "name": "MainEncounteredError"},
                       "data": {"exc": str(exc)}})


@contextmanager
def dbt_in_process() -> Iterator[None]:
    """While inside, dagster-dbt starts dbt with DbtInProcess instead of a subprocess."""
    from dagster_dbt.core import dbt_cli_invocation

    real = dbt_cli_invocation.subprocess
    shim = types.SimpleNamespace(Popen=DbtInProcess, PIPE=subprocess.PIPE, STDOUT=subprocess.STDOUT)
    dbt_cli_invocation.subprocess = shim
    try:
        yield
    finally:
        dbt_cli_invocation.subprocess = real
