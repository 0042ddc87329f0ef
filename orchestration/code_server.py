"""`printfarm-code-server` (`python -m orchestration.code_server`): Dagster's code server
(`dagster api grpc`, same arguments: -h, -p, -m, -a, --location-name ...) whose run workers start
warm.

Dagster's code server starts each run's worker with multiprocessing's "spawn": a new interpreter
that imports dagster, the definitions (dagster-dbt, dbt) and then parses the dbt project, again
for every run. Here it uses "forkserver": one helper process, started with the server, imports
all that and parses the project once (dbt/warm_parse.py); each worker is a fork of it, loaded
already (bench.run_start: a run's launch 3.1 s -> 0.85 s, its dbt step 4.3 s -> 3.2 s). The
helper is a fresh single-threaded interpreter (forking the gRPC server, with its threads, would
not be safe), a child of this process in its process group: it lives and dies with the server.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import sys
from types import SimpleNamespace

DEFINITIONS = "orchestration.definitions"
# What every run imports next: the worker's entry point, and dbt's runner and adapter (the dbt
# models run inside the worker, orchestration/dbt/in_process.py).
RUN_MODULES = ["dagster._grpc.impl", "dbt.cli.main", "dbt.adapters.sqlite", "orchestration.dbt.warm_parse"]


def warm_context(preload: list[str]) -> multiprocessing.context.BaseContext:
    """A forkserver context whose helper has imported `preload`; started now, so the first run
    does not wait for the import either."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(preload)
    multiprocessing.forkserver.ensure_running()
    return ctx


def use_for_run_workers(ctx: multiprocessing.context.BaseContext) -> None:
    """dagster._grpc.server asks its `multiprocessing` module for the "spawn" context, once, when
    the server is made (and for nothing else). Answer with `ctx` there, and only there."""
    from dagster._grpc import server

    server.multiprocessing = SimpleNamespace(get_context=lambda method: ctx)


def main(argv: list[str] | None = None) -> int:
    from dagster._cli import ENV_PREFIX, cli

    argv = sys.argv[1:] if argv is None else argv
    module = argv[argv.index("-m") + 1] if "-m" in argv else DEFINITIONS
    use_for_run_workers(warm_context([module, *RUN_MODULES]))
    return cli(["api", "grpc", *argv], prog_name="dagster", auto_envvar_prefix=ENV_PREFIX, standalone_mode=True)


if __name__ == "__main__":
    sys.exit(main())
