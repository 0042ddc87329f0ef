"""Settings of the sync API service (on top of the pipeline's SyncSettings)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from orchestration.settings import SettingsError, SyncSettings, _float, _int


@dataclass(frozen=True)
class ApiSettings:
    sync: SyncSettings
    host: str = "127.0.0.1"
    port: int = 8088
    dagster_ui_url: str = "http://127.0.0.1:3000"
    wait_seconds: float = 20.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ApiSettings":
        env = os.environ if environ is None else environ
        port = _int("SYNC_API_PORT", env.get("SYNC_API_PORT", "8088"), minimum=0)
        if port > 65535:
            raise SettingsError(f"SYNC_API_PORT={port} is not a TCP port")
        return cls(sync=SyncSettings.from_env(env), host=env.get("SYNC_API_HOST", "127.0.0.1"), port=port,
                   dagster_ui_url=env.get("DAGSTER_UI_URL", "http://127.0.0.1:3000").rstrip("/"),
                   wait_seconds=_float("SYNC_WAIT_SECONDS", env.get("SYNC_WAIT_SECONDS", "20")))
