"""The Dagster services as a deployment runs them, for the demo and the benchmarks.

Three processes, as in docker-compose.yml: a code server (orchestration/code_server.py, the
dagster-code service) that loads the definitions, evaluates the sensors and launches the runs,
and dagster-webserver and dagster-daemon, which reach it through deploy/workspace.grpc.yaml.
A code server the daemon spawns itself (workspace.yaml, fine for `dagster dev`) is reloaded only
every 60 s after it dies, and every sensor stops until then; this one is restarted by its
supervisor within seconds and the daemon reconnects at its next tick.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ingestion.devbroker import free_port
from orchestration.processes import Child, Supervisor

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = REPO / "deploy" / "workspace.grpc.yaml"
LOCATION = "printfarm"


def code_server_serving(port: int, host: str = "127.0.0.1") -> bool:
    """True once the code server answers with the loaded definitions (not an error)."""
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._grpc.types import ListRepositoriesResponse
    from dagster_shared.serdes import deserialize_value
    try:
        answer = deserialize_value(DagsterGrpcClient(port=port, host=host).list_repositories())
    except Exception:  # noqa: BLE001 - not up yet, or restarting: both mean "not serving"
        return False
    return isinstance(answer, ListRepositoriesResponse)


def prepare_instance(home: Path) -> None:
    """Create the instance's SQLite storage once, before several processes start on a fresh
    DAGSTER_HOME: two of them migrating it at once corrupt its schema version."""
    from dagster import DagsterInstance
    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)


@dataclass
class DagsterServices:
    code_server: Child
    webserver: Child
    daemon: Child
    code_port: int
    webserver_port: int

    def children(self) -> list[Child]:
        return [self.daemon, self.webserver, self.code_server]


def start_dagster(procs: Supervisor, home: Path, *, cwd: Path, webserver_port: int | None = None,
                  host: str = "127.0.0.1", code_port: int | None = None,
                  wait_seconds: float = 120.0, warm_workers: bool = True) -> DagsterServices:
    """Start code server, webserver and daemon on DAGSTER_HOME `home` (its dagster.yaml already
    there). The code server is restarted by procs.revive() when it dies. cwd: where Dagster's
    commands run; they read a .env found there over the environment. warm_workers=False: the
    plain `dagster api grpc`, whose run workers are spawned cold (bench/run_start.py)."""
    prepare_instance(home)
    code_port = code_port or free_port()
    webserver_port = webserver_port or free_port()
    bin_dir = Path(sys.executable).parent
    env = {"DAGSTER_HOME": str(home), "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
           "DAGSTER_CODE_SERVER_PORT": str(code_port)}
    server = ["-m", "orchestration.code_server"] if warm_workers else ["-m", "dagster", "api", "grpc"]
    code = procs.start("dagster-code", [sys.executable, *server, "-h", "127.0.0.1", "-p", str(code_port),
                                        "-m", "orchestration.definitions", "-a", "defs", "--location-name", LOCATION],
                       env=env, cwd=cwd, restart=True)
    deadline = time.monotonic() + wait_seconds
    while not code_server_serving(code_port):
        if code.proc.poll() is not None:  # at start-up that is the definitions failing to load
            raise RuntimeError(f"the code server exited at start-up; see {code.log_path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the code server did not serve within {wait_seconds:.0f} s; see {code.log_path}")
        time.sleep(0.5)
    webserver = procs.start("dagster-webserver", [str(bin_dir / "dagster-webserver"), "-h", host,
                                                  "-p", str(webserver_port), "-w", str(WORKSPACE)], env=env, cwd=cwd)
    daemon = procs.start("dagster-daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
                         env=env, cwd=cwd)
    return DagsterServices(code, webserver, daemon, code_port, webserver_port)
