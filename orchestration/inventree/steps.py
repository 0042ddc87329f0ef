"""The InvenTree side effects of one print, each an idempotent step of the print queue.

Order (fixed): part (by IPN, created when absent) -> stock item (by batch, created when absent)
-> parameters (Weight/PrintTime of the part) -> part image. Each step looks its natural key up in
InvenTree before it writes, so a crash between "written" and "recorded" is healed, not repeated.
A 4xx validation answer is a Refused (the print waits in needs_attention with the fix); anything
else but the fatal errors is retried with backoff by the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestration.bambuddy.client import BambuddyError
from orchestration.print_queue import Refused
from orchestration.settings import SyncSettings
from orchestration.silver import SilverPrint, read_part_facts

from .client import (FIELD_SETTINGS, InvenTreeAuthError, InvenTreeServerError, InvenTreeUnreachable,
                     InvenTreeValidationError)

WEIGHT_TEMPLATE = "Weight"
PRINT_TIME_TEMPLATE = "PrintTime"

# Errors that make every further call pointless: stop the run, write nothing more.
FATAL_ERRORS = (InvenTreeAuthError, InvenTreeUnreachable)
# Errors worth trying again at once: a 5xx burst, an answer lost on the way.
TRANSIENT_ERRORS = (InvenTreeServerError,)


class ThumbnailSource(Protocol):
    def download_thumbnail(self, archive_id: int) -> bytes: ...


def refusal(exc: InvenTreeValidationError) -> Refused:
    """Which fix a 400 asks for: a setting when the refused field is one, else the print's data."""
    settings = [FIELD_SETTINGS[f] for f in exc.fields if f in FIELD_SETTINGS]
    if settings:
        fix = f"fix {' and '.join(settings)}; the print is tried again when the settings change"
    else:
        fix = ("change the print's name or file in Bambuddy (or the value InvenTree refused); the print is tried "
               "again by itself when its data changes")
    return Refused(str(exc), fix)


def stock_notes(p: SilverPrint) -> str:
    """What the stock item says about this one run (its own duration, not the part's)."""
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


