"""Fuzzing the MQTT logger (issue #9): well over 10,000 generated and mutated payloads, all built
from the real printer reports in tests/contracts/mqtt/samples/ (sources in SOURCES.md, protocol
notes in tests/contracts/mqtt/PROTOCOL.md), go through the logger's real processing path.

Kinds of input: JSON reports with mutated values and types (None, bool, huge/negative ints,
NaN/Infinity, unicode and lone surrogates, nested garbage, removed keys, deep nesting), byte-level
mutations of the raw sample files (flips, truncation, invalid UTF-8, splices), non-object and
oversized JSON, and sequences of reports that take the job lifecycle (ingestion/job.py JobTracker)
through odd transitions, with (re)connects in between.

The contract checked on every example: nothing escapes the processing code (the writer thread
stays alive, "logger writer thread crashed" is never logged), and every message is accounted for:
it is either merged or quarantined with its payload and a reason; a payload parse_report refuses is
always quarantined; an unmodified sample is never quarantined; the heartbeat counters agree with
the rows. Hypothesis runs derandomized without an example database, so CI sees the same inputs.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingestion.config import LoggerSettings, PrinterConfig
from ingestion.job import LIVE_STATUSES, iso
from ingestion.logger import LoggerService
from ingestion.protocol import MAX_PAYLOAD_BYTES, BadPayload, is_status_report, parse_report
from ingestion.raw_schema import ENDED_JOB_STATUSES
from ingestion.store import truncate_payload

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "contracts" / "mqtt" / "samples"
SAMPLES: dict[str, bytes] = {p.name: p.read_bytes() for p in sorted(SAMPLES_DIR.glob("*.json"))}
REPORTS: dict[str, dict] = {name: json.loads(raw) for name, raw in SAMPLES.items()}
STATUS_SAMPLES = sorted(n for n, d in REPORTS.items() if is_status_report(d))
FULL_SAMPLES = [n for n in STATUS_SAMPLES if REPORTS[n]["print"].get("msg", 0) == 0]
SERIALS = ("01S00FUZZ0000001", "03W00FUZZ0000002")
BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CRASH_MESSAGE = "logger writer thread crashed"

# The fields the job logic reads (protocol.FIELD_TYPES and friends), mutated more often than the rest.
HOT_FIELDS = ("gcode_state", "mc_percent", "mc_remaining_time", "layer_num", "total_layer_num", "print_error",
              "mc_print_error_code", "task_id", "subtask_id", "project_id", "profile_id", "subtask_name",
              "gcode_file", "print_type", "gcode_start_time", "hms", "ams", "vt_tray", "msg", "command",
              "fail_reason")
GCODE_STATES = ("IDLE", "PREPARE", "SLICING", "RUNNING", "PAUSE", "FINISH", "FAILED", "INIT", "OFFLINE",
                "", "running", "UNKNOWN")
CANCEL_CODES = (50348044, 83902478, "50348044")


def test_samples_are_present():
    assert len(STATUS_SAMPLES) >= 5 and len(SAMPLES) >= 10, f"contract samples missing at {SAMPLES_DIR}"


# --- strategies ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Msg:
    payload: bytes
    kind: str
    must_quarantine: bool = False   # known bad by construction
    pristine: bool = False          # an unmodified real sample: must never be quarantined
    event: str = "message"          # or connected / disconnected
    serial: int = 0                 # index into SERIALS
    at: float = 0.0                 # seconds after BASE_TIME (may go backwards)

    def __repr__(self):  # failing examples stay readable: samples are 20 KB
        shown = self.payload if len(self.payload) <= 400 else self.payload[:200] + b"..." + self.payload[-150:]
        return (f"Msg({self.kind!r}, {self.event}, serial={self.serial}, at={self.at}, "
                f"len={len(self.payload)}, {shown!r})")

    def _repr_pretty_(self, printer, cycle):  # Hypothesis' pretty-printer
        printer.text(repr(self))


def _paths(value, prefix=()):
    """Every path (tuple of dict keys / list indexes) inside a JSON value, down to 40 levels."""
    out = [prefix]
    if len(prefix) >= 40:  # a deep value planted by an earlier mutation: no need to walk it all
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, prefix + (i,)))
    return out


weird_strings = st.sampled_from(["", "0", "-1", "1e400", "-1e400", "NaN", "inf", "9" * 400, " 12 ", "0x1F",
                                 "٣٤", "Ⅻ", "\u0000", "\ud800", "\udfff", "😀" * 50, "a\u202eb", "\\", '"',
                                 "FINISH", "RUNNING", "x" * 5000])
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30, 10**300, 1_500_000_001,
                     4_102_444_800, 10**12, 10**17]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40), weird_strings,
)
garbage = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=12)


def _deep(depth: int, kind: str):
    value: object = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


deep_values = st.builds(_deep, st.sampled_from([20, 60, 200, 400, 900]), st.sampled_from(["list", "dict"]))
mutant_values = st.one_of(garbage, garbage, garbage, deep_values,
                          st.builds(lambda v: {"id": v}, scalars),                      # empty-slot look-alikes
                          st.lists(st.fixed_dictionaries({"id": scalars}, optional={"tray": garbage}), max_size=3))


def _set(doc, path, value):
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _delete(doc, path):
    target = doc
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]


def _dumps(doc, ascii_only: bool) -> bytes:
    try:
        return json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", errors="surrogatepass")
    except (ValueError, RecursionError):  # an int json.dumps will not write: write it by hand
        return b'{"print": {"mc_percent": ' + b"7" * 5000 + b"}}"


@st.composite
def mutated_json(draw):
    """A real report with 1-6 of its values replaced, keys removed or added."""
    name = draw(st.sampled_from(sorted(SAMPLES)))
    doc = json.loads(SAMPLES[name])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["set", "set", "hot", "hot", "delete", "add"]))
        paths = _paths(doc)[1:]
        if op == "hot" and isinstance(doc.get("print"), dict):
            _set(doc, ("print", draw(st.sampled_from(HOT_FIELDS))), draw(mutant_values))
        elif op == "delete" and paths:
            path = draw(st.sampled_from(paths))
            try:
                _delete(doc, path)
            except (KeyError, IndexError, TypeError):
                pass
        elif op == "add":
            containers = [p for p in [()] + paths if isinstance(_get(doc, p), dict)]
            path = draw(st.sampled_from(containers))
            _get(doc, path)[draw(st.text(max_size=10))] = draw(mutant_values)
        elif paths:
            path = draw(st.sampled_from(paths))
            try:
                _set(doc, path, draw(mutant_values))
            except (KeyError, IndexError, TypeError):
                pass
    return Msg(_dumps(doc, draw(st.booleans())), "mutated-json")


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated_bytes(draw):
    """Byte-level damage to a raw sample file: flips, cuts, invalid UTF-8, splices, other encodings."""
    name = draw(st.sampled_from(sorted(SAMPLES)))
    raw = bytearray(SAMPLES[name])
    must_fail = False
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "flip", "truncate", "invalid-utf8", "insert", "delete", "splice",
                                   "utf16", "nul"]))
        n = len(raw)
        if n == 0:
            break
        pos = draw(st.integers(0, n - 1))
        if op == "flip":
            raw[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[pos:]
            must_fail = must_fail or b"}" not in raw[-2:]
        elif op == "invalid-utf8":
            # after the first bytes, so json's encoding sniffing still says UTF-8
            pos = max(pos, 4)
            raw[pos:pos] = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80",
                                                 b"\xf8\x88\x80\x80\x80"]))
            must_fail = True
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del raw[pos:pos + draw(st.integers(1, 64))]
        elif op == "splice":
            other = SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))]
            start = draw(st.integers(0, len(other) - 1))
            raw[pos:] = other[start:start + draw(st.integers(1, 2000))]
        elif op == "utf16":
            try:
                encoding = draw(st.sampled_from(["utf-16", "utf-32", "utf-16-be"]))
                raw = bytearray(bytes(raw).decode("utf-8").encode(encoding))
            except UnicodeDecodeError:
                pass
        elif op == "nul":
            raw[pos:pos] = b"\x00" * draw(st.integers(1, 8))
    return Msg(bytes(raw), "mutated-bytes", must_quarantine=must_fail and not _parses(bytes(raw)))


def _parses(payload: bytes) -> bool:
    try:
        parse_report(payload)
        return True
    except BadPayload:
        return False


_json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
                            lambda inner: st.lists(inner, max_size=4), max_leaves=8)
big = b"x" * (MAX_PAYLOAD_BYTES + 1)
raw_garbage = st.one_of(
    # non-object JSON, empty objects, 'print' that is not an object: always refused
    st.builds(lambda v: Msg(json.dumps(v).encode(), "non-object", must_quarantine=True), _json_values),
    st.sampled_from([b"", b"{}", b"null", b"[]", b'"print"', b"0", b"true", b'{"print": []}', b'{"print": "x"}',
                     b'{"print": 5}', b'{"print": null, "info": 1}', b"\xef\xbb\xbf[]"]).map(
        lambda p: Msg(p, "raw", must_quarantine=p not in (b'{"print": null, "info": 1}',))),
    # deeper than any parser or merge should follow, as a whole payload or inside 'print'
    st.builds(lambda d, k: Msg((k[0] * d + b"1" + k[1] * d), "deep", must_quarantine=True),
              st.sampled_from([100, 1000, 5000, 100_000]),
              st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")])),
    st.builds(lambda d: Msg(b'{"print": {"command": "push_status", "msg": 0, "gcode_state": "RUNNING", "ams": '
                            + b'{"a":' * d + b"1" + b"}" * d + b"}}", "deep-print"),
              st.sampled_from([50, 400, 990, 3000])),
    # numbers Python's json will not convert (over 4300 digits), and NaN/Infinity literals
    st.builds(lambda f, n: Msg(b'{"print": {"msg": 0, "gcode_state": "RUNNING", "' + f.encode() + b'": '
                               + b"9" * n + b"}}", "huge-int"),
              st.sampled_from(HOT_FIELDS), st.sampled_from([19, 40, 4301, 20_000])),
    st.builds(lambda f, lit: Msg(b'{"print": {"msg": 0, "gcode_state": "RUNNING", "' + f.encode() + b'": '
                                 + lit + b"}}", "nan-literal"), st.sampled_from(HOT_FIELDS),
              st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-0", b"1e-999"])),
    st.just(Msg(b'{"print": {"x": "' + big + b'"}}', "too-large", must_quarantine=True)),
    st.binary(max_size=64).map(lambda b: Msg(b, "random-bytes")),
)


samples = st.sampled_from(sorted(SAMPLES)).map(lambda n: Msg(SAMPLES[n], f"sample:{n}", pristine=True))


@st.composite
def lifecycle_step(draw):
    """One status report shaped like a real one (a full sample or a small delta) with the job fields
    the tracker reads set to plausible or odd values."""
    if draw(st.booleans()):
        doc = json.loads(SAMPLES[draw(st.sampled_from(FULL_SAMPLES))])
    else:
        doc = {"print": {"command": "push_status", "msg": draw(st.sampled_from([1, 1, 0])), "sequence_id": "1"}}
    report = doc["print"]
    if draw(st.integers(0, 9)) < 8:
        report["gcode_state"] = draw(st.sampled_from(GCODE_STATES))
    ids = st.sampled_from(["", "0", "-1", "702384465", "724977924", 137231652, "42"])
    for f in ("subtask_id", "task_id"):
        if draw(st.booleans()):
            report[f] = draw(ids)
    if draw(st.booleans()):
        report["subtask_name"] = draw(st.sampled_from(["", "Benchy", "Fidget Collection", "零件", "\u202e"]))
    if draw(st.booleans()):
        report["print_error"] = draw(st.sampled_from((0, 0, -1, 2**31, "", "12") + CANCEL_CODES))
    if draw(st.integers(0, 4)) == 0:
        report["gcode_start_time"] = draw(st.sampled_from([0, "", "1772366400", 1772366400, 10**12, 10**17,
                                                           2**63 - 1, -5, "abc", 1e300, "1e400"]))
    if draw(st.integers(0, 4)) == 0:
        for f in ("mc_percent", "layer_num", "total_layer_num", "mc_remaining_time", "mc_print_error_code"):
            report[f] = draw(st.sampled_from([0, 50, 100, -3, "77", 10**20, "1e30", 2.5, ""]))
    if draw(st.integers(0, 5)) == 0:
        report["ams"] = draw(st.sampled_from([None, {}, {"tray_now": "254"}, {"tray_now": "5", "ams": "x"},
                                              {"tray_now": "129", "ams": [{"id": "128", "tray": [7]}]},
                                              {"tray_now": "1", "ams": [{"id": "0", "tray": [{"id": "1"}]}]},
                                              {"ams": [{"id": "0", "tray": 5}, {"id": "1", "tray": None}]}]))
    if draw(st.integers(0, 7)) == 0:
        report["hms"] = draw(st.sampled_from([[], [{"code": 131073}], [1, "x", None], [{"code": "1e400"}]]))
    if draw(st.integers(0, 7)) == 0:
        report["vt_tray"] = draw(st.sampled_from([None, {}, {"id": "254", "tray_type": 5}]))
    if draw(st.integers(0, 9)) == 0:
        report["msg"] = draw(st.sampled_from([None, 0, 1, 2]))
    return Msg(_dumps(doc, draw(st.booleans())), "lifecycle")


connect_events = st.sampled_from(["connected", "disconnected"]).map(lambda e: Msg(b"", e, event=e))
single = st.one_of(samples, mutated_json(), mutated_bytes(), raw_garbage, lifecycle_step())
sequence = st.lists(st.one_of(lifecycle_step(), lifecycle_step(), samples, connect_events), min_size=2, max_size=12)


@st.composite
def batches(draw, max_groups=6):
    """A list of deliveries for two printers: single messages and lifecycle runs, mostly in time order."""
    out: list[Msg] = []
    clock = 0.0
    for group in draw(st.lists(st.one_of(single.map(lambda m: [m]), sequence), min_size=1, max_size=max_groups)):
        serial = draw(st.integers(0, len(SERIALS) - 1))
        for msg in group:
            clock += draw(st.sampled_from([0.5, 1, 30, 600, -60])) if draw(st.booleans()) else 1
            out.append(Msg(msg.payload, msg.kind, msg.must_quarantine, msg.pristine, msg.event, serial, clock))
    return out


# --- driving the logger --------------------------------------------------------------------------

class CrashWatch(logging.Handler):
    """Collects records of the logger's 'writer thread crashed' message (and every ERROR)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.crashes: list[logging.LogRecord] = []

    def emit(self, record):
        if record.levelno >= logging.ERROR or CRASH_MESSAGE in record.getMessage():
            self.crashes.append(record)


