"""Is Dagster there? The instance of DAGSTER_HOME and the sensor daemon's heartbeat tell."""

from __future__ import annotations

import os
import time
from typing import Any

HEARTBEAT_MAX_AGE_S = 60.0
# The daemon reloads its code server every 60 s (a killed one comes back then): a scheduler tick
# older than this means the sensors cannot run at all.
SCHEDULER_STALE_S = 90.0


def scheduler_view(last_tick: float | None, now: float | None = None) -> dict[str, Any]:
    """The sync_scheduler sensor's last tick, from the ledger (the sensor writes it every tick)."""
    if last_tick is None:
        return {"ticking": False, "last_tick_s_ago": None,
                "detail": "the sync_scheduler sensor has not run yet: start `dagster-daemon run` (it runs the sensor)"}
    age = (now or time.time()) - float(last_tick)
    if age <= SCHEDULER_STALE_S:
        return {"ticking": True, "last_tick_s_ago": round(age, 1), "detail": "sync_scheduler ticks"}
    return {"ticking": False, "last_tick_s_ago": round(age, 1),
            "detail": f"sync_scheduler has not ticked for {age:.0f} s: nothing is synced by itself. The Dagster "
                      "daemon is down or cannot load the code (its log, or the sensor's ticks in the UI, say why)"}


class DagsterStatus:
    def __init__(self, max_age: float = HEARTBEAT_MAX_AGE_S):
        self.max_age = max_age
        self._instance = None

    def _get_instance(self):
        if self._instance is None:
            from dagster import DagsterInstance  # imported lazily: /health must answer fast
            self._instance = DagsterInstance.get()
        return self._instance

    def check(self) -> dict[str, Any]:
        if not os.environ.get("DAGSTER_HOME"):
            return {"reachable": False, "daemon_running": False,
                    "detail": "DAGSTER_HOME is not set: the API cannot see the Dagster instance"}
        try:
            heartbeats = self._get_instance().get_daemon_heartbeats()
        except Exception as exc:  # any storage error means: not reachable
            self._instance = None
            return {"reachable": False, "daemon_running": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
        sensor = heartbeats.get("SENSOR")
        age = time.time() - sensor.timestamp if sensor else None
        running = age is not None and age < self.max_age
        return {"reachable": True, "daemon_running": running,
                "detail": "sensor daemon heartbeat {:.0f}s old".format(age) if age is not None
                else "no sensor daemon heartbeat yet: start `dagster-daemon run`"}

    def run_for_launch(self, launch_id: str) -> str | None:
        """The run the scheduler launched for these requests, as soon as the daemon created it."""
        if not os.environ.get("DAGSTER_HOME"):
            return None
        try:
            from dagster import RunsFilter
            runs = self._get_instance().get_runs(filters=RunsFilter(tags={"printfarm/launch": launch_id}), limit=1)
        except Exception:
            self._instance = None
            return None
        return runs[0].run_id if runs else None
