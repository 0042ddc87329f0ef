"""Dagster assets of the InvenTree side: `inventree_stock` and `bambuddy_links` (group inventree)."""


import fcntl
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
    asset_check,
)

from orchestration.archive_links import entries_needing_links, part_page_url, write_links
from orchestration.bambuddy import ArchiveNotFound, BambuddyError, BambuddyResource
from orchestration.ledger import Ledger
from orchestration.settings import SyncSettings
from orchestration.silver import read_silver_prints

from .client import InvenTreeError
from .push import FATAL_ERRORS, InvenTreePusher, PushSelection, redact
from .resources import InvenTreeResource

REQUEST_IDS_TAG = "printfarm/request_ids"
LOCK_WAIT_SECONDS = 600


class SyncPrintsConfig(Config):
    """Run config of `sync_prints` (the same knobs the original sidecar's API had)."""

    archive_ids: list[int] = []
    force: bool = False           # re-sync selected prints: part, parameters, image, link; never a 2nd stock item
    max_archives: Optional[int] = None   # stop after N synced prints (skipped ones don't count)

    def selection(self) -> PushSelection:
        return PushSelection(archive_ids=tuple(self.archive_ids), force=self.force, max_archives=self.max_archives)


@contextmanager
def sync_lock(data_dir: Path) -> Iterator[None]:
    """Serialise pushes across runs and processes: two concurrent pushes could both miss a
    batch lookup and create two stock items. flock is released by the OS if the run dies."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "sync.lock", "w") as handle:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Failure("another sync run holds DATA_DIR/sync.lock for too long; try again later")
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _request_ids(context: AssetExecutionContext) -> list[int]:
    raw = context.run.tags.get(REQUEST_IDS_TAG, "") if context.run else ""
    return [int(x) for x in raw.split(",") if x.strip().isdigit()]


def _preview(outcomes: list[dict], limit: int = 20) -> MetadataValue:
    columns = ("print_id", "outcome", "ipn", "part_pk", "stock_item_pk", "error")
    schema = TableSchema(columns=[TableColumn(c, "string") for c in columns])
    # every record needs every field: missing ones are shown empty
    records = [TableRecord({c: "" if o.get(c) is None else str(o[c]) for c in columns}) for o in outcomes[:limit]]
    return MetadataValue.table(records=records, schema=schema)


@asset(
    group_name="inventree",
    deps=[AssetKey("silver_print_jobs"), AssetKey("silver_parts")],
    description="One InvenTree StockItem per finished silver print, on the right Part (IPN), with "
                "Weight/PrintTime parameters and the thumbnail as part image. Exactly once per print.",
)
def inventree_stock(context: AssetExecutionContext, config: SyncPrintsConfig,
                    inventree: InvenTreeResource, bambuddy: BambuddyResource) -> MaterializeResult:
    settings = SyncSettings.from_env()
    ledger = Ledger(settings.ledger_db)
    run_id = context.run.run_id
    ledger.start_run(run_id, _request_ids(context))
    started = time.monotonic()
    with sync_lock(settings.data_dir):
        prints = read_silver_prints(settings.warehouse_db)
        client = inventree.get_client()
        thumbnails = bambuddy.get_client() if settings.bambuddy_enabled and settings.sync_part_images else None
        pusher = InvenTreePusher(client, ledger, settings, thumbnails, run_id=run_id)
        try:
            report = pusher.push(prints, config.selection())
        except FATAL_ERRORS as exc:
            message = redact(str(exc), [settings.inventree_token])
            ledger.finish_run(run_id, status="failure", counts={}, details=[{"error": message}])
            raise Failure(description=message) from None
    outcomes = [o.as_dict() for o in report.outcomes]
    counts = report.counts
    metadata: dict[str, object] = {
        "created": counts["created"], "reused": counts["reused"], "skipped": counts["skipped"],
        "failed": counts["failed"], "parts_created": report.parts_created,
        "silver_prints": len(prints), "http_calls": getattr(client, "calls", 0),
        "duration_s": round(time.monotonic() - started, 3),
        "outcomes": _preview(outcomes),
    }
    if report.warnings:
        metadata["warnings"] = MetadataValue.md("\n".join(f"- {w}" for w in report.warnings))
    new_parts = sorted({o.part_pk for o in report.outcomes if o.part_created and o.part_pk})
    for pk in new_parts[:10]:
        metadata[f"part_{pk}"] = MetadataValue.url(part_page_url(settings, pk))
    # "pushed": the links step settles the run; callers of the API wait for that
    ledger.finish_run(run_id, status="failure" if report.failed else "pushed", counts=counts, details=outcomes)
    for w in report.warnings:
        context.log.warning(w)
    if report.failed:
        errors = "; ".join(f"{o.print_id}: {o.error}" for o in report.failed[:5])
        raise Failure(description=f"{len(report.failed)} print(s) failed to sync (retried next run): {errors}",
                      metadata=metadata)
    return MaterializeResult(metadata=metadata)


@asset(
    group_name="inventree",
    deps=[inventree_stock],
    description="The InvenTree part page written into each synced Bambuddy archive's external_url.",
)
def bambuddy_links(context: AssetExecutionContext, config: SyncPrintsConfig,
                   bambuddy: BambuddyResource) -> MaterializeResult:
    settings = SyncSettings.from_env()
    ledger = Ledger(settings.ledger_db)
    if not settings.bambuddy_enabled or not settings.sync_archive_external_link:
        reason = "BAMBUDDY_BASE_URL not set" if not settings.bambuddy_enabled else "SYNC_ARCHIVE_EXTERNAL_LINK=false"
        ledger.complete_run(context.run.run_id, status="success")
        return MaterializeResult(metadata={"skipped": reason})
    entries = entries_needing_links(ledger, archive_ids=tuple(config.archive_ids), force=config.force)
    report = write_links(bambuddy.get_client(), ledger, settings, entries, not_found=ArchiveNotFound)
    counts = {k: report.count(k) for k in ("written", "unchanged", "kept_foreign", "archive_gone", "failed")}
    ledger.complete_run(context.run.run_id, status="failure" if report.errors else "success", links=counts["written"])
    metadata = {**counts, "archives_considered": len(entries)}
    if report.errors:
        raise Failure(description="; ".join(f"archive {k}: {v}" for k, v in list(report.errors.items())[:5]),
                      metadata=metadata)
    return MaterializeResult(metadata=metadata)


# --- checks that tell the operator which setting is wrong ---------------------------------
@asset_check(asset=inventree_stock, description="InvenTree token valid, category and stock location exist, "
                                                "Weight/PrintTime templates present.")
def inventree_settings_check(inventree: InvenTreeResource) -> AssetCheckResult:
    settings = SyncSettings.from_env()
    problems: list[str] = []
    warnings: list[str] = []
    try:
        client = inventree.get_client()
        client.check()
        if settings.inventree_part_category_id and not client.category_exists(settings.inventree_part_category_id):
            problems.append(f"INVENTREE_PART_CATEGORY_ID={settings.inventree_part_category_id} does not exist: "
                            "create the category or fix the id")
        if settings.inventree_stock_location_id and not client.location_exists(settings.inventree_stock_location_id):
            problems.append(f"INVENTREE_STOCK_LOCATION_ID={settings.inventree_stock_location_id} does not exist: "
                            "create the location or fix the id")
        templates = client.parameter_templates(("Weight", "PrintTime"))
        warnings += [f"parameter template {n!r} missing (values are not recorded)"
                     for n in ("Weight", "PrintTime") if n not in templates]
    except InvenTreeError as exc:
        problems.append(redact(str(exc), [settings.inventree_token]))
    if problems:
        return AssetCheckResult(passed=False, metadata={"problems": MetadataValue.md("\n".join(problems))})
    if warnings:
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN,
                                metadata={"warnings": MetadataValue.md("\n".join(warnings))})
    return AssetCheckResult(passed=True)


@asset_check(asset=bambuddy_links, description="Bambuddy reachable with a key that may manage archives.")
def bambuddy_access_check(bambuddy: BambuddyResource) -> AssetCheckResult:
    settings = SyncSettings.from_env()
    if not settings.bambuddy_enabled:
        return AssetCheckResult(passed=True, metadata={"note": "BAMBUDDY_BASE_URL not set (MQTT-only mode)"})
    try:
        bambuddy.get_client().check(write=settings.sync_archive_external_link)
    except BambuddyError as exc:
        return AssetCheckResult(passed=False, metadata={"problem": redact(str(exc), [settings.bambuddy_api_key])})
    return AssetCheckResult(passed=True)