@dataclass
class InvenTreeSteps:
    """The four steps over one client, with what a run may cache (parts by IPN, templates)."""

    client: Any
    settings: SyncSettings
    thumbnails: ThumbnailSource | None = None
    warnings: list[str] = field(default_factory=list)
    refresh: bool = False
    _parts: dict[str, Any] = field(default_factory=dict)
    _templates: dict[str, int] | None = None
    _params: dict[int, dict] = field(default_factory=dict)   # part pk -> {template pk: (param pk, data)}
    _imaged: set[int] = field(default_factory=set)

    def steps(self) -> list:
        return [_Step("part", self.part), _Step("stock_item", self.stock_item),
                _Step("parameters", self.parameters), _Step("image", self.image, self.wants_image)]

    # --- part ----------------------------------------------------------------------------
    def part(self, p: SilverPrint, done: dict) -> dict:
        key = p.ipn.upper()  # InvenTree matches IPNs case-insensitively
        if key in self._parts and not self.refresh:
            return {"part_pk": self._parts[key].pk, "created": False}
        parts = self._guard(lambda: self.client.find_parts_by_ipn(p.ipn))
        if len(parts) > 1:
            self.warnings.append(f"IPN {p.ipn} matches {len(parts)} parts (pks {[x.pk for x in parts]}); "
                                 f"using the lowest pk {parts[0].pk}")
        created = not parts
        part = parts[0] if parts else self._guard(lambda: self.client.create_part(
            name=p.part_name, ipn=p.ipn, description=p.description, category=self.settings.inventree_part_category_id))
        self._parts[key] = part
        return {"part_pk": part.pk, "created": created}

    def _part_pk(self, done: dict) -> int:
        return int(done["part"]["part_pk"])

    # --- stock item ----------------------------------------------------------------------
    def stock_item(self, p: SilverPrint, done: dict) -> dict:
        part_pk = self._part_pk(done)
        # By batch alone: an item made earlier on another part (e.g. by the original sidecar with its
        # own IPNs) is still this print's item and must not get a twin.
        existing = self._guard(lambda: self.client.find_stock_by_batch(p.batch))
        if existing:
            mine = [item for item in existing if item.part == part_pk]
            if not mine:
                self.warnings.append(f"batch {p.batch} already has stock item {existing[0].pk} on part "
                                     f"{existing[0].part}; reused it")
            return {"stock_item_pk": (mine or existing)[0].pk, "created": False}
        item = self._guard(lambda: self.client.create_stock_item(
            part=part_pk, quantity=p.quantity or self.settings.default_stock_quantity,
            location=self.settings.inventree_stock_location_id, status=self.settings.inventree_stock_status,
            batch=p.batch, notes=stock_notes(p)))
        return {"stock_item_pk": item.pk, "created": True}

    # --- parameters ----------------------------------------------------------------------
    def templates(self) -> dict[str, int]:
        if self._templates is None:
            self._templates = self._guard(lambda: self.client.parameter_templates((WEIGHT_TEMPLATE, PRINT_TIME_TEMPLATE)))
            for name in (WEIGHT_TEMPLATE, PRINT_TIME_TEMPLATE):
                if name not in self._templates:
                    self.warnings.append(
                        f"parameter template {name!r} not found in InvenTree: create it (Settings > Parameters) "
                        f"to record {'weight in g' if name == WEIGHT_TEMPLATE else 'print time in s'}")
        return self._templates

    def parameters(self, p: SilverPrint, done: dict) -> dict:
        """The part's Weight/PrintTime from silver_parts (the median over its successful prints),
        so a part's parameters do not flip with every print."""
        part_pk = self._part_pk(done)
        facts = read_part_facts(self.settings.warehouse_db, p.part_key)
        weight = facts.weight_g if facts else p.weight_g
        seconds = facts.print_time_s if facts else p.print_time_s
        templates = self.templates()
        wanted = {}
        if weight is not None and WEIGHT_TEMPLATE in templates:
            wanted[templates[WEIGHT_TEMPLATE]] = f"{weight:g} g"
        if seconds is not None and PRINT_TIME_TEMPLATE in templates:
            wanted[templates[PRINT_TIME_TEMPLATE]] = f"{int(seconds)} s"
        if not wanted:
            return {"values": {}}
        if part_pk not in self._params or self.refresh:  # read once per part and run
            self._params[part_pk] = self._guard(lambda: self.client.part_parameters(part_pk))
        current = self._params[part_pk]
        try:
            for template_pk, value in wanted.items():
                stored = self._guard(lambda: self.client.set_parameter(part_pk, template_pk, value,
                                                                       existing=current.get(template_pk)))
                if stored is not None:
                    current[template_pk] = stored
        except Exception:
            # a create whose answer was lost may have been stored: the step's next try reads again
            self._params.pop(part_pk, None)
            raise
        return {"values": {str(k): v for k, v in wanted.items()}}

    # --- image ---------------------------------------------------------------------------
    def wants_image(self, p: SilverPrint) -> bool:
        return self.settings.sync_part_images and self.thumbnails is not None and p.bambuddy_archive_id is not None

    def image(self, p: SilverPrint, done: dict) -> dict:
        part_pk = self._part_pk(done)
        if part_pk in self._imaged and not self.refresh:
            return {"image": "kept"}
        part = self._parts.get(p.ipn.upper())
        if part is None or part.pk != part_pk:
            parts = self._guard(lambda: self.client.find_parts_by_ipn(p.ipn))
            part = next((x for x in parts if x.pk == part_pk), parts[0] if parts else None)
        if part is not None and self.client.part_has_image(part) and not self.settings.overwrite_part_images:
            self._imaged.add(part_pk)
            return {"image": "kept"}
        try:
            image = self.thumbnails.download_thumbnail(p.bambuddy_archive_id)
        except BambuddyError as exc:
            # no thumbnail is no reason to hold the print: the stock item is what matters
            self.warnings.append(f"no thumbnail for archive {p.bambuddy_archive_id}: {exc}")
            return {"image": "none", "why": str(exc)[:200]}
        self._guard(lambda: self.client.upload_part_image(part if part is not None else part_pk, image, f"{p.ipn}.png"))
        self._imaged.add(part_pk)
        return {"image": "uploaded"}

    @staticmethod
    def _guard(call):
        try:
            return call()
        except InvenTreeValidationError as exc:
            raise refusal(exc) from None


@dataclass
class _Step:
    name: str
    _run: Any
    _applies: Any = None

    def applies(self, p: SilverPrint) -> bool:
        return self._applies(p) if self._applies else True

    def run(self, p: SilverPrint, done: dict) -> dict:
        return self._run(p, done)

