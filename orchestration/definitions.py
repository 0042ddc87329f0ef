"""The one Dagster `Definitions` of the printfarm pipeline, assembled from the domain modules.

Loaded by `dagster dev` / `dagster-webserver` / `dagster-daemon` through workspace.yaml
(`orchestration.definitions:defs`). Settings are read and validated here, so a bad setting
fails the code location at load with a message naming it.
"""

from __future__ import annotations

from dagster import Definitions

from orchestration.bambuddy import BambuddyResource, bambuddy_archives
from orchestration.dbt.assets import dbt_print_history_assets, dbt_resource, raw_printer_jobs
from orchestration.inventree.assets import bambuddy_links, inventree_stock
from orchestration.inventree.resources import InvenTreeResource
from orchestration.jobs import sync_prints, transform_print_history
from orchestration.sensors import all_sensors
from orchestration.settings import SyncSettings


def build_definitions() -> Definitions:
    SyncSettings.from_env()  # fail at load, naming the bad setting, rather than in every run
    return Definitions(
        assets=[raw_printer_jobs, bambuddy_archives, dbt_print_history_assets, inventree_stock, bambuddy_links],
        jobs=[sync_prints, transform_print_history],
        sensors=all_sensors,
        resources={
            "dbt": dbt_resource(),
            # Empty resource fields read the environment at run time: no secret in resource config.
            "inventree": InvenTreeResource(),
            "bambuddy": BambuddyResource(),
        },
    )


defs = build_definitions()
