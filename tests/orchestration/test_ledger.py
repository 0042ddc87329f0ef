"""Sync ledger (DATA_DIR/sync.sqlite3): the print state machine, steps, requests, and the in-place
migration of a wave-1 ledger (users back this file up and bring it along)."""

import sqlite3

from orchestration.ledger import Ledger
from orchestration.print_queue import PrintQueue, QueueReport, Refused
from orchestration.settings import SyncSettings
from orchestration.silver import SilverPrint


def silver(print_id="mqtt:S1:1", name="Benchy", status="completed", **over) -> SilverPrint:
    values = dict(print_id=print_id, source="mqtt", printer_serial="S1", printer_name="X1C", bambuddy_archive_id=None,
                  run_no=None, status=status, is_success=status == "completed", name=name, filename=None,
                  part_key="benchy", ipn="BMB-benchy", description="3D printed Benchy", weight_g=None,
                  print_time_s=3600, quantity=None, started_at=None, finished_at="2026-11-20T11:00:00Z",
                  batch=f"mqtt-S1-{print_id[-1]}", fail_reason=None)
    values.update(over)
    return SilverPrint(**values)


class Steps:
    """Two steps whose behaviour a test sets; records what ran."""

    def __init__(self):
        self.ran, self.fail = [], {}

    def step(self, name):
        outer = self

        class _S:
            def __init__(self):
                self.name = name

            def applies(self, p):
                return True

            def run(self, p, done):
                outer.ran.append((p.print_id, name))
                error = outer.fail.get(name)
                if error:
                    raise error
                return {"part_pk": 5} if name == "part" else {"stock_item_pk": 9, "created": True}
        return _S()


def test_states_follow_the_machine(tmp_path):
    settings = SyncSettings(data_dir=tmp_path, sync_retry_base_seconds=10)
    ledger = Ledger(settings.ledger_db)
    queue = PrintQueue(ledger, settings, run_id="r1")
    steps = Steps()
    chain = [steps.step("part"), steps.step("stock_item")]
    queue.enqueue([silver()], QueueReport())
    assert ledger.get("mqtt:S1:1").state == "pending"

    steps.fail["stock_item"] = RuntimeError("503 from the server")
    out = queue.process(silver(), chain, {"part", "stock_item"})
    entry = ledger.get("mqtt:S1:1")
    assert out.outcome == "retrying" and entry.state == "retrying" and entry.step == "stock_item"
    assert entry.attempts == 1 and "503" in entry.last_error and entry.next_attempt_at > entry.last_attempt_at
    assert queue.due() == []  # backoff: not due yet
    out = queue.process(silver(), chain, {"part", "stock_item"})
    assert ledger.get("mqtt:S1:1").attempts == 2  # consecutive failures count up
    assert steps.ran.count(("mqtt:S1:1", "part")) == 1  # the part step is done and not repeated

    steps.fail["stock_item"] = Refused("InvenTree refused a stock item (400): {...}", "fix INVENTREE_STOCK_LOCATION_ID")
    out = queue.process(silver(), chain, {"part", "stock_item"})
    entry = ledger.get("mqtt:S1:1")
    assert entry.state == "needs_attention" and entry.fix == "fix INVENTREE_STOCK_LOCATION_ID"
    queue.enqueue([silver()], QueueReport())  # nothing changed: stays
    assert ledger.get("mqtt:S1:1").state == "needs_attention"
    report = QueueReport()
    queue.enqueue([silver(name="Benchy v2")], report)  # e.g. renamed in Bambuddy: decided again
    assert ledger.get("mqtt:S1:1").state == "pending" and report.healed == 1

    steps.fail.clear()
    out = queue.process(silver(name="Benchy v2"), chain, {"part", "stock_item"})
    entry = ledger.get("mqtt:S1:1")
    assert out.outcome == "created" and entry.state == "synced" and entry.stock_item_pk == 9 and entry.attempts == 0
    assert ledger.steps_done("mqtt:S1:1") == {"part": {"part_pk": 5}, "stock_item": {"stock_item_pk": 9, "created": True}}


def test_skipped_and_refused_prints_are_decided_again_when_settings_change(tmp_path):
    settings = SyncSettings(data_dir=tmp_path)
    ledger = Ledger(settings.ledger_db)
    queue = PrintQueue(ledger, settings)
    queue.heal_on_settings_change(QueueReport())
    out = queue.process(silver(status="failed"), [], set())
    assert out.outcome == "skipped" and "SYNC_SUCCESS_ONLY" in ledger.get("mqtt:S1:1").reason
    report = QueueReport()
    PrintQueue(ledger, settings).heal_on_settings_change(report)
    assert report.healed == 0  # same settings
    PrintQueue(ledger, SyncSettings(data_dir=tmp_path, sync_success_only=False)).heal_on_settings_change(report)
    assert report.healed == 1 and ledger.get("mqtt:S1:1").state == "pending"


