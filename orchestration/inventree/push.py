"""Push silver prints into InvenTree stock, exactly once per print.

The order of steps per print is fixed (issue 6): skip check, part by IPN (create when absent),
stock item by batch (create when absent), Weight/PrintTime parameters, part image, ledger.
Exactly-once does not rest on the ledger alone: the stock item is always looked up by its
batch before one is created, so a crash between "created" and "ledger written" (or a
response lost after the server committed) is healed by the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

from orchestration.ledger import Ledger
from orchestration.settings import SyncSettings
from orchestration.silver import SilverPrint

from orchestration.bambuddy.client import BambuddyError

from .client import InvenTreeAuthError, InvenTreeError, InvenTreeUnreachable

log = logging.getLogger(__name__)

WEIGHT_TEMPLATE = "Weight"
PRINT_TIME_TEMPLATE = "PrintTime"

# Errors that make every further call pointless: stop the run, write nothing more.
FATAL_ERRORS = (InvenTreeAuthError, InvenTreeUnreachable)


class ThumbnailSource(Protocol):
    def download_thumbnail(self, archive_id: int) -> bytes: ...


@dataclass
class PrintOutcome:
    print_id: str
    outcome: str                    # created / reused / skipped / failed / unchanged
    part_pk: int | None = None
    stock_item_pk: int | None = None
    ipn: str | None = None
    error: str | None = None
    part_created: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class PushReport:
    outcomes: list[PrintOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parts_created: int = 0

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        return {k: self.count(k) for k in ("created", "reused", "skipped", "failed", "unchanged")}

    @property
    def failed(self) -> list[PrintOutcome]:
        return [o for o in self.outcomes if o.outcome == "failed"]


@dataclass(frozen=True)
class PushSelection:
    """Which prints a run handles (the `sync_prints` run config)."""

    archive_ids: tuple[int, ...] = ()
    force: bool = False
    max_archives: int | None = None

    def wants(self, p: SilverPrint) -> bool:
        return not self.archive_ids or p.bambuddy_archive_id in self.archive_ids


def stock_notes(p: SilverPrint) -> str:
    parts = [f"Printed on {p.printer_name or p.printer_serial or 'unknown printer'}"]
    if p.printer_serial and p.printer_name:
        parts[0] += f" ({p.printer_serial})"
    if p.print_time_s:
        hours, rest = divmod(int(p.print_time_s), 3600)
        parts.append(f"print time {hours}h {rest // 60:02d}m")
    if p.finished_at:
        parts.append(f"finished {p.finished_at}")
    if p.bambuddy_archive_id is not None:
        run = f", run {p.run_no}" if p.run_no and p.run_no > 1 else ""
        parts.append(f"Bambuddy archive #{p.bambuddy_archive_id}{run}")
    parts.append(f"print_id {p.print_id}")
    return "; ".join(parts) + "."


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class InvenTreePusher:
    """One run's worth of pushing: caches parts, templates and parameters for the run."""

    def __init__(self, client: Any, ledger: Ledger, settings: SyncSettings,
                 thumbnails: ThumbnailSource | None = None, run_id: str | None = None):
        self.client = client
        self.ledger = ledger
        self.settings = settings
        self.thumbnails = thumbnails
        self.run_id = run_id
        self.report = PushReport()
        self._parts: dict[str, Any] = {}                  # IPN -> part, for this run
        self._templates: dict[str, int] | None = None
        self._params: dict[int, dict] = {}                # part pk -> {template pk: (param pk, data)}
        self._imaged: set[int] = set()

    # --- run-level -----------------------------------------------------------------
    def push(self, prints: list[SilverPrint], selection: PushSelection = PushSelection()) -> PushReport:
        entries = self.ledger.entries()
        synced_in_run = 0
        for p in prints:
            if not selection.wants(p):
                continue
            if selection.max_archives is not None and synced_in_run >= selection.max_archives:
                break
            entry = entries.get(p.print_id)
            if entry and entry.state == "synced" and not selection.force:
                continue
            if entry and entry.state == "skipped" and not p.is_success and self.settings.sync_success_only:
                continue
            outcome = self.push_one(p, force=selection.force)
            self.report.outcomes.append(outcome)
            if outcome.outcome in ("created", "reused"):
                synced_in_run += 1
        return self.report

    # --- one print -----------------------------------------------------------------
    def push_one(self, p: SilverPrint, *, force: bool = False) -> PrintOutcome:
        if self.settings.sync_success_only and not p.is_success:
            self.ledger.mark_skipped(p.print_id, f"status {p.status} (SYNC_SUCCESS_ONLY)",
                                     archive_id=p.bambuddy_archive_id, batch=p.batch, run_id=self.run_id)
            return PrintOutcome(p.print_id, "skipped", ipn=p.ipn)
        self.ledger.record_attempt(p.print_id, archive_id=p.bambuddy_archive_id, run_no=p.run_no,
                                   batch=p.batch, ipn=p.ipn, run_id=self.run_id)
        try:
            part, part_created = self._part_for(p, refresh=force)
            self.ledger.record_part(p.print_id, part.pk)
            item, item_created = self._stock_item_for(p, part.pk)
            self.ledger.record_stock_item(p.print_id, item.pk)
            self._parameters(p, part.pk, refresh=force)
            self._image(p, part, refresh=force)
            self.ledger.mark_synced(p.print_id, part_pk=part.pk, stock_item_pk=item.pk)
        except FATAL_ERRORS:
            raise
        except InvenTreeError as exc:
            message = redact(str(exc), [self.settings.inventree_token])
            self.ledger.mark_failed(p.print_id, message)
            log.warning("print %s failed: %s", p.print_id, message)
            return PrintOutcome(p.print_id, "failed", ipn=p.ipn, error=message)
        except Exception as exc:  # a bug or a Bambuddy error must not stop the other prints
            message = redact(f"{type(exc).__name__}: {exc}",
                             [self.settings.inventree_token, self.settings.bambuddy_api_key])
            self.ledger.mark_failed(p.print_id, message)
            log.warning("print %s failed: %s", p.print_id, message)
            return PrintOutcome(p.print_id, "failed", ipn=p.ipn, error=message)
        return PrintOutcome(p.print_id, "created" if item_created else "reused", part_pk=part.pk,
                            stock_item_pk=item.pk, ipn=p.ipn, part_created=part_created)

    def _part_for(self, p: SilverPrint, *, refresh: bool) -> tuple[Any, bool]:
        key = p.ipn.upper()  # InvenTree matches IPNs case-insensitively
        if key in self._parts and not refresh:
            return self._parts[key], False
        parts = self.client.find_parts_by_ipn(p.ipn)
        if len(parts) > 1:
            self.report.warnings.append(
                f"IPN {p.ipn} matches {len(parts)} parts (pks {[x.pk for x in parts]}); using the lowest pk {parts[0].pk}")
        if parts:
            part, created = parts[0], False
        else:
            part = self.client.create_part(
                name=p.part_name, ipn=p.ipn, description=p.description[:250],
                category=self.settings.inventree_part_category_id)
            created = True
            self.report.parts_created += 1
        self._parts[key] = part
        return part, created

    def _stock_item_for(self, p: SilverPrint, part_pk: int) -> tuple[Any, bool]:
        # By batch alone: a stock item made earlier on another part (e.g. by the original sidecar with
        # its own IPNs) is still this print's item, and must not get a twin.
        existing = self.client.find_stock_by_batch(p.batch)
        if existing:
            mine = [item for item in existing if item.part == part_pk]
            if not mine:
                self.report.warnings.append(
                    f"batch {p.batch} already has stock item {existing[0].pk} on part {existing[0].part}; reused it")
            return (mine or existing)[0], False
        item = self.client.create_stock_item(
            part=part_pk, quantity=p.quantity or self.settings.default_stock_quantity,
            location=self.settings.inventree_stock_location_id, status=self.settings.inventree_stock_status,
            batch=p.batch, notes=stock_notes(p))
        return item, True

    def _parameters(self, p: SilverPrint, part_pk: int, *, refresh: bool) -> None:
        templates = self.templates()
        wanted = {}
        if p.weight_g is not None and WEIGHT_TEMPLATE in templates:
            wanted[templates[WEIGHT_TEMPLATE]] = f"{p.weight_g:g} g"
        if p.print_time_s is not None and PRINT_TIME_TEMPLATE in templates:
            wanted[templates[PRINT_TIME_TEMPLATE]] = f"{int(p.print_time_s)} s"
        if not wanted:
            return
        if part_pk not in self._params or refresh:
            self._params[part_pk] = self.client.part_parameters(part_pk)
        current = self._params[part_pk]
        for template_pk, value in wanted.items():
            existing = current.get(template_pk)
            result = self.client.set_parameter(part_pk, template_pk, value, existing=existing)
            if result is not None:
                current[template_pk] = result

    def templates(self) -> dict[str, int]:
        """Weight/PrintTime template pks, looked up once per run; a missing one is a warning."""
        if self._templates is None:
            self._templates = self.client.parameter_templates((WEIGHT_TEMPLATE, PRINT_TIME_TEMPLATE))
            for name in (WEIGHT_TEMPLATE, PRINT_TIME_TEMPLATE):
                if name not in self._templates:
                    self.report.warnings.append(
                        f"parameter template {name!r} not found in InvenTree: create it (Settings > Parameters) "
                        f"to record {'weight in g' if name == WEIGHT_TEMPLATE else 'print time in s'}")
        return self._templates

    def _image(self, p: SilverPrint, part: Any, *, refresh: bool) -> None:
        if not self.settings.sync_part_images or self.thumbnails is None or p.bambuddy_archive_id is None:
            return
        if part.pk in self._imaged and not refresh:
            return
        if self.client.part_has_image(part) and not self.settings.overwrite_part_images:
            self._imaged.add(part.pk)
            return
        try:
            image = self.thumbnails.download_thumbnail(p.bambuddy_archive_id)
        except BambuddyError as exc:
            # no thumbnail is no reason to fail the print: the stock item is what matters
            self.report.warnings.append(f"no thumbnail for archive {p.bambuddy_archive_id}: {exc}")
            return
        self.client.upload_part_image(part, image, f"{p.ipn}.png")
        self._imaged.add(part.pk)