@pytest.fixture
def crash_watch():
    """Watches the logger's own log. Its per-message quarantine warnings (tens of thousands here)
    are held back: the crash message is logged at ERROR and still gets through."""
    handler = CrashWatch()
    log = logging.getLogger("ingestion")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.ERROR)
    yield handler
    log.setLevel(level)
    log.removeHandler(handler)


@pytest.fixture
def fast_dir(tmp_path):
    """Every example gets a fresh database: on tmpfs when there is one (creating a WAL database on
    disk costs ~45 ms of fsync, which would eat the time budget), else under tmp_path."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm, prefix="fuzz-logger-") as d:
            yield Path(d)
    else:
        yield tmp_path


def make_service(db: Path, **kw) -> LoggerService:
    printers = tuple(PrinterConfig(s, "127.0.0.1", "fuzz-code", name=f"fuzz-{i}") for i, s in enumerate(SERIALS))
    return LoggerService(LoggerSettings(printers=printers, db_path=db, **kw), connect=False)


def item_of(index: int, msg: Msg) -> tuple:
    # a distinct microsecond per delivery, so every quarantine row names exactly one message
    received = BASE_TIME + timedelta(seconds=msg.at, microseconds=index)
    return (SERIALS[msg.serial], msg.event, msg.payload, received)


def check_accounting(service: LoggerService, db: Path, msgs: list[Msg], items: list[tuple]) -> None:
    """processed == messages sent; each quarantined message has exactly one row with its payload;
    refused payloads are quarantined, pristine samples are not; heartbeat counters match."""
    sent = [(m, it) for m, it in zip(msgs, items) if m.event == "message"]
    assert service.processed == len(sent)
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT printer_serial, topic, received_at, reason, payload "
                            "FROM raw_mqtt_quarantine").fetchall()
        heartbeat = dict(((s, (m, q)) for s, m, q in
                          conn.execute("SELECT printer_serial, messages, quarantined FROM raw_logger_heartbeat")))
        jobs = conn.execute("SELECT printer_serial, status, ended_at FROM raw_printer_jobs").fetchall()
    finally:
        conn.close()
    counters = sum(rt.quarantined for rt in service.printers.values())
    assert len(rows) == counters
    by_time = {}
    for serial, topic, received_at, reason, payload in rows:
        assert received_at not in by_time, "one quarantine row per message"
        by_time[received_at] = (serial, topic, reason, payload)
    for msg, (serial, _, raw, received) in sent:
        key = received.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        row = by_time.get(key)
        try:
            parse_report(raw)
            refused = None
        except BadPayload as exc:
            refused = str(exc)
        if refused is not None or msg.must_quarantine:
            assert row is not None, f"refused payload not quarantined ({msg.kind}): {raw[:200]!r}"
        if msg.pristine:
            assert row is None, f"unmodified sample {msg.kind} quarantined: {row and row[2]}"
        if row is not None:
            assert row[0] == serial and row[1] == f"device/{serial}/report"
            assert row[3] == truncate_payload(raw), "the payload is kept (truncated) with the row"
            assert row[2] == refused if refused is not None else row[2].startswith("unusable report: ")
    for serial, rt in service.printers.items():
        if serial in heartbeat:
            assert heartbeat[serial] == (rt.messages, rt.quarantined)
    # job rows stay sane whatever came in: known statuses, ended_at set exactly on ended jobs
    for serial, status, ended_at in jobs:
        assert status in LIVE_STATUSES + ENDED_JOB_STATUSES
        assert (ended_at is not None) == (status in ENDED_JOB_STATUSES)
    for serial in SERIALS:
        assert sum(1 for s, st_, _ in jobs if s == serial and st_ in LIVE_STATUSES) <= 1, "one open job per printer"


def run_like_writer_thread(service: LoggerService, items: list[tuple], chunk: int) -> None:
    """What LoggerService._run does with each collected batch, called directly so that an exception
    surfaces here with the input that caused it (and Hypothesis can shrink it)."""
    for start in range(0, len(items), chunk):
        dirty, transitions, quarantine = {}, [], []
        for item in items[start:start + chunk]:
            service._handle(item, dirty, transitions, quarantine)
        heartbeats = service._heartbeats()
        if dirty or transitions or quarantine or heartbeats:
            service.store.write_batch(dirty.values(), transitions, quarantine, heartbeats,
                                      iso(datetime.now(timezone.utc)))


FUZZ_SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.data_too_large, HealthCheck.large_base_example,
                                            HealthCheck.filter_too_much])


def test_fuzzed_batches_are_merged_or_quarantined(fast_dir, crash_watch):
    """1,800 examples of 1-10 groups each, every example on a fresh logger (so a failure shrinks to
    a small reproducible input), processed exactly as the writer thread does."""
    fed = {"messages": 0, "examples": 0}

    @settings(max_examples=1800, **FUZZ_SETTINGS)
    @given(msgs=batches(max_groups=10), chunk=st.sampled_from([1, 3, 50]))
    def one_example(msgs, chunk):
        fed["examples"] += 1
        db = fast_dir / f"ex{fed['examples']}" / "print_history.db"
        service = make_service(db)
        items = [item_of(i, m) for i, m in enumerate(msgs)]
        try:
            run_like_writer_thread(service, items, chunk)
        finally:
            service.store.close()
        check_accounting(service, db, msgs, items)
        fed["messages"] += service.processed

    one_example()
    assert not crash_watch.crashes
    assert fed["messages"] >= 10_000, fed


def test_large_corpus_through_the_real_writer_thread(tmp_path, crash_watch):
    """The same generators, collected into one corpus of >= 10,000 deliveries, fed through
    deliver() to a running LoggerService: big batches (max_batch 2000) queued before start, then
    more while it runs. The thread must survive and account for every message."""
    corpus: list[Msg] = []

    @settings(max_examples=1800, phases=[Phase.generate], **FUZZ_SETTINGS)
    @given(msgs=batches(max_groups=10))
    def collect(msgs):
        corpus.extend(msgs)

    collect()
    corpus.extend(Msg(SAMPLES[n], f"sample:{n}", pristine=True, serial=i % 2, at=i) for i, n in enumerate(SAMPLES))
    items = [item_of(i, m) for i, m in enumerate(corpus)]
    sent = sum(1 for m in corpus if m.event == "message")
    assert sent >= 10_000, f"only {sent} payloads generated"

    db = tmp_path / "print_history.db"
    service = make_service(db, flush_interval=0.05, heartbeat_interval=0.5)
    half = len(items) // 2
    for item in items[:half]:
        service.deliver(*item)
    service.start()
    for item in items[half:]:
        service.deliver(*item)
        assert service.writer_alive or service.inbox.empty()
    service.stop()
    assert not service.writer_alive, "stop() returned with the writer still running"
    assert not crash_watch.crashes, crash_watch.crashes[0].getMessage()
    check_accounting(service, db, corpus, items)
    assert service.processed == sent
    quarantined = sum(rt.quarantined for rt in service.printers.values())
    assert 0 < quarantined < sent, "the corpus mixes good and bad payloads"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM raw_printer_jobs").fetchone()[0] > 0, "jobs were followed"
    finally:
        conn.close()


def test_unmodified_samples_merge_after_any_garbage(fast_dir, crash_watch):
    """State poisoning: whatever garbage a printer sent before, each real full report that follows
    is merged, not quarantined."""
    seen = {"n": 0}

    @settings(max_examples=300, **FUZZ_SETTINGS)
    @given(before=st.lists(st.one_of(mutated_json(), lifecycle_step(), raw_garbage), min_size=1, max_size=8),
           name=st.sampled_from(FULL_SAMPLES))
    def one_example(before, name):
        seen["n"] += 1
        db = fast_dir / f"p{seen['n']}" / "print_history.db"
        service = make_service(db)
        msgs = [*before, Msg(SAMPLES[name], f"sample:{name}", pristine=True, at=len(before) + 1)]
        items = [item_of(i, Msg(m.payload, m.kind, m.must_quarantine, m.pristine, at=i)) for i, m in enumerate(msgs)]
        try:
            run_like_writer_thread(service, items, 50)
        finally:
            service.store.close()
        check_accounting(service, db, msgs, items)

    one_example()
    assert not crash_watch.crashes


# --- the inputs the fuzzing found, kept as plain regression cases --------------------------------

def _full(**fields) -> bytes:
    """A real full report (sample 09, RUNNING cloud job) with some fields replaced, as raw JSON text."""
    report = json.loads(SAMPLES["09_x1_running_pushall_cloud.json"])["print"]
    report.update(fields)
    return json.dumps({"print": report}).encode()


def _with_raw(field: str, raw_value: bytes) -> bytes:
    return _full()[:-2] + b', "' + field.encode() + b'": ' + raw_value + b"}}"


# Each of these killed the writer thread (so the logger process) before the fixes in
# ingestion/protocol.py and ingestion/job.py, except the last, which quarantined usable full
# reports (and, when it hit mid-transition, left two open jobs); (payloads, how many to quarantine).
KNOWN_CRASHERS = {
    "int over 4300 digits (json ValueError)": ([_with_raw("mc_percent", b"9" * 5000)], 1),
    "nesting past the recursion limit (json RecursionError)": (
        [b'{"print": {"ams": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}}"], 1),
    "parseable but deep nesting (deepcopy RecursionError in merge)": (
        [_with_raw("device", b'{"a":' * 900 + b"1" + b"}" * 900)], 1),
    "ams null, then an ams object (merge TypeError)": (
        [_full(ams=None), _full(ams={"tray_now": "1", "ams": []})], 0),
    "progress beyond SQLite INTEGER (write_batch OverflowError)": ([_full(mc_percent=10**30)], 0),
    "Infinity / 1e400 as a number (as_int OverflowError)": (
        [_with_raw("mc_percent", b"Infinity"), _full(layer_num="1e400")], 0),
    "start time beyond time_t (fromtimestamp OSError)": (
        [_full(gcode_start_time=2**63 - 1, subtask_id="1"), _full(gcode_start_time=10**12, subtask_id="2")], 0),
    "unpaired surrogate in a cloud job's name (SQLite UnicodeEncodeError)": (
        [_full(subtask_id="77", subtask_name="a\ud800")], 1),
    "a unit's tray list sent as a number, then as a list (merge TypeError)": (
        [_full(ams={"ams": [{"id": "0", "tray": 5}]}), _full(ams={"ams": [{"id": "0", "tray": [{"id": "1"}]}]})], 0),
    "tray list of numbers and a superscript tray_now": (
        [_full(ams={"tray_now": "129", "ams": [{"id": "128", "tray": [7, None]}]}),
         _full(ams={"tray_now": "²"})], 0),
}


@pytest.mark.parametrize("name", sorted(KNOWN_CRASHERS))
def test_known_crashers_through_the_writer_thread(name, tmp_path, crash_watch):
    payloads, quarantined = KNOWN_CRASHERS[name]
    msgs = [Msg(p, name, at=i) for i, p in enumerate(payloads)]
    # the other printer's finished job, in the same batch: recorded only if the thread lives on
    msgs.append(Msg(SAMPLES["01_x1c_finish_pushall_cloud.json"], "sample:01", pristine=True, serial=1, at=len(msgs)))
    items = [item_of(i, m) for i, m in enumerate(msgs)]
    db = tmp_path / "print_history.db"
    service = make_service(db, flush_interval=0.01)
    for item in items:
        service.deliver(*item)
    service.start()
    service.stop()
    assert not crash_watch.crashes, crash_watch.crashes[0].getMessage()
    check_accounting(service, db, msgs, items)
    assert sum(rt.quarantined for rt in service.printers.values()) == quarantined
    conn = sqlite3.connect(db)
    try:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM raw_mqtt_quarantine")]
        finished = conn.execute("SELECT COUNT(*) FROM raw_printer_jobs WHERE status = 'completed' "
                                "AND printer_serial = ?", (SERIALS[1],)).fetchone()[0]
    finally:
        conn.close()
    assert all(r and "Error" not in r.split(":")[0] for r in reasons), reasons  # a reason, not a traceback name
    assert finished == 1, "the logger went on and recorded the finished job that followed"


def test_a_report_that_breaks_the_model_half_way_changes_nothing(tmp_path, monkeypatch):
    """JobTracker.observe is all or nothing: when a report fails after the tracker has already ended
    the open job and started the next one (here: the filament lookup raises), the message is
    quarantined and the open job stays open, so the database never holds two open jobs of one
    printer nor an ended job without its row. The next good report then does both, recorded."""
    import ingestion.job as job_module
    db = tmp_path / "print_history.db"
    service = make_service(db)
    serial = SERIALS[0]
    msgs = [Msg(_full(gcode_state="PREPARE", subtask_id="1001", task_id="1000"), "prepare", at=1),
            Msg(_full(gcode_state="RUNNING", subtask_id="2002", task_id="2000"), "new job, breaks", at=2),
            Msg(_full(gcode_state="RUNNING", subtask_id="2002", task_id="2000"), "new job again", at=3)]
    items = [item_of(i, m) for i, m in enumerate(msgs)]
    real_active_tray = job_module.active_tray
    broke = []

    def breaks_once_on_the_new_job(state):
        if state.get("subtask_id") == "2002" and not broke:  # _absorb of the job message 2 started
            broke.append(state["subtask_id"])
            raise TypeError("synthetic fault after the tracker moved on")
        return real_active_tray(state)

    monkeypatch.setattr(job_module, "active_tray", breaks_once_on_the_new_job)
    run_like_writer_thread(service, items[:2], 10)
    tracker = service.printers[serial].tracker
    assert service.printers[serial].quarantined == 1
    assert tracker.job.job_key == "1001" and tracker.job.status == "preparing" and tracker.job.ended_at is None
    run_like_writer_thread(service, items[2:], 10)
    service.store.close()
    check_accounting(service, db, msgs, items)
    conn = sqlite3.connect(db)
    try:
        jobs = conn.execute("SELECT job_key, status FROM raw_printer_jobs ORDER BY id").fetchall()
        moves = conn.execute("SELECT job_key, from_status, to_status FROM raw_job_transitions ORDER BY id").fetchall()
    finally:
        conn.close()
    assert jobs == [("1001", "aborted"), ("2002", "running")]
    assert moves == [("1001", None, "preparing"), ("1001", "preparing", "aborted"), ("2002", None, "running")]
