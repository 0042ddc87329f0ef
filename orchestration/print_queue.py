"""The per-print state machine and the runner of a print's steps (DESIGN.md "The work queue").

    pending ──all steps done──▶ synced
       │  ├──not to be pushed──▶ skipped(reason)            ─┐
       │  ├──transient error───▶ retrying(attempts, error,  │ back to pending when the print's
       │  │                       next attempt, backoff)     │ data or the settings change
       │  └──server refuses────▶ needs_attention(reason, fix)┘ (retrying: when its attempt is due)

Every side effect of a print is a Step with a natural key its `run` checks before acting, so a
step that ran but was not recorded (a crash) is found, not repeated. A print's failure touches
that print only. Which step does what lives in the steps; which state follows which lives here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Protocol, Sequence

from orchestration.ledger import Ledger, LedgerEntry, stamp_in, utc_now
from orchestration.settings import SyncSettings, retry_delay
from orchestration.silver import SilverPrint

log = logging.getLogger(__name__)

# Settings whose change may heal a refused print (a fixed category id, SYNC_SUCCESS_ONLY=false, ...).
HEALING_SETTINGS = ("inventree_part_category_id", "inventree_stock_location_id", "inventree_stock_status",
                    "sync_success_only", "default_stock_quantity", "part_ipn_prefix", "part_key_fields",
                    "inventree_web_url", "inventree_base_url", "sync_archive_external_link",
                    "overwrite_archive_external_link", "sync_part_images")


class Refused(Exception):
    """The server refuses this print's data or a setting (4xx validation): waiting helps nothing."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason, self.fix = reason, fix


class Step(Protocol):
    name: str

    def applies(self, p: SilverPrint) -> bool: ...

    def run(self, p: SilverPrint, done: dict[str, dict]) -> dict:
        """Do the side effect unless its natural key shows it done; return what to remember
        (e.g. {"part_pk": 7}). `done` holds what earlier steps of this print remembered."""


@dataclass(frozen=True)
class Selection:
    """Which prints a run handles (from the requests it serves, or a manual run's config)."""

    archive_ids: tuple[int, ...] = ()          # empty: every pending print
    force_archive_ids: tuple[int, ...] = ()    # redo every step of these (never a 2nd stock item)
    force_all: bool = False
    max_archives: int | None = None            # stop after N synced prints

    def forced(self, p: SilverPrint) -> bool:
        return self.force_all or (p.bambuddy_archive_id is not None and p.bambuddy_archive_id in self.force_archive_ids)


@dataclass
class Outcome:
    print_id: str
    outcome: str            # created / reused / synced / skipped / retrying / needs_attention / waiting
    step: str | None = None
    part_pk: int | None = None
    stock_item_pk: int | None = None
    ipn: str | None = None
    reason: str | None = None
    fix: str | None = None
    part_created: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}


@dataclass
class QueueReport:
    outcomes: list[Outcome] = field(default_factory=list)
    enqueued: int = 0
    healed: int = 0

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        names = ("created", "reused", "synced", "skipped", "retrying", "needs_attention", "waiting")
        out = {k: self.count(k) for k in names}
        out["failed"] = out["retrying"] + out["needs_attention"]
        return out


# After this many prints of one run used up their in-place retries, the server counts as down for
# the rest of the run: the other prints go straight to their backoff instead of each waiting.
IN_PLACE_GIVE_UP = 2


def backoff_seconds(attempts: int, settings: SyncSettings) -> float:
    return min(settings.sync_retry_base_seconds * 2 ** max(attempts - 1, 0), settings.sync_retry_max_seconds)


