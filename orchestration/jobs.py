"""Jobs: `sync_prints` (collector -> dbt -> inventree_stock -> bambuddy_links) and
`transform_print_history` (the dbt models alone, the name users of the original pipeline know)."""

from __future__ import annotations

import socket

from dagster import AssetSelection, define_asset_job, in_process_executor

SYNC_JOB = "sync_prints"
TRANSFORM_JOB = "transform_print_history"
# Where the run's worker runs: the code server that loads these definitions launches it, so its
# host is this one. A job tag, so a run launched from the UI carries it too (sensors.py frees a
# run whose worker died by it).
HOST_TAG = "printfarm/host"

sync_prints = define_asset_job(
    SYNC_JOB,
    selection=AssetSelection.groups("raw", "bronze", "silver", "inventree").materializable(),
    description="Pull Bambuddy archives, build bronze/silver, push new prints to InvenTree, link archives.",
    tags={"printfarm/job": SYNC_JOB, HOST_TAG: socket.gethostname()},
    # The steps run one after the other anyway; a process per step (the default executor) cost
    # a code-location load each, most of a run's time (bench/latency.py).
    executor_def=in_process_executor,
)

transform_print_history = define_asset_job(
    TRANSFORM_JOB,
    selection=AssetSelection.groups("bronze", "silver").materializable(),
    description="Build the dbt bronze and silver models only.",
    executor_def=in_process_executor,
)


def sync_run_config(archive_ids: list[int] | None = None, force: bool = False, max_archives: int | None = None,
                    *, force_archive_ids: list[int] | None = None, full_rescan: bool = False) -> dict:
    """Run config of `sync_prints`; both InvenTree-side assets read the same selection."""
    config = {"archive_ids": list(archive_ids or []), "force": bool(force), "max_archives": max_archives,
              "force_archive_ids": list(force_archive_ids or [])}
    return {"ops": {"inventree_stock": {"config": config}, "bambuddy_links": {"config": config},
                    "bambuddy_archives": {"config": {"full_rescan": bool(full_rescan)}}}}
