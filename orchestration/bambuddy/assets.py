"""Dagster asset `bambuddy_archives` (group raw): Bambuddy's archives, print log and printers
copied into the raw layer. One op writes three raw tables, so it is a multi-asset whose
main key is bambuddy_archives; the dbt sources map onto these keys."""

from dagster import AssetExecutionContext, AssetSpec, Config, MaterializeResult, multi_asset

from orchestration.ledger import PULL_META, Ledger, utc_now
from orchestration.settings import SyncSettings

from .collector import collect
from .resources import BambuddyResource


class BambuddyCollectConfig(Config):
    full_rescan: bool = False   # page through everything and detect soft-deleted archives


@multi_asset(
    name="bambuddy_archives",
    specs=[
        AssetSpec("bambuddy_archives", group_name="raw",
                  description="Bambuddy archives in raw_bambuddy_archives (upserted by id, soft deletes flagged)."),
        AssetSpec("bambuddy_print_runs", group_name="raw",
                  description="Bambuddy print-log entries (one per run, reprints included) in raw_bambuddy_print_runs."),
        AssetSpec("bambuddy_printers", group_name="raw",
                  description="Printers known to Bambuddy (serials for matching) in raw_bambuddy_printers."),
    ],
)
def bambuddy_archives(context: AssetExecutionContext, config: BambuddyCollectConfig, bambuddy: BambuddyResource):
    settings = SyncSettings.from_env()
    if not settings.bambuddy_enabled:
        note = {"skipped": "BAMBUDDY_BASE_URL not set: MQTT-only mode"}
        for key in ("bambuddy_archives", "bambuddy_print_runs", "bambuddy_printers"):
            yield MaterializeResult(asset_key=key, metadata=note)
        return
    # what this run read covers every trigger recorded before now (sensors.py, covering_pulls)
    Ledger(settings.ledger_db).set_meta(f"{PULL_META}{context.run_id}", utc_now())
    report = collect(bambuddy.get_client(), settings.print_history_db, full_rescan=config.full_rescan)
    context.log.info(f"Bambuddy: {report.metadata()}")
    yield MaterializeResult(asset_key="bambuddy_archives", metadata=report.metadata())
    yield MaterializeResult(asset_key="bambuddy_print_runs",
                            metadata={"runs_seen": report.runs_seen, "runs_new": report.runs_new})
    yield MaterializeResult(asset_key="bambuddy_printers", metadata={})
