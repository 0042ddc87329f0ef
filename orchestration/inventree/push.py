"""One run's turn of the print queue: take in what silver changed, then work the due prints.

Shared by the two assets of the run: `inventree_stock` owns the InvenTree steps, `bambuddy_links`
the link step. A run reads only what dbt (re)built since the ledger's watermark and the prints
the ledger holds as due, so its cost follows the new work, not the history.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from orchestration.ledger import Ledger
from orchestration.print_queue import Outcome, PrintQueue, QueueReport, Selection, Step
from orchestration.settings import SyncSettings
from orchestration.silver import (
    SilverPrint,
    batch_conflicts,
    read_changed_prints,
    read_prints_by_id,
    read_prints_of_archives,
)

SILVER_WATERMARK = "silver_watermark"


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def take_in_silver(queue: PrintQueue, settings: SyncSettings, report: QueueReport) -> None:
    """New and changed silver prints into the ledger (durable before any push is tried)."""
    queue.heal_on_settings_change(report)
    changed, watermark = read_changed_prints(settings.warehouse_db, queue.ledger.meta(SILVER_WATERMARK))
    queue.enqueue(changed, report)
    if watermark:
        queue.ledger.set_meta(SILVER_WATERMARK, watermark)
    held = [e for e in queue.ledger.in_states(("needs_attention",)) if e.reason and CONFLICT in e.reason]
    if held:  # a conflict resolved on the other print's side heals this one too
        still = batch_conflicts(settings.warehouse_db, [e.batch for e in held if e.batch])
        for e in held:
            if e.batch not in still:
                queue.ledger.update(e.print_id, state="pending", reason=None, fix=None, step=None)
                report.healed += 1


def work_for(queue: PrintQueue, settings: SyncSettings, selection: Selection, *, link_stage: bool) -> list[SilverPrint]:
    """The prints this stage of the run handles: due ones (scoped by the selection) and forced ones.
    Prints waiting for the link step belong to the link stage only."""
    ledger: Ledger = queue.ledger
    if selection.archive_ids:
        prints = read_prints_of_archives(settings.warehouse_db, selection.archive_ids)
        queue.enqueue(prints, QueueReport())
        entries = ledger.entries([p.print_id for p in prints])
        chosen = [p for p in prints if selection.forced(p) or entries[p.print_id].state != "synced"]
    else:
        due = [e for e in queue.due() if (e.step == "link") == link_stage]
        found = read_prints_by_id(settings.warehouse_db, [e.print_id for e in due])
        for e in due:
            if e.print_id not in found:  # silver no longer has it (e.g. its archive id changed)
                ledger.upsert(e.print_id, state="skipped", reason="no longer in silver_print_jobs", step=None)
        chosen = list(found.values())
        forced = read_prints_of_archives(settings.warehouse_db, selection.force_archive_ids)
        chosen += [p for p in forced if p.print_id not in found]
    if link_stage:  # only prints whose InvenTree steps are done: waiting for the link, or forced
        entries = ledger.entries([p.print_id for p in chosen])
        chosen = [p for p in chosen if p.print_id in entries and entries[p.print_id].part_pk is not None
                  and (entries[p.print_id].step == "link" or selection.forced(p))]
    return sorted(chosen, key=lambda p: (p.finished_at or "", p.print_id))


CONFLICT = "is also claimed by"


def drain(queue: PrintQueue, prints: Sequence[SilverPrint], steps: Sequence[Step], owned: set[str],
          selection: Selection, report: QueueReport, fatal: tuple[type[BaseException], ...], *,
          transient: tuple[type[BaseException], ...] = (), guard_batches: bool = False) -> QueueReport:
    synced = 0
    failed: list[tuple[int, SilverPrint]] = []  # (index in report.outcomes, print) that are retrying
    # A batch is the stock item's natural key: when silver gives it to two prints (a join defect, also
    # a failing dbt test), those prints wait with the reason; every other print goes on.
    conflicts = batch_conflicts(queue.settings.warehouse_db, [p.batch for p in prints]) if guard_batches else {}
    for p in prints:
        others = [i for i in conflicts.get(p.batch, []) if i != p.print_id]
        if others:
            report.outcomes.append(queue.hold(
                p, "stock_item", f"batch {p.batch} {CONFLICT} {', '.join(others[:3])} in silver_print_jobs",
                "a join defect: see data_tests in /sync/status (the failing dbt test); the print goes on by "
                "itself once silver gives the batch to one print"))
            continue
        if selection.max_archives is not None and synced >= selection.max_archives:
            break
        outcome: Outcome = queue.process(p, steps, owned, force=selection.forced(p), fatal=fatal,
                                         transient=transient)
        report.outcomes.append(outcome)
        if outcome.outcome == "retrying":
            failed.append((len(report.outcomes) - 1, p))
        if outcome.outcome in ("created", "reused", "synced", "waiting") and outcome.part_pk:
            synced += 1
    # A print whose step ran out of in-place tries in a 5xx burst would wait for the next run (a
    # whole run later); while the server still answers the others, it gets one more go at the end.
    for index, p in failed:
        if not queue.server_answers():
            break
        report.outcomes[index] = queue.process(p, steps, owned, force=selection.forced(p), fatal=fatal,
                                               transient=transient, again=True)
    return report
