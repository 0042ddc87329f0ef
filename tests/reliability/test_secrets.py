"""Secrets never leave the process (issue #9, DESIGN.md "Secrets never appear in logs or Dagster
metadata"): the InvenTree token, the Bambuddy API key, SERVICE_API_TOKEN, WEBHOOK_SHARED_SECRET
and the printers' access codes are given distinctive values, then everything the pipeline lets
out is captured and searched for them (whole, and by their last 12 characters, so a truncated
echo counts too):
- Python logs of every logger at DEBUG (caplog, tracebacks included), stdout/stderr of the
  process and its subprocesses (capfd: dagster's console logger, dbt),
- every Dagster event record of the run (messages, metadata, errors) and the run record itself,
- every file the run writes (DATA_DIR: raw layer, warehouse, ledger, WAL files; dbt artifacts),
- exception messages of the clients and the settings, reprs of settings objects,
- every answer of the sync API, error answers included.

Stand-ins: tests/fakes/inventree/ (contract: tests/contracts/inventree/CONTRACT.md, token
auth "Authorization: Token <t>", 401 {"detail": "Invalid token."}) and tests/fakes/bambuddy.py
(contract: tests/contracts/bambuddy/CONTRACT.md "Auth": X-API-Key, 401/403 details, camera
stream tokens for thumbnails). The webhook header Bambuddy sends ("Authorization: Bearer <secret>")
is from tests/contracts/bambuddy/CONTRACT.md "Outgoing webhook". The MQTT part uses a real
broker (ingestion/devbroker.py) whose password plays the printer's access code, as on a printer
(tests/contracts/mqtt/PROTOCOL.md section 1).
"""

from __future__ import annotations

import importlib
import logging
import re
import socket
import sqlite3
import time
import traceback
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from dagster import DagsterInstance

from ingestion.config import ConfigError, LoggerSettings, PrinterConfig
from ingestion.devbroker import DevBroker
from ingestion.logger import LoggerService
from ingestion.scenarios import Job, completed
from ingestion.simulator import BrokerAddress, Simulator
from orchestration.api.app import create_app
from orchestration.api.dagster_status import DagsterStatus
from orchestration.api.settings import ApiSettings
from orchestration.bambuddy.client import BambuddyClient, BambuddyError
from orchestration.dbt.project import TRANSFORMATION_DIR
from orchestration.inventree.client import InvenTreeClient, InvenTreeError
from orchestration.ledger import Ledger
from orchestration.settings import SettingsError, SyncSettings

from tests.api.conftest import Served, daemon_alive
from tests.fakes.http import Response
from tests.fakes.inventree import FakeInvenTree, seed_demo
from tests.orchestration.conftest import add_mqtt_job, run_sync

INVENTREE_TOKEN = "SECRET-inv-token-9f3a2c71e4b8d605"
BAMBUDDY_API_KEY = "bb_SECRET-bambuddy-key-4e7d1a9c3f60"
SERVICE_API_TOKEN = "SECRET-service-token-7c2e5b18d9a4"
WEBHOOK_SHARED_SECRET = "SECRET-webhook-secret-3b8f0e6a2d71"
ACCESS_CODE = "SECRET-access-code-51a7c3e9"
SECRETS = {"INVENTREE_TOKEN": INVENTREE_TOKEN, "BAMBUDDY_API_KEY": BAMBUDDY_API_KEY,
           "SERVICE_API_TOKEN": SERVICE_API_TOKEN, "WEBHOOK_SHARED_SECRET": WEBHOOK_SHARED_SECRET,
           "access code": ACCESS_CODE}
# wrong values a user might have configured: they are secrets too (often a real key of elsewhere)
WRONG_TOKEN = "SECRET-wrong-inv-token-0d94be17a3c2"
WRONG_KEY = "bb_SECRET-wrong-bambuddy-key-6a1f08c3b5e7"
WRONG_ACCESS = "SECRET-wrong-access-code-2f6c8d1e"
ALL_SECRETS = {**SECRETS, "wrong INVENTREE_TOKEN": WRONG_TOKEN, "wrong BAMBUDDY_API_KEY": WRONG_KEY,
               "wrong access code": WRONG_ACCESS}