class PrintQueue:
    def __init__(self, ledger: Ledger, settings: SyncSettings, run_id: str | None = None):
        self.ledger = ledger
        self.settings = settings
        self.run_id = run_id
        self._settings_fp = _digest({k: str(getattr(settings, k)) for k in HEALING_SETTINGS})
        self._gave_up = 0  # prints whose in-place retries ran out in this run

    # --- what there is to do -------------------------------------------------------------
    def fingerprint(self, p: SilverPrint) -> str:
        return _digest([asdict(p), self._settings_fp])

    def enqueue(self, prints: Iterable[SilverPrint], report: QueueReport) -> None:
        """Record new and changed silver prints; a changed print that was refused or skipped is
        decided again (a rename in Bambuddy heals a refused name)."""
        prints = list(prints)
        known = self.ledger.entries([p.print_id for p in prints])
        for p in prints:
            entry, fp = known.get(p.print_id), self.fingerprint(p)
            ident = dict(archive_id=p.bambuddy_archive_id, run_no=p.run_no, batch=p.batch, ipn=p.ipn, fingerprint=fp)
            if entry is None:
                self.ledger.upsert(p.print_id, state="pending", **ident)
                report.enqueued += 1
            elif entry.fingerprint == fp:
                continue
            elif entry.state in ("needs_attention", "skipped", "retrying"):
                self.ledger.upsert(p.print_id, state="pending", reason=None, fix=None, next_attempt_at=None,
                                   attempts=0, **ident)
                report.healed += 1
            elif entry.state == "synced" and p.bambuddy_archive_id is not None and entry.archive_id is None:
                # an MQTT-only print whose archive appeared: its link is still to write
                self.ledger.upsert(p.print_id, state="pending", step=None, **ident)
                report.healed += 1
            else:
                self.ledger.update(p.print_id, **ident)

    def heal_on_settings_change(self, report: QueueReport) -> None:
        """Refused and skipped prints are decided again once the settings changed; synced prints
        are walked through their steps again, which does only what a setting newly asks for (a
        link or image switched on): done steps are skipped by their record."""
        if self.ledger.meta("settings_fingerprint") == self._settings_fp:
            return
        with self.ledger.transaction() as conn:
            cur = conn.execute("UPDATE sync_ledger SET state = 'pending', reason = NULL, fix = NULL, attempts = 0, "
                               "next_attempt_at = NULL WHERE state IN ('needs_attention', 'skipped')")
            report.healed += cur.rowcount
            # only prints whose steps are on record: a wave-1 print (no records) would redo every lookup
            conn.execute("UPDATE sync_ledger SET state = 'pending', step = NULL WHERE state = 'synced' "
                         "AND print_id IN (SELECT print_id FROM sync_steps)")
            self.ledger.set_meta("settings_fingerprint", self._settings_fp, conn=conn)

    def due(self) -> list[LedgerEntry]:
        return self.ledger.in_states(("pending", "retrying"), due_by=utc_now())

    # --- one print -----------------------------------------------------------------------
    def process(self, p: SilverPrint, steps: Sequence[Step], owned: set[str], *, force: bool = False,
                fatal: tuple[type[BaseException], ...] = (),
                transient: tuple[type[BaseException], ...] = (), again: bool = False) -> Outcome:
        """again: the second try of a print this run already failed; a failure counts once."""
        if self.settings.sync_success_only and not p.is_success:
            reason = f"status {p.status} (SYNC_SUCCESS_ONLY)" + (f": {p.fail_reason}" if p.fail_reason else "")
            self._set(p, "skipped", reason=reason, fix="set SYNC_SUCCESS_ONLY=false to stock failed prints too")
            return Outcome(p.print_id, "skipped", ipn=p.ipn, reason=reason)
        done = self.ledger.steps_done(p.print_id)
        ran: dict[str, dict] = {}
        for step in steps:
            if not step.applies(p) or (step.name in done and not force):
                continue
            if step.name not in owned:  # the next step belongs to a later asset of the run
                self._set(p, "pending", step=step.name, reason=f"waiting for step {step.name}")
                return self._outcome(p, "waiting", done, ran, step=step.name)
            try:
                detail = self._run_step(step, p, done, transient)
            except fatal:
                raise
            except Refused as exc:
                self._set(p, "needs_attention", step=step.name, reason=exc.reason, fix=exc.fix,
                          last_error=exc.reason, attempts_inc=True)
                log.warning("print %s needs attention at %s: %s", p.print_id, step.name, exc.reason)
                return Outcome(p.print_id, "needs_attention", step=step.name, ipn=p.ipn, reason=exc.reason, fix=exc.fix)
            except Exception as exc:  # transient, or a bug: never a reason to stop the other prints
                message = self._redact(f"{type(exc).__name__}: {exc}")
                entry = self.ledger.get(p.print_id)
                attempts = (entry.attempts if entry else 0) + (0 if again and entry else 1)
                wait = backoff_seconds(attempts, self.settings)
                self._set(p, "retrying", step=step.name, reason=f"{step.name} failed, retried in {wait:.0f} s",
                          last_error=message, next_attempt_at=stamp_in(wait), attempts=attempts)
                log.warning("print %s retrying at %s: %s", p.print_id, step.name, message)
                return Outcome(p.print_id, "retrying", step=step.name, ipn=p.ipn, reason=message)
            self.ledger.step_done(p.print_id, step.name, detail)
            done[step.name] = ran[step.name] = detail
            self._record(p, detail)
        self._set(p, "synced", synced=True)
        return self._outcome(p, "synced", done, ran)

    def _run_step(self, step: Step, p: SilverPrint, done: dict, transient: tuple[type[BaseException], ...]) -> dict:
        """A step looks its object up by natural key before acting, so running it again is safe:
        a transient error (a 5xx burst, a lost answer) is tried again in place a few times
        (HTTP_RETRIES, on settings.retry_delay's schedule) and costs seconds, not the backoff."""
        tries = self.settings.http_retries if self._gave_up < IN_PLACE_GIVE_UP else 0
        attempt = 0
        while True:
            try:
                return step.run(p, done)
            except transient as exc:
                if attempt == tries:
                    self._gave_up += 1 if tries else 0
                    raise
                log.info("print %s: %s failed (%s), again in place", p.print_id, step.name, exc)
                time.sleep(retry_delay(self.settings.http_retry_backoff_seconds, attempt + 1))
                attempt += 1

    def server_answers(self) -> bool:
        """False once the server counts as down for this run (IN_PLACE_GIVE_UP prints gave up)."""
        return self._gave_up < IN_PLACE_GIVE_UP

    def hold(self, p: SilverPrint, step: str, reason: str, fix: str) -> Outcome:
        """needs_attention without trying: the print's own data says it cannot be pushed as it is."""
        self._set(p, "needs_attention", step=step, reason=reason, fix=fix, last_error=reason)
        return Outcome(p.print_id, "needs_attention", step=step, ipn=p.ipn, reason=reason, fix=fix)

    def _outcome(self, p: SilverPrint, state: str, done: dict, ran: dict, step: str | None = None) -> Outcome:
        stock = done.get("stock_item", {})
        outcome = state
        if "stock_item" in ran:
            outcome = "created" if stock.get("created") else "reused"
        return Outcome(p.print_id, outcome, step=step, ipn=p.ipn, part_pk=done.get("part", {}).get("part_pk"),
                       stock_item_pk=stock.get("stock_item_pk"),
                       part_created=bool(ran.get("part", {}).get("created")))

    def _record(self, p: SilverPrint, detail: dict) -> None:
        cols = {k: detail[k] for k in ("part_pk", "stock_item_pk", "link_state", "link_url") if k in detail}
        if "link_state" in cols and cols["link_state"] == "written":
            cols["link_written_at"] = utc_now()
        if cols:
            self.ledger.update(p.print_id, **cols)

    def _set(self, p: SilverPrint, state: str, *, step: str | None = None, reason: str | None = None,
             fix: str | None = None, last_error: str | None = None, next_attempt_at: str | None = None,
             attempts: int | None = None, attempts_inc: bool = False, synced: bool = False) -> None:
        values: dict[str, Any] = dict(state=state, step=step, reason=reason, fix=fix, next_attempt_at=next_attempt_at,
                                      archive_id=p.bambuddy_archive_id, run_no=p.run_no, batch=p.batch, ipn=p.ipn,
                                      fingerprint=self.fingerprint(p), dagster_run_id=self.run_id)
        if state in ("synced", "skipped", "pending"):
            values.update(attempts=0, last_error=None)
        if last_error is not None:
            values["last_error"] = last_error
        if attempts is not None:
            values["attempts"] = attempts
        elif attempts_inc:
            entry = self.ledger.get(p.print_id)
            values["attempts"] = (entry.attempts if entry else 0) + 1
        if synced:
            values["synced_at"] = utc_now()
        self.ledger.upsert(p.print_id, **values)

    def _redact(self, text: str) -> str:
        for secret in (self.settings.inventree_token, self.settings.bambuddy_api_key):
            if secret:
                text = text.replace(secret, "***")
        return text


def _digest(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
