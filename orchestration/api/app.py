"""The sync API (Starlette): the original sidecar's endpoints, backed by the Dagster job.

How runs are launched: the API writes a row into the ledger's sync_requests table and the
the `sync_scheduler` sensor turns pending rows into `sync_prints` runs. Why a table and not the
GraphQL API of the webserver: a request is durable the moment it is accepted (nothing is lost
while Dagster is down, it runs when the daemon is back), bursts of webhooks coalesce in one
place (the sensor), and the API needs neither the webserver nor a GraphQL client to be up.
The API still tells the caller when the daemon is not running (503, with the queued request id).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orchestration.bambuddy.client import ArchiveNotFound, BambuddyClient, BambuddyError
from orchestration.inventree.client import InvenTreeClient, InvenTreeError
from orchestration.ledger import SCHEDULER_TICK_META, Ledger

from .dagster_status import DagsterStatus, scheduler_view
from .settings import ApiSettings

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024
FINISHED_EVENTS = {"print_complete", "print_failed", "print_stopped"}  # webhook_payloads.json event_mapping


def error(status: int, message: str, detail: str = "", **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail, **extra}, status_code=status)


def _same(secret: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(secret.encode(), given.encode())


def create_app(settings: ApiSettings | None = None, dagster: DagsterStatus | None = None) -> Starlette:
    settings = settings or ApiSettings.from_env()
    sync = settings.sync
    ledger = Ledger(sync.ledger_db)
    dagster = dagster or DagsterStatus()
    secrets = [s for s in (sync.inventree_token, sync.bambuddy_api_key, sync.service_api_token,
                           sync.webhook_shared_secret) if s]

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    def run_url(run_id: str | None) -> str | None:
        return f"{settings.dagster_ui_url}/runs/{run_id}" if run_id else None

    async def body_of(request: Request) -> bytes | JSONResponse:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return error(413, "request body too large", f"at most {MAX_BODY_BYTES} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return error(413, "request body too large", f"at most {MAX_BODY_BYTES} bytes")
        return body

    def manual(handler: Callable[[Request], Awaitable[JSONResponse]]):
        """SERVICE_API_TOKEN, when set, guards the manual endpoints (X-Service-Token)."""
        async def guarded(request: Request) -> JSONResponse:
            if sync.service_api_token and not _same(sync.service_api_token, request.headers.get("x-service-token")):
                return error(401, "unauthorized", "send the SERVICE_API_TOKEN value in the X-Service-Token header")
            body = await body_of(request)
            if isinstance(body, JSONResponse):
                return body
            return await handler(request)
        return guarded

    # --- health and status -------------------------------------------------------------
    async def health(request: Request) -> JSONResponse:
        state = await asyncio.to_thread(dagster.check)
        return JSONResponse({"status": "ok", "ledger": {"path": str(sync.ledger_db), "reachable": ledger.reachable()},
                             "dagster": state, "bambuddy_configured": sync.bambuddy_enabled})

    def entry_view(e) -> dict[str, Any]:
        keys = ("print_id", "archive_id", "run_no", "state", "step", "reason", "fix", "attempts", "last_error",
                "next_attempt_at", "part_pk", "stock_item_pk", "batch", "link_state", "link_url", "synced_at")
        out = {k: getattr(e, k) for k in keys if getattr(e, k) is not None}
        return {k: redact(v) if isinstance(v, str) else v for k, v in out.items()}

    async def status(request: Request) -> JSONResponse:
        last = ledger.last_run()
        if last:
            last = {k: last[k] for k in ("run_id", "status", "started_at", "finished_at", "created", "reused",
                                         "skipped", "failed", "links", "error")} | {"url": run_url(last["run_id"])}
            last["error"] = redact(last["error"]) if last["error"] else None
        problems = [entry_view(e) for e in ledger.recent("needs_attention", 20)]
        retrying = [entry_view(e) for e in ledger.recent("retrying", 20)]
        step_errors = {step: {**v, "error": redact(v["error"])} for step, v in ledger.metas("step_error:").items()}
        return JSONResponse({
            "counts": ledger.counts(),
            "last_run": last,
            "needs_attention": problems,
            "retrying": retrying,
            "last_errors": [{"print_id": e["print_id"], "archive_id": e.get("archive_id"), "state": e["state"],
                             "step": e.get("step"), "error": e.get("last_error") or e.get("reason"), "fix": e.get("fix")}
                            for e in problems + retrying][:10],
            "step_errors": step_errors,
            "data_tests": data_test_failures(sync.data_dir),
            "pending_requests": len(ledger.requests()),
            "recent_synced": [{"print_id": e.print_id, "archive_id": e.archive_id, "part_pk": e.part_pk,
                               "stock_item_pk": e.stock_item_pk, "batch": e.batch, "link": e.link_url,
                               "at": e.synced_at} for e in ledger.recent("synced", 10)],
            "dagster": await asyncio.to_thread(dagster.check),
            "scheduler": scheduler_view(ledger.meta(SCHEDULER_TICK_META)),
        })

    async def validate(request: Request) -> JSONResponse:
        checks = await asyncio.to_thread(run_checks, sync, redact)
        failing = [t for t in data_test_failures(sync.data_dir) if t.get("status") in ("fail", "error")]
        checks.append({"name": "data_tests", "ok": not failing,
                       "detail": "; ".join(f"{t.get('test')}: {t.get('message')}" for t in failing[:5])
                       or "every dbt data test passed in the last build",
                       **({"fix": "see the failing test in the Dagster run of the dbt step; the prints it "
                                  "concerns wait, the others go on"} if failing else {})})
        attention = ledger.counts()["needs_attention"]
        checks.append({"name": "print_queue", "ok": attention == 0,
                       "detail": f"{attention} print(s) need attention" if attention else "no print waits for a person",
                       **({"fix": "see needs_attention in /sync/status: each names its reason and fix"}
                          if attention else {})})
        ok = all(c["ok"] for c in checks)
        return JSONResponse({"ok": ok, "checks": checks}, status_code=200 if ok else 503)

    # --- manual syncs ------------------------------------------------------------------
    def run_of(req: dict) -> str | None:
        if req.get("run_id"):
            return req["run_id"]
        return dagster.run_for_launch(req["launch_id"]) if req.get("launch_id") else None

    async def launch_and_wait(kind: str, archive_ids: list[int] | None, force: bool, max_archives: int | None,
                              archive_id: int | None = None) -> JSONResponse:
        request_id = ledger.add_request(kind, archive_ids=archive_ids, force=force, max_archives=max_archives)
        state = await asyncio.to_thread(dagster.check)
        if not state.get("daemon_running"):
            return error(503, "dagster daemon not running",
                         "the request is queued and runs when the daemon is back; start it with "
                         "`dagster-daemon run -w workspace.yaml` (docker compose: the dagster-daemon service)",
                         request_id=request_id, dagster=state)
        deadline = time.monotonic() + settings.wait_seconds
        req = ledger.request(request_id)
        while req["status"] in ("pending", "launched") and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            req = ledger.request(request_id)
        run_id = await asyncio.to_thread(run_of, req)
        if req["status"] in ("pending", "launched"):
            status = "queued" if req["status"] == "pending" else "running"
            return JSONResponse({"request_id": request_id, "status": status, "run_id": run_id,
                                 "url": run_url(run_id), **archive_view(archive_id)}, status_code=202)
        run = ledger.run(run_id) if run_id else None
        counts = {k: run[k] for k in ("created", "reused", "skipped", "failed", "links")} if run else {}
        body = {"request_id": request_id, "run_id": run_id, "url": run_url(run_id),
                "status": "success" if req["status"] == "done" else "failure", **counts}
        if req.get("error"):
            body["error"] = redact(req["error"])
        if archive_id is not None:
            body.update(archive_view(archive_id))
        else:
            body["prints"] = [{k: (redact(v) if isinstance(v, str) else v) for k, v in d.items()}
                              for d in (run["details"] if run else [])]
        return JSONResponse(body)

    def archive_view(archive_id: int | None) -> dict[str, Any]:
        """Every print of the archive with its state and why (skipped / retrying / needs_attention)."""
        if archive_id is None:
            return {}
        prints = [entry_view(e) for e in ledger.for_archive(archive_id)]
        out: dict[str, Any] = {"prints": prints}
        if not prints:
            out["reason"] = archive_reasons.get(archive_id) or \
                f"archive {archive_id} has no finished print run in the warehouse yet"
        return out

    archive_reasons: dict[int, str] = {}

    async def sync_archive(request: Request) -> JSONResponse:
        raw = request.path_params["archive_id"]
        if not raw.isdigit():
            return error(422, "archive_id must be an integer", raw[:50])
        archive_id = int(raw)
        force = request.query_params.get("force", "false").lower() in ("1", "true", "yes")
        if sync.bambuddy_enabled:
            try:
                archive = await asyncio.to_thread(BambuddyClient.from_settings(sync).get_archive, archive_id)
                archive_reasons[archive_id] = (
                    f"archive {archive_id} has status {archive.get('status')!r}: "
                    + ("it was uploaded but never printed, so there is nothing to stock"
                       if archive.get("status") == "archived" else "no finished print run of it is known yet"))
            except ArchiveNotFound:
                return error(404, "archive not found", f"Bambuddy has no archive {archive_id}")
            except BambuddyError as exc:
                return error(503, "Bambuddy not available", redact(str(exc)))
        return await launch_and_wait("archive", [archive_id], force, None, archive_id=archive_id)

    async def backfill(request: Request) -> JSONResponse:
        raw = request.query_params.get("max_archives")
        if raw is not None and (not raw.isdigit() or int(raw) < 1):
            return error(422, "max_archives must be a positive integer", raw[:50])
        return await launch_and_wait("backfill", None, False, int(raw) if raw else None)

    # --- webhook -----------------------------------------------------------------------
    async def webhook(request: Request) -> JSONResponse:
        if sync.webhook_shared_secret:
            header = request.headers.get("x-sync-secret")
            bearer = request.headers.get("authorization", "")
            token = bearer[7:].strip() if bearer.lower().startswith("bearer ") else None
            if not (_same(sync.webhook_shared_secret, header) or _same(sync.webhook_shared_secret, token)):
                return error(401, "unauthorized", "send WEBHOOK_SHARED_SECRET as X-Sync-Secret or as "
                                                  "'Authorization: Bearer <secret>' (Bambuddy's auth_header)")
        body = await body_of(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return error(400, "body is not JSON", "Bambuddy sends a JSON object")
        if not isinstance(payload, dict):
            return error(400, "body is not a JSON object", "")
        event = payload.get("event")
        if event not in FINISHED_EVENTS:
            return JSONResponse({"status": "ignored", "event": event}, status_code=202)
        # The payload names no archive (CONTRACT.md): sync whatever is new; a burst shares one request
        # that waits for the scheduler (a pending request is always served: sensors.plan).
        pending = next((r for r in ledger.requests(("pending",)) if r["archive_ids"] is None
                        and not r["max_archives"] and not r["not_before"]), None)
        request_id = pending["id"] if pending else ledger.add_request("webhook")
        state = await asyncio.to_thread(dagster.check)
        body_out = {"status": "queued", "event": event, "request_id": request_id, "coalesced": bool(pending)}
        if not state.get("daemon_running"):
            return error(503, "dagster daemon not running", "the request is queued and runs when the daemon is back",
                         request_id=request_id)
        return JSONResponse(body_out, status_code=202)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/validate", manual(validate), methods=["GET"]),
        Route("/sync/status", manual(status), methods=["GET"]),
        Route("/sync/archive/{archive_id}", manual(sync_archive), methods=["POST"]),
        Route("/sync/backfill", manual(backfill), methods=["POST"]),
        Route("/webhooks/bambuddy", webhook, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def data_test_failures(data_dir) -> list[dict[str, Any]]:
    """The dbt data tests that failed in the last build (written by the dbt step)."""
    path = data_dir / "dbt_test_failures.json"
    try:
        failures = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return failures if isinstance(failures, list) else []


def run_checks(sync, redact: Callable[[str], str]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []

    def add(name: str, ok: bool, detail: str = "", fix: str = "") -> None:
        checks.append({"name": name, "ok": ok, "detail": redact(detail), **({"fix": fix} if not ok else {})})

    if not sync.bambuddy_enabled:
        add("bambuddy", True, "not configured (MQTT-only mode)")
    else:
        try:
            BambuddyClient.from_settings(sync).check(write=sync.sync_archive_external_link)
            add("bambuddy", True, "reachable, API key valid" + (", may write archive links"
                                                               if sync.sync_archive_external_link else ""))
        except BambuddyError as exc:
            add("bambuddy", False, str(exc), "see the detail: it names the setting to change")
    try:
        client = InvenTreeClient.from_settings(sync)
        client.check()
        add("inventree_token", True, "token valid")
    except InvenTreeError as exc:
        add("inventree_token", False, str(exc), "set INVENTREE_BASE_URL and INVENTREE_TOKEN")
        return checks
    for name, pk, exists, fix in (
            ("part_category", sync.inventree_part_category_id, client.category_exists,
             "create the category in InvenTree and set INVENTREE_PART_CATEGORY_ID to its id"),
            ("stock_location", sync.inventree_stock_location_id, client.location_exists,
             "create the location in InvenTree and set INVENTREE_STOCK_LOCATION_ID to its id")):
        if pk is None:
            add(name, True, "not set (parts/stock created without one)")
            continue
        try:
            found = exists(pk)
            add(name, found, f"id {pk} {'exists' if found else 'does not exist'}", fix)
        except InvenTreeError as exc:
            add(name, False, str(exc), fix)
    try:
        templates = client.parameter_templates(("Weight", "PrintTime"))
        missing = [n for n in ("Weight", "PrintTime") if n not in templates]
        add("parameter_templates", not missing, f"missing: {', '.join(missing)}" if missing else "Weight and PrintTime",
            "create parameter templates Weight (units g) and PrintTime (units s) in InvenTree")
    except InvenTreeError as exc:
        add("parameter_templates", False, str(exc), "check INVENTREE_TOKEN permissions")
    return checks
