"""The environment the benchmarks give the services: this one without the sensor settings (the
defaults are what is measured), pointed at the InvenTree and Bambuddy stand-ins."""

from __future__ import annotations

import os
from pathlib import Path

SENSOR_SETTINGS = ("SENSOR_INTERVAL_SECONDS", "POLL_INTERVAL_SECONDS")


def stand_in_env(data: Path, home: Path, inventree, bambuddy, ids: dict, *, drop: tuple[str, ...] = SENSOR_SETTINGS,
                 **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(DATA_DIR=str(data), DAGSTER_HOME=str(home),
               INVENTREE_BASE_URL=inventree.base_url, INVENTREE_TOKEN=inventree.token,
               INVENTREE_PART_CATEGORY_ID=str(ids["INVENTREE_PART_CATEGORY_ID"]),
               INVENTREE_STOCK_LOCATION_ID=str(ids["INVENTREE_STOCK_LOCATION_ID"]),
               INVENTREE_WEB_URL="http://inventree.example", BAMBUDDY_BASE_URL=bambuddy.base_url, **extra)
    return env
