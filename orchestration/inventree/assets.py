"""Dagster assets of the InvenTree side: `inventree_stock` and `bambuddy_links` (group inventree).

Both work the print queue (orchestration/print_queue.py). A print that fails waits in the ledger
(retrying or needs_attention) and the asset still materializes, so one poison print never holds
back the others nor their links. Only a fatal error (wrong token, server unreachable) fails the
asset; its settings check is evaluated first, so the run shows the verdict beside the failure.
"""


import fcntl
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
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
)

from orchestration.archive_links import FATAL_LINK_ERRORS, TRANSIENT_LINK_ERRORS, LinkStep, part_page_url
from orchestration.bambuddy import BambuddyResource
from orchestration.ledger import Ledger
from orchestration.print_queue import PrintQueue, QueueReport, Selection
from orchestration.settings import SyncSettings

from .checks import bambuddy_verdict, inventree_verdict
from .push import drain, redact, take_in_silver, work_for
from .resources import InvenTreeResource
from .steps import FATAL_ERRORS, TRANSIENT_ERRORS, InvenTreeSteps

LAUNCH_TAG = "printfarm/launch"
LOCK_WAIT_SECONDS = 600


class SyncPrintsConfig(Config):
    """Run config of `sync_prints` (the original sidecar's knobs; the scheduler fills it from requests)."""

    archive_ids: list[int] = []          # only these archives (empty: every pending print)
    force: bool = False                  # re-sync the selected prints: part, parameters, image, link
    force_archive_ids: list[int] = []    # re-sync these archives within a wider run
    max_archives: Optional[int] = None   # stop after N synced prints (skipped ones don't count)

    def selection(self) -> Selection:
        forced = tuple(self.force_archive_ids) + (tuple(self.archive_ids) if self.force else ())
        return Selection(archive_ids=tuple(self.archive_ids), force_archive_ids=forced,
                         force_all=self.force and not self.archive_ids, max_archives=self.max_archives)


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


def _request_ids(context: AssetExecutionContext, ledger: Ledger) -> list[int]:
    launch = context.run.tags.get(LAUNCH_TAG) if context.run else None
    return [r["id"] for r in ledger.requests(("launched", "pending")) if launch and r["launch_id"] == launch]


def _table(rows: list[dict], columns: tuple[str, ...], limit: int = 20) -> MetadataValue:
    schema = TableSchema(columns=[TableColumn(c, "string") for c in columns])
    records = [TableRecord({c: "" if r.get(c) is None else str(r[c]) for c in columns}) for r in rows[:limit]]
    return MetadataValue.table(records=records, schema=schema)


def attention_table(ledger: Ledger) -> MetadataValue:
    rows = [e.as_dict() for e in ledger.in_states(("needs_attention",), limit=50)]
    return _table(rows, ("print_id", "step", "reason", "fix", "last_attempt_at"), limit=50)


def queue_check(ledger: Ledger) -> AssetCheckResult:
    """Prints that wait for a person are visible in every run (WARN: the others went on)."""
    counts = ledger.counts()
    waiting = counts["needs_attention"]
    return AssetCheckResult(check_name="print_queue", passed=waiting == 0, severity=AssetCheckSeverity.WARN,
                            metadata={**{f"prints_{k}": v for k, v in counts.items()},
                                      "needs_attention": attention_table(ledger)})


def _fail(ledger: Ledger, run_id: str, step: str, message: str, verdict: list[str]) -> Failure:
    if verdict:
        message += " | settings check: " + "; ".join(verdict)
    ledger.set_meta(f"step_error:{step}", {"error": message, "run_id": run_id, "at": time.time()})
    # the scheduler answers the run's requests and schedules the retry (sensors.settle_launches)
    ledger.finish_run(run_id, status="failure", counts={}, details=[], error=message)
    return Failure(description=message)


