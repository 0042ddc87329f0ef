"""A stand-in for Bambuddy 1.2.5.2, built from tests/contracts/bambuddy/ (CONTRACT.md, the
transcripts and openapi.json): the archive, print-log, printer and auth routes this product uses,
with the same shapes, ordering (created_at DESC, no total on archives), paging, auth (API keys
with scopes, stream tokens for thumbnails), status codes and error bodies.

Run standalone for the demo: `python -m tests.fakes.bambuddy --port 18001 --seed demo`.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hmac
import itertools
import re
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from .http import FakeServer, Request, Response, serve_until_interrupted

# A 1x1 PNG, like the 99-byte thumbnail of the recording (transcript 14).
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

AUTH_REQUIRED = {"detail": "Authentication required"}
STREAM_TOKEN_REQUIRED = {"detail": "Valid camera stream token required. Obtain one from POST "
                                   "/api/v1/printers/camera/stream-token"}
ARCHIVE_NOT_FOUND = {"detail": "Archive not found"}
TERMINAL = ("completed", "failed", "aborted", "cancelled", "stopped")
# PATCH body fields and their types (schemas/archive.py ArchiveUpdate); others are ignored.
WRITABLE = {"print_name": str, "is_favorite": bool, "tags": str, "notes": str, "cost": float,
            "failure_reason": str, "quantity": int, "external_url": str, "printer_id": int,
            "project_id": int, "status": str}
_TYPE_ERRORS = {int: ("int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
                bool: ("bool_parsing", "Input should be a valid boolean, unable to interpret input"),
                float: ("float_parsing", "Input should be a valid number, unable to parse string as a number"),
                str: ("string_type", "Input should be a valid string")}


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S")


def archive_shape(archive_id: int, **fields: Any) -> dict[str, Any]:
    """A complete ArchiveResponse (transcript 04's keys), defaults filled in."""
    name = fields.get("print_name", f"Part {archive_id}")
    filename = fields.get("filename", f"{name.lower().replace(' ', '_')}.gcode.3mf")
    base = {
        "id": archive_id, "printer_id": None, "project_id": None, "project_name": None, "filename": filename,
        "file_path": f"archive/unassigned/{archive_id}/{filename}", "file_size": 1389,
        "content_hash": secrets.token_hex(32), "thumbnail_path": f"archive/unassigned/{archive_id}/thumbnail.png",
        "timelapse_path": None, "source_3mf_path": None, "f3d_path": None, "duplicates": None, "duplicate_count": 0,
        "duplicate_sequence": 0, "original_archive_id": None, "object_count": 1, "print_name": name,
        "plate_id": None, "print_time_seconds": 2700, "actual_time_seconds": None, "time_accuracy": None,
        "filament_used_grams": 12.5, "filament_type": "PLA", "filament_color": "#FF0000", "layer_height": None,
        "total_layers": None, "nozzle_diameter": None, "bed_temperature": None, "bed_type": None,
        "nozzle_temperature": None, "sliced_for_model": None, "status": "completed", "started_at": None,
        "completed_at": None, "extra_data": None, "makerworld_url": None, "designer": None, "external_url": None,
        "is_favorite": False, "tags": None, "notes": None, "cost": None, "photos": None, "failure_reason": None,
        "quantity": 1, "energy_kwh": None, "energy_cost": None, "created_at": _ts(datetime.utcnow()),
        "created_by_id": None, "created_by_username": None, "run_count": 0, "last_run_at": None,
        "total_filament_actual_grams": None, "successful_run_count": 0, "failed_run_count": 0,
    }
    base.update(fields)
    return base


def run_shape(entry_id: int, archive: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
    """A PrintLogEntry (transcript 10's keys)."""
    base = {
        "id": entry_id, "archive_id": archive["id"] if archive else None,
        "print_name": archive["print_name"] if archive else None, "printer_name": "Printer",
        "printer_id": archive["printer_id"] if archive else None, "status": "completed", "started_at": None,
        "completed_at": None, "duration_seconds": None, "filament_type": archive["filament_type"] if archive else None,
        "filament_color": archive["filament_color"] if archive else None,
        "filament_used_grams": archive["filament_used_grams"] if archive else None, "cost": None, "energy_kwh": None,
        "energy_cost": None, "failure_reason": None,
        "thumbnail_path": archive["thumbnail_path"] if archive else None, "created_by_id": None,
        "created_by_username": None, "created_at": _ts(datetime.utcnow()),
    }
    base.update(fields)
    return base


class FakeBambuddy(FakeServer):
    API = "/api/v1"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.archives: dict[int, dict[str, Any]] = {}
        self.deleted: set[int] = set()
        self.runs: dict[int, dict[str, Any]] = {}
        self.printers: dict[int, dict[str, Any]] = {}
        self.thumbnails: dict[int, bytes] = {}
        self.auth_enabled = False
        self.api_keys: dict[str, dict[str, bool]] = {}
        self.stream_tokens: set[str] = set()
        self._ids = itertools.count(1)
        self._run_ids = itertools.count(1)
        self._clock = datetime(2026, 11, 20, 9, 0, 0)
        a = self.API
        self.route("GET", "/health", lambda r: Response(200, {"status": "healthy"}))
        self.route("GET", f"{a}/auth/status", lambda r: Response(200, {"auth_enabled": self.auth_enabled,
                                                                       "requires_setup": not self.auth_enabled}))
        self.route("GET", f"{a}/archives/", self._list_archives)
        self.route("GET", f"{a}/archives/([^/]+)", self._get_archive)
        self.route("PATCH", f"{a}/archives/([^/]+)", self._patch_archive)
        self.route("GET", f"{a}/archives/([^/]+)/runs", self._archive_runs)
        self.route("GET", f"{a}/archives/([^/]+)/thumbnail", self._thumbnail)
        self.route("GET", f"{a}/print-log/", self._list_runs)
        self.route("GET", f"{a}/print-log/([^/]+)/thumbnail", self._run_thumbnail)
        self.route("GET", f"{a}/printers/", self._list_printers)
        self.route("POST", f"{a}/printers/camera/stream-token", self._stream_token)
        self._install_admin_routes()

    @property
    def base_url(self) -> str:
        return self.root_url + self.API

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Response:
        # FastAPI names only the first matching route's methods (transcript 09: allow: GET).
        return Response(405, {"detail": "Method Not Allowed"}, headers={"allow": allowed[0]})

    # --- seeding (test/demo API) ---------------------------------------------------------
    def tick(self, minutes: float = 1.0) -> str:
        self._clock += timedelta(minutes=minutes)
        return _ts(self._clock)

    def add_printer(self, name: str, serial: str, model: str = "X1C", printer_id: int | None = None) -> dict:
        with self.lock:
            pid = printer_id or (max(self.printers, default=0) + 1)
            self.printers[pid] = {
                "name": name, "serial_number": serial, "ip_address": "192.0.2.10", "model": model, "location": None,
                "auto_archive": True, "external_camera_url": None, "external_camera_type": None,
                "external_camera_enabled": False, "external_camera_snapshot_url": None, "camera_rotation": 0,
                "id": pid, "is_active": True, "nozzle_count": 1, "supports_nozzle_flow_type": False,
                "print_hours_offset": 0.0, "plate_detection_enabled": False, "plate_detection_roi": None,
                "created_at": self.tick(0), "updated_at": self.tick(0)}
            return self.printers[pid]

    def add_archive(self, archive_id: int | None = None, thumbnail: bytes | None = PNG_1PX, **fields: Any) -> dict:
        with self.lock:
            aid = archive_id or next(self._ids)
            while aid in self.archives:
                aid = next(self._ids)
            fields.setdefault("created_at", self.tick())
            if thumbnail is None:
                fields.setdefault("thumbnail_path", None)
            archive = archive_shape(aid, **fields)
            self.archives[aid] = archive
            if thumbnail is not None and archive["thumbnail_path"]:
                self.thumbnails[aid] = thumbnail
            return archive

    def add_run(self, archive_id: int, status: str = "completed", minutes: float = 45, **fields: Any) -> dict:
        """A finished (or started) print run: a print-log entry, and the archive row updated the way
        Bambuddy does (a reprint reuses the row: status and times overwritten, created_at kept)."""
        with self.lock:
            archive = self.archives[archive_id]
            started = fields.pop("started_at", None) or self.tick()
            completed = fields.pop("completed_at", None) or (self.tick(minutes) if status in TERMINAL else None)
            printer = self.printers.get(archive["printer_id"] or -1, {})
            entry = run_shape(next(self._run_ids), archive, status=status, started_at=started, completed_at=completed,
                              duration_seconds=int(minutes * 60) if completed else None,
                              printer_name=printer.get("name", "Printer"), created_at=completed or started, **fields)
            self.runs[entry["id"]] = entry
            archive.update(status=status, started_at=started, completed_at=completed,
                           failure_reason=fields.get("failure_reason"))
            self._refresh_aggregates(archive_id)
            return entry

    def finish_run(self, entry_id: int, status: str = "completed", minutes: float = 45) -> dict:
        with self.lock:
            entry = self.runs[entry_id]
            entry.update(status=status, completed_at=self.tick(minutes), duration_seconds=int(minutes * 60))
            archive = self.archives.get(entry["archive_id"])
            if archive:
                archive.update(status=status, completed_at=entry["completed_at"])
                self._refresh_aggregates(archive["id"])
            return entry

    def _refresh_aggregates(self, archive_id: int) -> None:
        runs = [r for r in self.runs.values() if r["archive_id"] == archive_id]
        archive = self.archives[archive_id]
        archive["run_count"] = len(runs)
        archive["successful_run_count"] = sum(r["status"] == "completed" for r in runs)
        archive["failed_run_count"] = sum(r["status"] == "failed" for r in runs)
        archive["last_run_at"] = max((r["started_at"] for r in runs if r["started_at"]), default=None)
        done = [r for r in runs if r["status"] == "completed"]
        archive["actual_time_seconds"] = done[0]["duration_seconds"] if len(runs) == 1 and done else None

    def soft_delete(self, archive_id: int) -> None:
        with self.lock:
            self.deleted.add(archive_id)

    def enable_auth(self) -> None:
        self.auth_enabled = True

    def create_api_key(self, *, can_read_status: bool = True, can_manage_archives: bool = True) -> str:
        key = "bb_" + secrets.token_urlsafe(24)
        self.api_keys[key] = {"can_read_status": can_read_status, "can_manage_archives": can_manage_archives}
        return key

    # --- auth (backend/app/core/auth.py as CONTRACT.md records it) -------------------------
    def _authorize(self, request: Request, scope: str) -> Response | None:
        if not self.auth_enabled or self._logged_in(request):
            return None
        key = request.headers.get("x-api-key")
        bearer = request.headers.get("authorization", "")
        if key is None and bearer.lower().startswith("bearer bb_"):
            key = bearer.split(" ", 1)[1]
            if not self._known_key(key):
                return Response(401, {"detail": "Invalid API key"}, headers={"www-authenticate": "Bearer"})
        scopes = self._known_key(key) if key else None
        if scopes is None:
            return Response(401, AUTH_REQUIRED, headers={"www-authenticate": "Bearer"})
        if not scopes.get(scope):
            return Response(403, {"detail": f"API key does not have '{scope}' permission"})
        return None

    def _known_key(self, key: str | None) -> dict[str, bool] | None:
        for known, scopes in self.api_keys.items():
            if key and hmac.compare_digest(known, key):
                return scopes
        return None

    # --- routes ----------------------------------------------------------------------------
    @staticmethod
    def _int_or_422(value: str, where: str, name: str) -> int | Response:
        try:
            return int(value)
        except ValueError:
            return Response(422, {"detail": [{"type": "int_parsing", "loc": [where, name],
                                              "msg": "Input should be a valid integer, unable to parse string as an "
                                                     "integer", "input": value}]})

    def _listed(self, archive: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(archive)
        out["duplicates"] = None  # only GET one computes them (transcripts 03 vs 04)
        return out

    def _list_archives(self, request: Request) -> Response:
        denied = self._authorize(request, "can_read_status")
        if denied:
            return denied
        limit = self._int_or_422(request.arg("limit", "50"), "query", "limit")
        offset = self._int_or_422(request.arg("offset", "0"), "query", "offset")
        for value in (limit, offset):
            if isinstance(value, Response):
                return value
        visible = [a for a in self.archives.values() if a["id"] not in self.deleted]
        visible.sort(key=lambda a: a["created_at"], reverse=True)  # created_at DESC, no id tiebreak
        return Response(200, [self._listed(a) for a in visible[offset:offset + limit]])

    def _archive_id(self, request: Request, raw_id: str, scope: str) -> int | Response:
        """Auth first, then the path parameter (auth runs before validation, transcript 62)."""
        denied = self._authorize(request, scope)
        return denied if denied else self._int_or_422(raw_id, "path", "archive_id")

    def _get_archive(self, request: Request, raw_id: str) -> Response:
        archive_id = self._archive_id(request, raw_id, "can_read_status")
        if isinstance(archive_id, Response):
            return archive_id
        if archive_id not in self.archives or archive_id in self.deleted:
            return Response(404, ARCHIVE_NOT_FOUND)
        return Response(200, self._detail(archive_id))

    def _detail(self, archive_id: int) -> dict[str, Any]:
        out = copy.deepcopy(self.archives[archive_id])
        same = [a for a in self.archives.values() if a["id"] != archive_id and a["id"] not in self.deleted
                and a["content_hash"] and a["content_hash"] == out["content_hash"]]
        out["duplicates"] = [{"id": a["id"], "print_name": a["print_name"], "created_at": a["created_at"],
                              "match_type": "exact"} for a in same]
        out["duplicate_count"] = len(same)
        return out

    def _patch_archive(self, request: Request, raw_id: str) -> Response:
        archive_id = self._archive_id(request, raw_id, "can_manage_archives")
        if isinstance(archive_id, Response):
            return archive_id
        try:
            body = request.json()
        except ValueError:
            return Response(422, {"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
                                              "input": {}, "ctx": {"error": "Expecting value"}}]})
        if not isinstance(body, dict):
            return Response(422, {"detail": [{"type": "model_attributes_type", "loc": ["body"],
                                              "msg": "Input should be a valid dictionary or object to extract "
                                                     "fields from", "input": body}]})
        errors = []
        for key, value in body.items():
            kind = WRITABLE.get(key)
            if kind is None or value is None:
                continue
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if not ok:
                err_type, msg = _TYPE_ERRORS[kind]
                errors.append({"type": err_type, "loc": ["body", key], "msg": msg, "input": value})
        if errors:
            return Response(422, {"detail": errors})
        if archive_id not in self.archives:  # a soft-deleted archive is still patched (transcript 24)
            return Response(404, ARCHIVE_NOT_FOUND)
        archive = self.archives[archive_id]
        for key, value in body.items():
            if key in WRITABLE:
                archive[key] = value
        return Response(200, self._detail(archive_id))

    def _archive_runs(self, request: Request, raw_id: str) -> Response:
        archive_id = self._archive_id(request, raw_id, "can_read_status")
        if isinstance(archive_id, Response):
            return archive_id
        items = sorted((r for r in self.runs.values() if r["archive_id"] == archive_id),
                       key=lambda r: r["created_at"], reverse=True)
        return Response(200, {"items": copy.deepcopy(items), "total": len(items)})

    def _thumbnail(self, request: Request, raw_id: str) -> Response:
        if self.auth_enabled and request.arg("token") not in self.stream_tokens:
            return Response(401, STREAM_TOKEN_REQUIRED)  # headers are never enough (transcript 54)
        archive_id = self._int_or_422(raw_id, "path", "archive_id")
        if isinstance(archive_id, Response):
            return archive_id
        image = self.thumbnails.get(archive_id)
        if image is None:
            return Response(404, {"detail": "Thumbnail not found"})
        return Response(200, image, content_type="image/png",
                        headers={"cache-control": "no-cache, must-revalidate", "etag": f'"{int(time.time())}"'})

    def _run_thumbnail(self, request: Request, raw_id: str) -> Response:
        if self.auth_enabled and request.arg("token") not in self.stream_tokens:
            return Response(401, STREAM_TOKEN_REQUIRED)
        entry_id = self._int_or_422(raw_id, "path", "entry_id")
        if isinstance(entry_id, Response):
            return entry_id
        entry = self.runs.get(entry_id)
        image = self.thumbnails.get(entry["archive_id"]) if entry else None
        if image is None:
            return Response(404, {"detail": "Thumbnail not found"})
        return Response(200, image, content_type="image/png", headers={"cache-control": "public, max-age=86400"})

    def _list_runs(self, request: Request) -> Response:
        denied = self._authorize(request, "can_read_status")
        if denied:
            return denied
        raw_limit = request.arg("limit", "50")
        limit = self._int_or_422(raw_limit, "query", "limit")
        if isinstance(limit, Response):
            return limit
        if not 1 <= limit <= 500:
            kind, bound = ("less_than_equal", 500) if limit > 500 else ("greater_than_equal", 1)
            word = "less than or equal to" if limit > 500 else "greater than or equal to"
            return Response(422, {"detail": [{"type": kind, "loc": ["query", "limit"],
                                              "msg": f"Input should be {word} {bound}", "input": raw_limit,
                                              "ctx": {"le" if limit > 500 else "ge": bound}}]})
        offset = self._int_or_422(request.arg("offset", "0"), "query", "offset")
        if isinstance(offset, Response):
            return offset
        items = list(self.runs.values())
        status = request.arg("status")
        if status:
            items = [r for r in items if r["status"] == status]
        items.sort(key=lambda r: r["created_at"], reverse=True)
        page = copy.deepcopy(items[offset:offset + limit])
        for entry in page:  # the list serialiser drops these (CONTRACT.md "Surprise")
            entry.update(cost=None, energy_kwh=None, energy_cost=None)
        return Response(200, {"items": page, "total": len(items)})

    def _list_printers(self, request: Request) -> Response:
        denied = self._authorize(request, "can_read_status")
        if denied:
            return denied
        return Response(200, [copy.deepcopy(p) for p in self.printers.values()])

    def _stream_token(self, request: Request) -> Response:
        denied = self._authorize(request, "can_read_status")
        if denied:
            return denied
        token = secrets.token_urlsafe(24)
        self.stream_tokens.add(token)
        return Response(200, {"token": token})


    # --- admin routes: auth setup/login, API keys, adding printers (used by deploy/demo_init.py) ---
    # Recorded contract: tests/contracts/bambuddy/CONTRACT.md "Auth", transcripts 30-33 and 63,
    # openapi.json (SetupRequest, LoginRequest/LoginResponse, APIKeyCreate/APIKeyCreateResponse,
    # PrinterCreate); messages as in Bambuddy 1.2.5.2 backend/app/api/routes/{auth,api_keys,printers}.py.
    # The MQTT connection test Bambuddy runs before adding a printer is not imitated.
    _KEY_SCOPE_DEFAULTS = {"can_queue": True, "can_control_printer": False, "can_read_status": True,
                           "can_manage_library": True, "can_manage_inventory": True, "can_manage_maintenance": True,
                           "can_manage_archives": True, "can_manage_projects": True, "can_access_cloud": False,
                           "can_update_energy_cost": False}

    def _install_admin_routes(self) -> None:
        self.admin: tuple[str, str] | None = None
        self.sessions: set[str] = set()
        self.api_key_rows: dict[int, dict[str, Any]] = {}
        self._key_ids = itertools.count(1)
        a = self.API
        self.route("POST", f"{a}/auth/setup", self._auth_setup)
        self.route("POST", f"{a}/auth/login", self._auth_login)
        self.route("GET", f"{a}/api-keys/", self._list_api_keys)
        self.route("POST", f"{a}/api-keys/", self._create_api_key_route)
        self.route("DELETE", f"{a}/api-keys/([^/]+)", self._delete_api_key)
        self.route("POST", f"{a}/printers/", self._create_printer)

    def _logged_in(self, request: Request) -> bool:
        """A JWT from /auth/login: the admin's session, full access (an admin has every permission)."""
        bearer = request.headers.get("authorization", "")
        return bearer.lower().startswith("bearer ") and bearer.split(" ", 1)[1] in self.sessions

    def _admin_only(self, request: Request) -> Response | None:
        """Admin routes: open while auth is off; then a login JWT, never an API key (transcript 63)."""
        if not self.auth_enabled or self._logged_in(request):
            return None
        bearer = request.headers.get("authorization", "")
        if request.headers.get("x-api-key") or bearer.lower().startswith("bearer bb_"):
            return Response(403, {"detail": "API keys cannot be used for administrative operations"})
        return Response(401, AUTH_REQUIRED, headers={"www-authenticate": "Bearer"})

    @staticmethod
    def _body_or_422(request: Request, required: tuple[str, ...]) -> dict[str, Any] | Response:
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return Response(422, {"detail": [{"type": "model_attributes_type", "loc": ["body"],
                                              "msg": "Input should be a valid dictionary", "input": body}]})
        missing = [{"type": "missing", "loc": ["body", k], "msg": "Field required", "input": body}
                   for k in required if k not in body]
        return Response(422, {"detail": missing}) if missing else body

    def _auth_setup(self, request: Request) -> Response:
        body = self._body_or_422(request, ("auth_enabled",))
        if isinstance(body, Response):
            return body
        if self.auth_enabled:
            return Response(403, {"detail": "Authentication is already configured. Use the admin panel to "
                                            "modify auth settings."})
        created = False
        if body["auth_enabled"] and self.admin is None:
            user, password = body.get("admin_username"), body.get("admin_password")
            if not user or not password:
                return Response(400, {"detail": "Admin username and password are required when enabling "
                                                "authentication (no admin users exist)"})
            for pattern, what in ((r"[A-Z]", "one uppercase letter"), (r"[a-z]", "one lowercase letter"),
                                  (r"\d", "one digit"), (r"[^A-Za-z0-9]", "one special character")):
                if not re.search(pattern, password):
                    return Response(400, {"detail": f"Password must contain at least {what}"})
            self.admin, created = (user, password), True
        self.auth_enabled = bool(body["auth_enabled"])
        return Response(200, {"auth_enabled": self.auth_enabled, "admin_created": created})

    def _auth_login(self, request: Request) -> Response:
        body = self._body_or_422(request, ("username", "password"))
        if isinstance(body, Response):
            return body
        if not self.auth_enabled:
            return Response(400, {"detail": "Authentication is not enabled"})
        if self.admin is None or not (hmac.compare_digest(str(body["username"]), self.admin[0])
                                      and hmac.compare_digest(str(body["password"]), self.admin[1])):
            return Response(401, {"detail": "Incorrect username or password"}, headers={"www-authenticate": "Bearer"})
        token = "eyJ" + secrets.token_urlsafe(32)
        self.sessions.add(token)
        return Response(200, {"access_token": token, "token_type": "bearer", "requires_2fa": False,
                              "pre_auth_token": None, "two_fa_methods": [],
                              "user": {"id": 1, "username": self.admin[0], "email": None, "role": "admin",
                                       "is_active": True, "is_admin": True, "auth_source": "local", "groups": [],
                                       "permissions": [], "created_at": self.tick(0)}})  # UserResponse

    def _list_api_keys(self, request: Request) -> Response:
        denied = self._admin_only(request)
        if denied:
            return denied
        rows = sorted(self.api_key_rows.values(), key=lambda r: r["created_at"], reverse=True)
        return Response(200, [{k: v for k, v in r.items() if k != "key"} for r in rows])

    def _create_api_key_route(self, request: Request) -> Response:
        denied = self._admin_only(request)
        if denied:
            return denied
        body = self._body_or_422(request, ("name",))
        if isinstance(body, Response):
            return body
        scopes = {k: bool(body.get(k, default)) for k, default in self._KEY_SCOPE_DEFAULTS.items()}
        key = "bb_" + secrets.token_urlsafe(32)
        self.api_keys[key] = scopes
        key_id = next(self._key_ids)
        row = {"id": key_id, "name": body["name"], "key_prefix": key[:8] + "...",
               "user_id": 1 if self.auth_enabled else None, **scopes, "printer_ids": body.get("printer_ids"),
               "enabled": True, "last_used": None, "created_at": self.tick(0), "expires_at": body.get("expires_at"),
               "key": key}
        self.api_key_rows[key_id] = row
        return Response(200, dict(row))

    def _delete_api_key(self, request: Request, raw_id: str) -> Response:
        denied = self._admin_only(request)
        if denied:
            return denied
        key_id = self._int_or_422(raw_id, "path", "key_id")
        if isinstance(key_id, Response):
            return key_id
        row = self.api_key_rows.pop(key_id, None)
        if row is None:
            return Response(404, {"detail": "API key not found"})
        self.api_keys.pop(row["key"], None)
        return Response(200, {"message": "API key deleted"})

    def _create_printer(self, request: Request) -> Response:
        denied = self._admin_only(request)
        if denied:
            return denied
        body = self._body_or_422(request, ("name", "serial_number", "ip_address", "access_code"))
        if isinstance(body, Response):
            return body
        if any(p["serial_number"] == body["serial_number"] for p in self.printers.values()):
            return Response(400, {"detail": "Printer with this serial number already exists"})
        printer = self.add_printer(body["name"], body["serial_number"], body.get("model") or "X1C")
        printer.update(ip_address=body["ip_address"], auto_archive=bool(body.get("auto_archive", True)))
        return Response(200, copy.deepcopy(printer))


def seed_demo(fake: FakeBambuddy) -> None:
    """Printers matching the demo simulator's fleet (ingestion/demo.py FLEET serials)."""
    fake.add_printer("X1C bay 1", "SIMX1C0001", "X1C")
    fake.add_printer("P1S bay 2", "SIMP1S0002", "P1S")
    fake.add_printer("A1 bay 3", "SIMA10003", "A1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bambuddy stand-in (demo/tests only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--seed", choices=["none", "demo"], default="demo")
    args = parser.parse_args(argv)
    fake = FakeBambuddy(args.host, args.port)
    if args.seed == "demo":
        seed_demo(fake)
    return serve_until_interrupted(fake, f"Bambuddy stand-in (demo only) at {fake.base_url}")


if __name__ == "__main__":
    raise SystemExit(main())