# --- searching -----------------------------------------------------------------------------------

def leaks(sources: dict[str, str | bytes], secrets: dict[str, str] = ALL_SECRETS) -> list[str]:
    """Where each secret (or its distinctive last 12 characters) shows up, with some context."""
    found = []
    for where, blob in sources.items():
        text = blob.decode("utf-8", "replace") if isinstance(blob, (bytes, bytearray)) else str(blob)
        for name, value in secrets.items():
            for needle in (value, value[-12:]):
                at = text.find(needle)
                if at >= 0:
                    found.append(f"{name} in {where}: ...{text[max(0, at - 80):at + len(needle) + 20]!r}")
                    break
    return found


def assert_no_leak(sources: dict[str, str | bytes], secrets: dict[str, str] = ALL_SECRETS) -> None:
    assert sources, "nothing was captured"
    found = leaks(sources, secrets)
    assert not found, "secret leaked:\n" + "\n".join(found)


def log_text(caplog) -> str:
    """Every captured record, formatted with its traceback (caplog.text holds the same lines)."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return caplog.text + "\n".join(formatter.format(r) for r in caplog.records)


def files_under(root: Path, since: float = 0.0) -> dict[str, bytes]:
    found = {}
    for path in sorted(root.rglob("*")):
        try:
            if path.is_file() and path.stat().st_mtime >= since:
                found[str(path)] = path.read_bytes()
        except FileNotFoundError:  # a temporary file gone meanwhile
            pass
    return found


def dagster_records(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    from dagster._serdes import serialize_value
    out = {f"dagster event {i} ({e.dagster_event.event_type_value if e.dagster_event else 'log'})":
           serialize_value(e) + repr(e) for i, e in enumerate(instance.all_logs(run_id))}
    out["dagster run record"] = serialize_value(instance.get_run_by_id(run_id))
    return out


def test_the_search_finds_a_leak():
    """The helper itself: a secret, or the tail of one cut short, is found."""
    assert leaks({"log": f"header Token {INVENTREE_TOKEN}"}) == [
        f"INVENTREE_TOKEN in log: ...'header Token {INVENTREE_TOKEN}'"]
    assert leaks({"db": ("x" + BAMBUDDY_API_KEY[-14:]).encode()})
    assert not leaks({"log": "Token ***"})


# --- fixtures: the stand-ins know our distinctive secrets ----------------------------------------

@pytest.fixture
def inventree():
    """Overrides tests/conftest.py's stand-in: the same demo data, our token."""
    with FakeInvenTree(token=INVENTREE_TOKEN) as fake:
        fake.ids = seed_demo(fake)
        yield fake


@pytest.fixture
def secret_env(env, bambuddy, monkeypatch, caplog):
    """A complete pipeline environment: both stand-ins with auth on, every secret set."""
    bambuddy.enable_auth()
    bambuddy.api_keys[BAMBUDDY_API_KEY] = {"can_read_status": True, "can_manage_archives": True}
    for name, value in (("BAMBUDDY_BASE_URL", bambuddy.base_url), ("BAMBUDDY_API_KEY", BAMBUDDY_API_KEY),
                        ("SERVICE_API_TOKEN", SERVICE_API_TOKEN), ("WEBHOOK_SHARED_SECRET", WEBHOOK_SHARED_SECRET),
                        ("HTTP_RETRY_BACKOFF_SECONDS", "0.01"), ("HTTP_TIMEOUT_SECONDS", "5")):
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)  # every logger, the client libraries' request dumps included
    return env


def finished_archive(bambuddy, name: str) -> dict:
    archive = bambuddy.add_archive(printer_id=1, print_name=name, filament_used_grams=9.5, print_time_seconds=1800,
                                   content_hash=f"hash-{name.lower()}")
    bambuddy.add_run(archive["id"], status="completed")
    return archive


# --- a full sync ---------------------------------------------------------------------------------