@asset(
    group_name="inventree",
    deps=[AssetKey("silver_print_jobs"), AssetKey("silver_parts")],
    check_specs=[AssetCheckSpec("inventree_settings", asset="inventree_stock",
                                description="InvenTree token valid, category and stock location exist, "
                                            "Weight/PrintTime templates present."),
                 AssetCheckSpec("print_queue", asset="inventree_stock",
                                description="No print waits for a person (needs_attention).")],
    description="One InvenTree StockItem per finished silver print, on the right Part (IPN), with "
                "Weight/PrintTime parameters and the thumbnail as part image. Exactly once per print.",
)
def inventree_stock(context: AssetExecutionContext, config: SyncPrintsConfig,
                    inventree: InvenTreeResource, bambuddy: BambuddyResource):
    settings = SyncSettings.from_env()
    ledger = Ledger(settings.ledger_db)
    run_id = context.run.run_id
    ledger.start_run(run_id, _request_ids(context, ledger))
    started = time.monotonic()
    secrets = [settings.inventree_token, settings.bambuddy_api_key]
    # The settings verdict first: it is evaluated in every run, also the ones that fail below.
    client = inventree.get_client()
    check, verdict = inventree_verdict(client, settings)
    yield check
    selection = config.selection()
    report = QueueReport()
    with sync_lock(settings.data_dir):
        queue = PrintQueue(ledger, settings, run_id=run_id)
        take_in_silver(queue, settings, report)
        thumbnails = bambuddy.get_client() if settings.bambuddy_enabled and settings.sync_part_images else None
        steps = InvenTreeSteps(client, settings, thumbnails, refresh=selection.force_all)
        all_steps = [*steps.steps(), LinkStep(settings, bambuddy.get_client)]
        owned = {s.name for s in steps.steps()}
        try:
            drain(queue, work_for(queue, settings, selection, link_stage=False), all_steps, owned,
                  selection, report, FATAL_ERRORS, transient=TRANSIENT_ERRORS, guard_batches=True)
        except FATAL_ERRORS as exc:
            yield queue_check(ledger)
            raise _fail(ledger, run_id, "inventree_stock", redact(str(exc), secrets), verdict) from None
    ledger.set_meta("step_error:inventree_stock", None)
    counts = report.counts
    outcomes = [o.as_dict() for o in report.outcomes]
    metadata: dict[str, object] = {
        **{k: counts[k] for k in ("created", "reused", "skipped", "retrying", "needs_attention")},
        "enqueued": report.enqueued, "healed": report.healed,
        "parts_created": sum(1 for o in report.outcomes if o.part_created),
        "http_calls": getattr(client, "calls", 0), "duration_s": round(time.monotonic() - started, 3),
        "outcomes": _table(outcomes, ("print_id", "outcome", "step", "ipn", "part_pk", "stock_item_pk", "reason")),
    }
    warnings = steps.warnings
    if warnings:
        metadata["warnings"] = MetadataValue.md("\n".join(f"- {w}" for w in warnings))
    for pk in sorted({o.part_pk for o in report.outcomes if o.part_created and o.part_pk})[:10]:
        metadata[f"part_{pk}"] = MetadataValue.url(part_page_url(settings, pk))
    # "pushed": the links step settles the run; callers of the API wait for that
    ledger.finish_run(run_id, status="pushed", counts=counts, details=outcomes)
    for w in warnings:
        context.log.warning(w)
    for o in report.outcomes:
        if o.outcome in ("retrying", "needs_attention"):
            context.log.warning(f"{o.print_id} {o.outcome} at {o.step}: {o.reason}")
    yield queue_check(ledger)
    yield MaterializeResult(metadata=metadata)


@asset(
    group_name="inventree",
    deps=[inventree_stock],
    check_specs=[AssetCheckSpec("bambuddy_access", asset="bambuddy_links",
                                description="Bambuddy reachable with a key that may manage archives.")],
    description="The InvenTree part page written into each synced Bambuddy archive's external_url.",
)
def bambuddy_links(context: AssetExecutionContext, config: SyncPrintsConfig, bambuddy: BambuddyResource):
    settings = SyncSettings.from_env()
    ledger = Ledger(settings.ledger_db)
    run_id = context.run.run_id
    check, verdict = bambuddy_verdict(bambuddy, settings)
    yield check
    selection = config.selection()
    queue = PrintQueue(ledger, settings, run_id=run_id)
    step = LinkStep(settings, bambuddy.get_client)
    prints = work_for(queue, settings, selection, link_stage=True) if step.settings.bambuddy_enabled else []
    report = QueueReport()
    try:
        drain(queue, prints, [step], {"link"}, selection, report, FATAL_LINK_ERRORS, transient=TRANSIENT_LINK_ERRORS)
    except (*FATAL_LINK_ERRORS,) as exc:
        raise _fail(ledger, run_id, "bambuddy_links", redact(str(exc), [settings.bambuddy_api_key]), verdict) from None
    ledger.set_meta("step_error:bambuddy_links", None)
    linked = sum(1 for o in report.outcomes if o.outcome == "synced")
    ledger.complete_run(run_id, status="success", links=linked)
    metadata = {"linked": linked, "retrying": report.count("retrying"),
                "needs_attention": report.count("needs_attention"), "archives_considered": len(prints)}
    if not settings.bambuddy_enabled or not settings.sync_archive_external_link:
        metadata["skipped"] = ("BAMBUDDY_BASE_URL not set" if not settings.bambuddy_enabled
                               else "SYNC_ARCHIVE_EXTERNAL_LINK=false")
    yield MaterializeResult(metadata=metadata)