def test_a_step_owned_by_a_later_asset_leaves_the_print_waiting(tmp_path):
    settings = SyncSettings(data_dir=tmp_path)
    ledger = Ledger(settings.ledger_db)
    queue = PrintQueue(ledger, settings)
    steps = Steps()
    out = queue.process(silver(), [steps.step("part"), steps.step("link")], {"part"})
    entry = ledger.get("mqtt:S1:1")
    assert out.outcome == "waiting" and entry.state == "pending" and entry.step == "link"


def test_requests_round_trip(tmp_path):
    ledger = Ledger(tmp_path / "sync.sqlite3")
    first = ledger.add_request("webhook")
    second = ledger.add_request("archive", archive_ids=[5], force=True)
    assert [r["id"] for r in ledger.requests(("pending",))] == [first, second]
    ledger.claim_requests([first], "L1")
    assert ledger.request(first)["status"] == "launched" and ledger.request(first)["launch_id"] == "L1"
    ledger.start_run("run-1", [first])
    ledger.complete_run("run-1", status="success", links=1)
    assert ledger.request(first)["status"] == "done" and ledger.request(second)["status"] == "pending"


def test_a_wave_one_ledger_is_migrated_in_place(tmp_path):
    path = tmp_path / "sync.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE sync_ledger (print_id TEXT PRIMARY KEY, archive_id INTEGER, run_no INTEGER, batch TEXT,
            ipn TEXT, part_pk INTEGER, stock_item_pk INTEGER,
            state TEXT NOT NULL CHECK (state IN ('pending', 'synced', 'skipped', 'failed')), reason TEXT,
            attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, first_attempt_at TEXT NOT NULL,
            last_attempt_at TEXT NOT NULL, synced_at TEXT, link_state TEXT, link_url TEXT, link_written_at TEXT,
            dagster_run_id TEXT);
        CREATE TABLE sync_runs (run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,
            status TEXT NOT NULL, created INTEGER NOT NULL DEFAULT 0, reused INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, links INTEGER NOT NULL DEFAULT 0,
            request_ids TEXT, details_json TEXT);
        CREATE TABLE sync_requests (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, archive_ids TEXT,
            force INTEGER NOT NULL DEFAULT 0, max_archives INTEGER, created_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending', run_id TEXT, launched_at TEXT);
        INSERT INTO sync_ledger VALUES ('bambuddy:1:1', 1, 1, 'bambuddy-1', 'BMB-a', 3, 7, 'synced', NULL, 1, NULL,
            't', 't', 't', 'written', 'http://x/web/part/3/', 't', 'r1');
        INSERT INTO sync_ledger VALUES ('bambuddy:2:1', 2, 1, 'bambuddy-2', 'BMB-b', NULL, NULL, 'failed', NULL, 2,
            '503', 't', 't', NULL, NULL, NULL, NULL, 'r1');
        INSERT INTO sync_requests (kind, created_at, status) VALUES ('webhook', 't', 'launched');
    """)
    conn.close()
    ledger = Ledger(path)
    assert ledger.get("bambuddy:1:1").state == "synced" and ledger.get("bambuddy:1:1").stock_item_pk == 7
    assert ledger.get("bambuddy:2:1").state == "retrying" and ledger.get("bambuddy:2:1").attempts == 2
    assert ledger.requests() == []  # wave 1's launched request: served or lost, never waited on
    Ledger(path)  # a second open migrates nothing
    assert ledger.counts()["synced"] == 1


class Flaky(Exception):
    """Stands for a transient server error (InvenTreeServerError in the real steps)."""


class FailTimes:
    """A step that raises `error` its first `times` runs, then succeeds."""

    def __init__(self, name, times, error=Flaky("502 Bad Gateway")):
        self.name, self.times, self.error, self.calls = name, times, error, 0

    def applies(self, p):
        return True

    def run(self, p, done):
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return {"stock_item_pk": 9, "created": True}


def test_a_transient_error_is_tried_again_in_place_then_waits_its_backoff(tmp_path):
    settings = SyncSettings(data_dir=tmp_path, sync_retry_base_seconds=10, http_retries=3,
                            http_retry_backoff_seconds=0.01)
    ledger = Ledger(settings.ledger_db)
    queue = PrintQueue(ledger, settings, run_id="r1")
    burst = FailTimes("stock_item", 2)
    queue.enqueue([silver()], QueueReport())
    out = queue.process(silver(), [burst], {"stock_item"}, transient=(Flaky,))
    assert out.outcome == "created" and burst.calls == 3, "two failures absorbed in the same run"
    assert ledger.get("mqtt:S1:1").state == "synced"

    down = FailTimes("stock_item", 99)
    p2 = silver(print_id="mqtt:S1:2")
    queue.enqueue([p2], QueueReport())
    out = queue.process(p2, [down], {"stock_item"}, transient=(Flaky,))
    assert out.outcome == "retrying" and down.calls == 1 + settings.http_retries
    assert ledger.get("mqtt:S1:2").attempts == 1, "one attempt of the print, however many tries in place"

    other = FailTimes("stock_item", 1, error=RuntimeError("a bug"))
    p3 = silver(print_id="mqtt:S1:3")
    out = queue.process(p3, [other], {"stock_item"}, transient=(Flaky,))
    assert out.outcome == "retrying" and other.calls == 1, "only the transient kinds are tried again at once"


def test_a_server_that_stays_down_stops_the_tries_in_place_for_the_rest_of_the_run(tmp_path):
    from orchestration.print_queue import IN_PLACE_GIVE_UP

    settings = SyncSettings(data_dir=tmp_path, http_retries=3, http_retry_backoff_seconds=0.01)
    queue = PrintQueue(Ledger(settings.ledger_db), settings, run_id="r1")
    calls = []
    for n in range(IN_PLACE_GIVE_UP + 2):
        p = silver(print_id=f"mqtt:S1:{n}")
        step = FailTimes("stock_item", 99)
        assert queue.process(p, [step], {"stock_item"}, transient=(Flaky,)).outcome == "retrying"
        calls.append(step.calls)
    assert calls == [4] * IN_PLACE_GIVE_UP + [1, 1]
    fresh = PrintQueue(Ledger(settings.ledger_db), settings, run_id="r2")  # the next run tries again
    step = FailTimes("stock_item", 99)
    fresh.process(silver(print_id="mqtt:S1:9"), [step], {"stock_item"}, transient=(Flaky,))
    assert step.calls == 4


def test_a_settings_change_walks_synced_prints_again_only_for_what_is_new(tmp_path):
    settings = SyncSettings(data_dir=tmp_path)
    ledger = Ledger(settings.ledger_db)
    queue = PrintQueue(ledger, settings, run_id="r1")
    steps = Steps()
    queue.heal_on_settings_change(QueueReport())
    queue.enqueue([silver()], QueueReport())
    assert queue.process(silver(), [steps.step("part")], {"part"}).outcome == "synced"
    ledger.upsert("mqtt:S1:8", state="synced", batch="mqtt-S1-8")  # a wave-1 print: no steps on record

    from dataclasses import replace
    changed = PrintQueue(ledger, replace(settings, sync_part_images=not settings.sync_part_images), run_id="r2")
    changed.heal_on_settings_change(QueueReport())
    assert ledger.get("mqtt:S1:1").state == "pending" and ledger.get("mqtt:S1:8").state == "synced"
    out = changed.process(silver(), [steps.step("part"), steps.step("stock_item")], {"part", "stock_item"})
    assert out.outcome == "created" and steps.ran == [("mqtt:S1:1", "part"), ("mqtt:S1:1", "stock_item")]
    assert ledger.get("mqtt:S1:1").state == "synced", "the done step was not run again, only the new one"


def test_a_print_that_ran_out_of_tries_in_place_gets_one_more_go_at_the_end_of_the_push(tmp_path):
    """A 5xx burst (bench.soak): one print's step failed all its tries in place while the server
    went on answering the others. Waiting its backoff meant a whole run later; it is tried once
    more after the others, and a failure there counts as the same attempt."""
    from orchestration.inventree.push import drain
    from orchestration.print_queue import Selection

    settings = SyncSettings(data_dir=tmp_path, http_retries=1, http_retry_backoff_seconds=0.01)
    ledger = Ledger(settings.ledger_db)
    queue = PrintQueue(ledger, settings, run_id="r1")
    prints = [silver(print_id=f"mqtt:S1:{n}") for n in range(3)]
    queue.enqueue(prints, QueueReport())

    class Burst:
        """Fails the first print's first 2 tries (all it has in place), then answers."""
        name, calls = "stock_item", []

        def applies(self, p):
            return True

        def run(self, p, done):
            self.calls.append(p.print_id)
            if p.print_id == "mqtt:S1:0" and self.calls.count("mqtt:S1:0") <= 2:
                raise Flaky("503 Service Unavailable")
            return {"stock_item_pk": len(self.calls), "created": True}

    step = Burst()
    report = drain(queue, prints, [step], {"stock_item"}, Selection(), QueueReport(), (), transient=(Flaky,))
    assert [o.outcome for o in report.outcomes] == ["created"] * 3
    assert step.calls == ["mqtt:S1:0", "mqtt:S1:0", "mqtt:S1:1", "mqtt:S1:2", "mqtt:S1:0"]
    assert ledger.get("mqtt:S1:0").state == "synced" and ledger.get("mqtt:S1:0").attempts == 0

    # down for good: the second go fails too, and the print has used one attempt, not two
    ledger2 = Ledger(tmp_path / "other.sqlite3")
    queue2 = PrintQueue(ledger2, settings, run_id="r2")
    queue2.enqueue(prints[:1], QueueReport())
    down = FailTimes("stock_item", 99)
    report = drain(queue2, prints[:1], [down], {"stock_item"}, Selection(), QueueReport(), (), transient=(Flaky,))
    assert [o.outcome for o in report.outcomes] == ["retrying"] and down.calls == 4  # 2 tries, twice
    assert ledger2.get("mqtt:S1:0").attempts == 1