def test_full_sync_lets_no_secret_out(secret_env, bambuddy, inventree, caplog, capfd):
    """collector -> dbt -> InvenTree (parts, stock, parameters, thumbnails fetched with a stream
    token) -> Bambuddy links, all authenticated with the secrets; nothing it logs, records or
    writes contains one."""
    started = time.time() - 1
    benchy, vase = finished_archive(bambuddy, "Benchy"), finished_archive(bambuddy, "Vase")
    add_mqtt_job(secret_env, "881", "Benchy")  # MQTT enrichment path too
    instance = DagsterInstance.ephemeral()
    result = run_sync(instance=instance)
    assert result.success

    # the secrets really were used, on every path
    assert len(inventree.stock_items) == 2 and all(p["image"] for p in inventree.parts.values())
    assert all(bambuddy.archives[a["id"]]["external_url"] for a in (benchy, vase))
    assert bambuddy.count("POST", "/api/v1/printers/camera/stream-token") >= 1
    # (auth is on in both stand-ins: a created stock item and a written link mean the secrets were accepted)
    assert inventree.count("POST", "/api/stock/") == 2 and bambuddy.count("PATCH", "/api/v1/archives/") >= 2
    # the InvenTree library dumps its request headers at DEBUG: that line was captured, scrubbed
    library_lines = [r.getMessage() for r in caplog.records if r.name == "inventree"]
    assert any("'Token ***'" in line for line in library_lines), "the header dump was not seen"

    out = capfd.readouterr()
    records = dagster_records(instance, result.run_id)
    assert any("ASSET_MATERIALIZATION" in name for name in records) and any("STEP_SUCCESS" in name for name in records)
    dbt_files = {**files_under(TRANSFORMATION_DIR / "target", since=started),
                 **files_under(TRANSFORMATION_DIR / "logs", since=started)}
    assert any(name.endswith("run_results.json") for name in dbt_files), "the dbt artifacts were searched"
    assert_no_leak({"logs": log_text(caplog), "stdout": out.out, "stderr": out.err, **records,
                    **files_under(secret_env), **dbt_files})


# --- error paths ---------------------------------------------------------------------------------

def test_wrong_inventree_token_run_names_the_setting_not_the_value(secret_env, bambuddy, inventree, monkeypatch,
                                                                   caplog, capfd):
    finished_archive(bambuddy, "Benchy")
    monkeypatch.setenv("INVENTREE_TOKEN", WRONG_TOKEN)
    error = failed_run_error(secret_env, caplog, capfd)
    assert "INVENTREE_TOKEN" in error and "401" in error
    assert inventree.count("GET", "/api/user/me/") >= 1 and inventree.count("POST") == 0


def test_wrong_bambuddy_key_run_names_the_setting_not_the_value(secret_env, bambuddy, monkeypatch, caplog, capfd):
    finished_archive(bambuddy, "Benchy")
    monkeypatch.setenv("BAMBUDDY_API_KEY", WRONG_KEY)
    error = failed_run_error(secret_env, caplog, capfd)
    assert "BAMBUDDY_API_KEY" in error and "401" in error
    assert bambuddy.count("GET", "/api/v1/") >= 1


