"""The sync API served by a real uvicorn on 127.0.0.1, with a real Dagster instance in a
temporary DAGSTER_HOME and the stand-ins for InvenTree and Bambuddy."""

import threading
import time

import pytest
import uvicorn
from dagster import DagsterInstance

from orchestration.api.app import create_app
from orchestration.api.dagster_status import DagsterStatus
from orchestration.api.settings import ApiSettings


class Served:
    def __init__(self, app):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def daemon_alive(instance: DagsterInstance) -> None:
    """Record a fresh sensor-daemon heartbeat, as a running dagster-daemon does."""
    from dagster._daemon.types import DaemonHeartbeat as Heartbeat
    instance.add_daemon_heartbeat(Heartbeat(timestamp=time.time(), daemon_type="SENSOR", daemon_id="test",
                                            errors=[]))


@pytest.fixture
def serve(env, dagster_home):
    def start(**overrides):
        settings = ApiSettings.from_env()
        if overrides:
            from dataclasses import replace
            settings = replace(settings, **overrides)
        return Served(create_app(settings, DagsterStatus()))
    return start
