"""orchestration/code_server.py: run workers are forks of a process that has the definitions
imported (bench/run_start.py measures what that saves). Real multiprocessing, real Dagster server."""

import logging
import multiprocessing
import sys
import threading

from orchestration.code_server import RUN_MODULES, use_for_run_workers, warm_context


def _report_modules(queue, names):
    # runs in the worker: what it has without importing anything itself
    queue.put({name: name in sys.modules for name in names})


def test_a_worker_starts_with_the_definitions_and_dbt_already_imported():
    names = ["orchestration.definitions", *RUN_MODULES]
    ctx = warm_context(names)
    queue = ctx.Queue()
    worker = ctx.Process(target=_report_modules, args=(queue, names))
    worker.start()
    seen = queue.get(timeout=120)
    worker.join(30)
    assert worker.exitcode == 0
    assert seen == {name: True for name in names}


def test_dagsters_code_server_starts_its_run_workers_from_the_warm_context(monkeypatch):
    """The hook relies on dagster._grpc.server asking `multiprocessing.get_context` once, in
    DagsterApiServer.__init__ (dagster 1.13, pinned): a server made after it uses the context."""
    from dagster._core.utils import FuturesAwareThreadPoolExecutor
    from dagster._grpc import server

    monkeypatch.setattr(server, "multiprocessing", server.multiprocessing)  # put back afterwards
    ctx = multiprocessing.get_context("forkserver")
    use_for_run_workers(ctx)
    with FuturesAwareThreadPoolExecutor(max_workers=1) as pool:
        api = server.DagsterApiServer(server_termination_event=threading.Event(), logger=logging.getLogger(__name__),
                                      server_threadpool_executor=pool, lazy_load_user_code=True)
        try:
            assert api._mp_ctx is ctx and api._mp_ctx.get_start_method() == "forkserver"
        finally:
            api.cleanup()