def failed_run_error(data_dir, caplog, capfd) -> str:
    """Runs a sync that must fail; searches everything it left for secrets; returns the step error."""
    instance = DagsterInstance.ephemeral()
    result = run_sync(instance=instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    out = capfd.readouterr()
    assert_no_leak({"logs": log_text(caplog), "stdout": out.out, "stderr": out.err,
                    **dagster_records(instance, result.run_id), **files_under(data_dir)})
    return str(failure.event_specific_data.error)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return: nothing listens there


def test_client_errors_never_carry_the_secret(inventree, bambuddy, caplog):
    """Wrong token / wrong key (401), unreachable servers, and servers that echo the credential
    back in an error body (proxies and debug pages do): the exception says which setting to fix,
    and neither it nor any log line holds the secret."""
    caplog.set_level(logging.DEBUG)
    bambuddy.enable_auth()
    bambuddy.api_keys[BAMBUDDY_API_KEY] = {"can_read_status": True, "can_manage_archives": False}
    dead = f"http://127.0.0.1:{closed_port()}"
    messages: dict[str, str] = {}

    def failure(name: str, call, expected: type[Exception], names: str) -> None:
        with pytest.raises(expected) as caught:
            call()
        # what a log line or a traceback shows (the library's own exception, which holds the request
        # headers, is kept out of both by `raise ... from None`)
        text = f"{caught.value!s} {caught.value!r} " + "".join(traceback.format_exception(caught.value))
        assert names in str(caught.value), (name, str(caught.value))
        messages[name] = text

    failure("inventree 401", InvenTreeClient(inventree.base_url, WRONG_TOKEN, retries=0).check,
            InvenTreeError, "INVENTREE_TOKEN")
    failure("inventree unreachable", InvenTreeClient(dead, INVENTREE_TOKEN, retries=1, backoff=0.01).check,
            InvenTreeError, "INVENTREE_BASE_URL")
    failure("bambuddy 401", lambda: BambuddyClient(bambuddy.base_url, WRONG_KEY, retries=0).list_archives(5),
            BambuddyError, "BAMBUDDY_API_KEY")
    bambuddy.add_archive(printer_id=1, print_name="Benchy")  # check(write=True) PATCHes an archive: 403
    failure("bambuddy 403", lambda: BambuddyClient(bambuddy.base_url, BAMBUDDY_API_KEY, retries=0).check(write=True),
            BambuddyError, "BAMBUDDY_API_KEY")
    failure("bambuddy unreachable", lambda: BambuddyClient(dead, BAMBUDDY_API_KEY, retries=1, backoff=0.01)
            .list_archives(5), BambuddyError, "BAMBUDDY_BASE_URL")

    # servers that echo the credential they were sent in their error body
    def echo(status: int, header: str):
        return lambda request, *groups: Response(status, {"detail": f"you sent {request.headers.get(header)}"})

    inventree._routes.insert(0, ("GET", re.compile(r"/api/part/category/(\d+)/\Z"), echo(403, "authorization")))
    client = InvenTreeClient(inventree.base_url, INVENTREE_TOKEN, retries=0)
    failure("inventree echoes the token", lambda: client.category_exists(1), InvenTreeError, "INVENTREE_TOKEN")
    for status in (403, 422, 500):
        bambuddy._routes.insert(0, ("GET", re.compile(r"/api/v1/printers/\Z"), echo(status, "x-api-key")))
        failure(f"bambuddy echoes the key ({status})",
                BambuddyClient(bambuddy.base_url, BAMBUDDY_API_KEY, retries=0).list_printers, BambuddyError,
                "Bambuddy")
    assert_no_leak({**messages, "logs": log_text(caplog)})


def test_settings_errors_and_reprs_hide_the_secrets(tmp_path):
    env = {name: value for name, value in SECRETS.items() if name.isupper()}
    env["INVENTREE_BASE_URL"] = "http://inventree:8000"
    for bad in ({"INVENTREE_STOCK_STATUS": "999"}, {"HTTP_TIMEOUT_SECONDS": "0"},
                {"BAMBUDDY_BASE_URL": "bambuddy.local"}, {"PART_KEY_FIELDS": "colour"},
                {"SYNC_SUCCESS_ONLY": "maybe"}, {"SYNC_API_PORT": "70000"}):
        with pytest.raises(SettingsError) as caught:
            ApiSettings.from_env({**env, **bad})
        assert next(iter(bad)) in str(caught.value)
        assert_no_leak({f"error for {bad}": f"{caught.value!s} {caught.value!r}"})
    settings = ApiSettings.from_env(env)
    assert settings.sync.inventree_token == INVENTREE_TOKEN  # the value is there, only never shown
    shown = {"repr(ApiSettings)": repr(settings), "str(SyncSettings)": str(settings.sync),
             "SyncSettings.redacted()": str(settings.sync.redacted())}
    assert settings.sync.redacted()["WEBHOOK_SHARED_SECRET"] == "***"

    printer = PrinterConfig("01S00A000000001", "192.168.1.20", ACCESS_CODE, name="X1C bay 1")
    logger_settings = LoggerSettings(printers=(printer,), db_path=tmp_path / "print_history.db")
    shown |= {"repr(PrinterConfig)": repr(printer), "str(LoggerSettings)": str(logger_settings)}
    loaded = LoggerSettings.from_mapping({"printer_ip": "10.0.0.5", "serial_number": "01P00A000000002",
                                          "access_code": ACCESS_CODE}, {})
    shown["repr(loaded LoggerSettings)"] = repr(loaded)
    assert loaded.printers[0].access_code == ACCESS_CODE
    for bad in ({"port": 70000}, {"ca_file": "/nope/ca.pem"}, {"host": ""}):
        with pytest.raises(ConfigError) as caught:
            LoggerSettings.from_mapping({"printers": [{"host": "h", "serial": "s", "access_code": ACCESS_CODE,
                                                       **bad}]}, {})
        shown[f"ConfigError {bad}"] = f"{caught.value!s} {caught.value!r}"
    with pytest.raises(ConfigError) as caught:
        LoggerSettings.from_mapping({}, {"PRINTER_IP": "h", "PRINTER_SERIAL": "s", "PRINTER_ACCESS_CODE": ACCESS_CODE,
                                         "PRINTER_PORT": "port"})
    shown["ConfigError from env"] = str(caught.value)
    assert_no_leak(shown)


# --- the sync API ----------------------------------------------------------------------------------

@pytest.fixture
def api(secret_env, monkeypatch, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    def start(**overrides):
        settings = ApiSettings.from_env()
        settings = replace(settings, wait_seconds=0.3, **overrides)
        return Served(create_app(settings, DagsterStatus()))
    return start


def test_no_api_answer_contains_a_secret(api, secret_env, bambuddy, inventree, tmp_path):
    """Every endpoint, each way it can answer: 200/202, 400, 401, 404, 413, 422 and 503, /validate
    with good, wrong and unreachable credentials, and /sync/status after a failure whose error text
    held the token (the ledger keeps what a failing step wrote; the API must not hand it out)."""
    archive = finished_archive(bambuddy, "Benchy")
    Ledger(secret_env / "sync.sqlite3").upsert(
        "bambuddy:999:1", state="retrying", archive_id=999, run_no=1, batch="bambuddy-999", ipn="BMB-x",
        last_error=f"HTTPError: 403 for headers {{'AUTHORIZATION': 'Token {INVENTREE_TOKEN}', "
                   f"'X-API-Key': '{BAMBUDDY_API_KEY}'}}", reason=f"leaked {INVENTREE_TOKEN}")
    svc, hook = {"X-Service-Token": SERVICE_API_TOKEN}, {"X-Sync-Secret": WEBHOOK_SHARED_SECRET}
    answers: dict[str, requests.Response] = {}
    with api() as served:
        def call(name, method, path, expected, **kwargs):
            response = requests.request(method, served.url + path, timeout=30, **kwargs)
            assert response.status_code == expected, (name, response.status_code, response.text)
            answers[name] = response

        call("health", "GET", "/health", 200)
        call("validate", "GET", "/validate", 200, headers=svc)
        call("validate without token", "GET", "/validate", 401)
        call("status", "GET", "/sync/status", 200, headers=svc)
        call("status, wrong token", "GET", "/sync/status", 401, headers={"X-Service-Token": WRONG_TOKEN})
        call("archive, daemon down", "POST", f"/sync/archive/{archive['id']}", 503, headers=svc)
        call("archive missing", "POST", "/sync/archive/424242", 404, headers=svc)
        call("archive not a number", "POST", "/sync/archive/abc", 422, headers=svc)
        call("backfill, daemon down", "POST", "/sync/backfill", 503, headers=svc)
        call("backfill bad max", "POST", "/sync/backfill?max_archives=-1", 422, headers=svc)
        call("backfill too large", "POST", "/sync/backfill", 413, headers=svc, data=b"x" * (64 * 1024 + 1))
        call("webhook ignored", "POST", "/webhooks/bambuddy", 202, headers=hook, json={"event": "test"})
        call("webhook, daemon down", "POST", "/webhooks/bambuddy", 503, headers=hook, json={"event": "print_complete"})
        call("webhook not json", "POST", "/webhooks/bambuddy", 400, headers=hook, data=b"{nope")
        call("webhook no secret", "POST", "/webhooks/bambuddy", 401, json={"event": "print_complete"})
        call("webhook wrong bearer", "POST", "/webhooks/bambuddy", 401, json={"event": "print_complete"},
             headers={"Authorization": f"Bearer {WRONG_KEY}"})
        call("webhook too large", "POST", "/webhooks/bambuddy", 413, headers=hook, data=b"x" * (64 * 1024 + 1))
        daemon_alive(DagsterInstance.get())
        call("archive, queued", "POST", f"/sync/archive/{archive['id']}", 202, headers=svc)
        call("backfill, queued", "POST", "/sync/backfill", 202, headers=svc)
        call("webhook, queued", "POST", "/webhooks/bambuddy", 202, headers={"Authorization":
             f"Bearer {WEBHOOK_SHARED_SECRET}"}, json={"event": "print_complete"})
    status = answers["status"].json()
    assert status["last_errors"] and "***" in status["last_errors"][0]["error"], "the stored secret was masked"

    sync = SyncSettings.from_env()
    dead = f"http://127.0.0.1:{closed_port()}"
    read_only = "bb_SECRET-read-only-key-8c1d4e7a2b90"
    bambuddy.api_keys[read_only] = {"can_read_status": True, "can_manage_archives": False}
    for name, changes in (("wrong credentials", {"inventree_token": WRONG_TOKEN, "bambuddy_api_key": WRONG_KEY}),
                          ("key may not write (403)", {"bambuddy_api_key": read_only}),
                          ("unreachable", {"inventree_base_url": dead, "bambuddy_base_url": dead})):
        with api(sync=replace(sync, http_retries=0, **changes)) as served:
            response = requests.get(served.url + "/validate", headers=svc, timeout=30)
        assert response.status_code == 503 and not response.json()["ok"], (name, response.text)
        answers[f"validate, {name}"] = response
    assert_no_leak({name: f"{r.status_code} {dict(r.headers)} {r.text}" for name, r in answers.items()},
                   {**ALL_SECRETS, "read-only key": read_only})


def test_token_checks_go_through_compare_digest(api, monkeypatch):
    """Both secrets are compared with hmac.compare_digest on the supplied and the expected value
    (so the time taken does not tell how much of a guess was right): a spy sees every call, and a
    spy that says "equal" lets a wrong token in, so the decision is really compare_digest's.
    Wrong tokens of the same and of a different length are both refused."""
    app_module = importlib.import_module("orchestration.api.app")
    real = app_module.hmac.compare_digest
    calls: list[tuple[bytes, bytes]] = []
    verdict: list[bool] = []

    def spy(a, b):
        calls.append((bytes(a) if isinstance(a, (bytes, bytearray)) else a.encode(),
                      bytes(b) if isinstance(b, (bytes, bytearray)) else b.encode()))
        return verdict[0] if verdict else real(a, b)

    monkeypatch.setattr(app_module.hmac, "compare_digest", spy)
    same_length_svc = "X" * len(SERVICE_API_TOKEN)
    same_length_hook = "Y" * len(WEBHOOK_SHARED_SECRET)
    with api() as served:
        def status(token: str) -> int:
            return requests.get(served.url + "/sync/status", headers={"X-Service-Token": token}, timeout=30).status_code

        def hook(headers: dict) -> int:
            return requests.post(served.url + "/webhooks/bambuddy", json={"event": "test"}, headers=headers,
                                 timeout=30).status_code

        assert status(SERVICE_API_TOKEN) == 200
        assert status(same_length_svc) == 401
        assert status("short") == 401
        assert hook({"X-Sync-Secret": WEBHOOK_SHARED_SECRET}) == 202
        assert hook({"X-Sync-Secret": same_length_hook}) == 401
        assert hook({"Authorization": "Bearer short"}) == 401
        assert hook({"Authorization": f"Bearer {WEBHOOK_SHARED_SECRET}"}) == 202
        verdict.append(True)
        assert status("short") == 200, "compare_digest decides: the spy said equal"
        assert hook({"X-Sync-Secret": "short"}) == 202
    svc, whs = SERVICE_API_TOKEN.encode(), WEBHOOK_SHARED_SECRET.encode()
    for supplied in (svc, same_length_svc.encode(), b"short"):
        assert (svc, supplied) in calls, f"SERVICE_API_TOKEN not compared with {supplied!r}"
    for supplied in (whs, same_length_hook.encode(), b"short"):
        assert (whs, supplied) in calls, f"WEBHOOK_SHARED_SECRET not compared with {supplied!r}"


def raw_post(url: str, path: str, headers: dict[str, str], body_parts: list[bytes], timeout: float = 5.0) -> int:
    """Send the head and some body parts (never all of a declared body), then read the status."""
    parts = urlsplit(url)
    head = f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n")
        for part in body_parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)  # socket.timeout here: the server waited for the whole body
            if not chunk:
                break
            data += chunk
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    assert match, data[:200]
    return int(match.group(1))


def test_oversized_bodies_are_refused_before_they_are_read(api):
    """413 as soon as the declared or the streamed size passes 64 KiB: the client here never
    sends the rest (a 100 MB declaration with 1 KiB sent, or chunks with no end), so a server that
    read the whole body would time out. A body without the secret is refused with 401 unread.
    The server answers normally afterwards."""
    svc = {"X-Service-Token": SERVICE_API_TOKEN}
    hook = {"X-Sync-Secret": WEBHOOK_SHARED_SECRET}
    declared = {"Content-Type": "application/json", "Content-Length": str(100 * 1024 * 1024)}
    chunked = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    chunk = b"4000\r\n" + b" " * 0x4000 + b"\r\n"  # 16 KiB, never the terminating 0-chunk
    with api() as served:
        for path, auth in (("/webhooks/bambuddy", hook), ("/sync/backfill", svc)):
            started = time.monotonic()
            assert raw_post(served.url, path, {**auth, **declared}, [b"{" + b" " * 1023]) == 413
            assert raw_post(served.url, path, {**auth, **chunked}, [chunk] * 5) == 413
            assert raw_post(served.url, path, declared, [b" " * 1024]) == 401
            assert time.monotonic() - started < 4, "answered without waiting for the body"
        assert requests.get(served.url + "/health", timeout=10).status_code == 200
        assert requests.post(served.url + "/webhooks/bambuddy", json={"event": "test"}, headers=hook,
                             timeout=10).status_code == 202


# --- the MQTT logger ------------------------------------------------------------------------------

def test_logger_never_writes_the_access_code(tmp_path, caplog, capfd):
    """A real TLS broker whose password is the access code (as on a printer), a simulated P1S
    printing a job, and a second configured printer whose access code is wrong (refused by the
    broker): the logger's log lines, its database and its heartbeat file hold neither code."""
    caplog.set_level(logging.DEBUG)
    with DevBroker(password=ACCESS_CODE) as broker:
        sim = Simulator(BrokerAddress(broker.host, broker.port, broker.username, broker.password, str(broker.ca_file)))
        try:
            printer = sim.add("01P00SECRET0001", "P1S")
            printer.wait_connected()
            printers = (PrinterConfig(printer.serial, broker.host, ACCESS_CODE, name="P1S bay 1", port=broker.port,
                                      ca_file=str(broker.ca_file)),
                        PrinterConfig("01P00SECRET0002", broker.host, WRONG_ACCESS, name="P1S bay 2",
                                      port=broker.port, ca_file=str(broker.ca_file)))
            db = tmp_path / "print_history.db"
            service = LoggerService(LoggerSettings(printers=printers, db_path=db, heartbeat_interval=0.3))
            service.start()
            try:
                deadline = time.monotonic() + 20
                while printer.pushalls_answered < 1 or not any("connection refused" in r.getMessage()
                                                               for r in caplog.records):
                    assert time.monotonic() < deadline, "no pushall answered / no refusal logged"
                    time.sleep(0.05)
                for step in completed(Job("Gear", duration_s=600, cloud=True, ticks=2)):
                    printer.send(step)
                    time.sleep(0.02)
                while not sqlite3.connect(db).execute(
                        "SELECT COUNT(*) FROM raw_printer_jobs WHERE status = 'completed'").fetchone()[0]:
                    assert time.monotonic() < deadline + 10, "the job never ended"
                    time.sleep(0.05)
            finally:
                service.stop()
        finally:
            sim.close()
    assert service.printers[printer.serial].messages > 0
    out = capfd.readouterr()
    assert_no_leak({"logs": log_text(caplog), "stdout": out.out, "stderr": out.err,
                    "repr(settings)": repr(service.settings), **files_under(tmp_path)})
