"""A stand-in for InvenTree 1.4 (API 479), built from tests/contracts/inventree/ (CONTRACT.md,
curl and client transcripts, schema.yml): the endpoints this product uses, with the recorded
shapes, validation, error bodies and surprises (duplicate IPNs allowed, case-insensitive IPN and
batch filters, stock create answering a list, invalid stock status silently stored as 10,
parameter unit conversion, both list shapes, trailing-slash 404s).

Run standalone for the demo: `python -m tests.fakes.inventree --port 18000 --seed demo`.
"""

from __future__ import annotations

import argparse
import base64
import copy
import email.parser
import email.policy
import hmac
import html
import io
import json
import re
import secrets
import time
from datetime import date
from typing import Any
from urllib.parse import urlencode

import nh3
from PIL import Image

from .http import FakeServer, Request, Response, serve_until_interrupted

TOKEN_RE = re.compile(r"^inv-[0-9a-f]{40}-\d{8}$")
STATUS_TEXT = {10: "OK", 50: "Attention needed", 55: "Damaged", 60: "Destroyed", 65: "Rejected", 70: "Lost",
               75: "Quarantined", 85: "Returned"}
# Units the demo templates use, with their factor to the template's base unit.
UNIT_FACTORS = {"g": {"g": 1.0, "kg": 1000.0, "mg": 0.001},
                "s": {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}}
KNOWN_UNITS = {"", "g", "kg", "s", "min", "h", "mm", "m"}
MAX = {"name": 100, "IPN": 100, "description": 250, "batch": 100, "data": 500}
LIST_OMITS = {"price_breaks", "category_path", "parameters", "category_detail", "default_location_detail", "tags"}
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8")

PART_SHAPE = {
    "active": True, "assembly": False, "barcode_hash": "", "category": None, "component": True,
    "creation_date": "2026-11-24", "creation_user": 1, "default_expiry": 0, "default_location": None,
    "description": "", "full_name": "", "image": None, "IPN": "", "is_template": False, "keywords": None,
    "link": None, "locked": False, "minimum_stock": 0.0, "name": "", "pk": 0, "purchaseable": True, "revision": "",
    "revision_of": None, "revision_count": None, "salable": False, "starred": False,
    "thumbnail": "/static/img/blank_image.thumbnail.png", "testable": False, "trackable": False, "units": "",
    "variant_of": None, "virtual": False, "pricing_min": None, "pricing_max": None, "pricing_updated": None,
    "responsible": None, "allocated_to_build_orders": None, "allocated_to_sales_orders": None, "building": None,
    "scheduled_to_build": None, "category_default_location": None, "in_stock": None, "ordering": None,
    "required_for_build_orders": None, "required_for_sales_orders": None, "stock_item_count": None,
    "total_in_stock": None, "external_stock": None, "unallocated_stock": None, "variant_stock": None,
    "default_location_detail": None, "tags": [], "parameters": [], "category_path": None, "price_breaks": [],
    "category_detail": None, "notes": None,
}
STOCK_SHAPE = {
    "pk": 0, "part": 0, "quantity": 1.0, "serial": None, "batch": None, "location": None, "belongs_to": None,
    "build": None, "consumed_by": None, "customer": None, "delete_on_deplete": True, "expiry_date": None,
    "in_stock": True, "is_building": False, "link": "", "notes": None, "owner": None, "packaging": None,
    "parent": None, "purchase_order": None, "purchase_order_reference": None, "sales_order": None,
    "sales_order_reference": None, "status": 10, "status_text": "OK", "status_custom_key": 10,
    "supplier_part": None, "SKU": None, "MPN": None, "barcode_hash": "", "updated": "2026-11-24 00:29",
    "stocktake_date": None, "purchase_price": None, "purchase_price_currency": "USD", "allocated": None,
    "expired": None, "installed_items": None, "child_items": None, "stale": None, "part_detail": None,
    "tracking_items": None, "location_detail": None, "location_path": None, "tags": [],
    "supplier_part_detail": None, "tests": [],
}
STOCK_PART_DETAIL_KEYS = ("pk", "IPN", "barcode_hash", "category_default_location", "default_location",
                          "default_expiry", "name", "revision", "full_name", "description", "image", "thumbnail",
                          "active", "locked", "assembly", "component", "minimum_stock", "is_template",
                          "purchaseable", "salable", "testable", "trackable", "virtual", "units", "pricing_min",
                          "pricing_max")
CATEGORY_SHAPE = {"pk": 0, "name": "", "description": "", "default_location": None, "default_keywords": None,
                  "level": 0, "parent": None, "part_count": None, "subcategories": None, "pathstring": "", "path": [],
                  "starred": False, "structural": False, "icon": "", "parent_default_location": None}
LOCATION_SHAPE = {"pk": 0, "barcode_hash": "", "name": "", "level": 0, "description": "", "parent": None,
                  "pathstring": "", "path": [], "owner": None, "icon": "", "custom_icon": None, "structural": False,
                  "external": False, "location_type": None, "location_type_detail": None, "tags": [],
                  "parameters": []}
TEMPLATE_SHAPE = {"pk": 0, "name": "", "units": "", "description": "", "model_type": None, "checkbox": False,
                  "choices": "", "selectionlist": None, "enabled": True}
ROOT = {"server": "InvenTree", "id": None, "version": "1.4.0 dev", "instance": "InvenTree", "apiVersion": 479,
        "worker_running": False, "worker_count": 1, "worker_pending_tasks": 0, "plugins_enabled": False,
        "plugins_install_disabled": True, "email_configured": False, "debug_mode": False, "docker_mode": False,
        "default_locale": "en-us",
        "customize": {"logo": "/static/img/inventree.png", "splash": "/static/img/inventree_splash.jpg",
                      "login_message": None, "navbar_message": None, "disable_theme_storage": False}, "active_plugins": False, "system_health": None,
        "database": None, "platform": None, "installer": None, "target": None, "django_admin": None,
        "settings": {"sso_registration": False, "registration_enabled": False, "password_forgotten_enabled": True}}
USER = {"pk": 1, "username": "admin", "first_name": "", "last_name": "", "email": "admin@example.com", "groups": [],
        "is_staff": True, "is_superuser": True, "is_active": True,
        "profile": {"language": None, "theme": None, "widgets": None, "displayname": None, "position": None,
                    "status": None, "location": None, "active": True, "contact": None, "type": "internal",
                    "organisation": None, "primary_group": None}}


def too_long(field: str) -> str:
    return f"Ensure this field has no more than {MAX[field]} characters."


def invalid_pk(value: Any) -> str:
    return f'Invalid pk "{value}" - object does not exist.'


HTML_REFUSED = ["Remove HTML tags from this value"]
# Fields the server cleans (CONTRACT.md "Text sanitising", transcripts 70-74), in the order it reports them.
PART_TEXT = ("name", "description", "IPN", "notes")
STOCK_TEXT = ("batch", "notes")
MULTILINE = {"notes"}
NON_PRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
JS_LINK = re.compile(r"\]\(\s*javascript:", re.IGNORECASE)


def clean_text(data: dict, fields: tuple[str, ...]) -> Response | None:
    """The server's CleanMixin: nh3 without tags, then &lt; &gt; &amp; turned back; a change in
    length means markup was there -> 400 naming only the first such field (72e). Accepted values
    lose non-printable characters in one-line fields (\\n, \\t: 70m, 71e, 74h) and outer spaces (70n)."""
    for field in fields:
        value = data.get(field)
        if not isinstance(value, str):
            continue
        cleaned = nh3.clean(value, tags=set()).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        if len(cleaned) != len(value):
            return Response(400, {field: HTML_REFUSED})
        if field in MULTILINE and JS_LINK.search(value):
            return Response(400, {"non_field_errors": ["Data contains prohibited markdown content"]})  # 73d
        if field not in MULTILINE:
            data[field] = NON_PRINTABLE.sub("", value).strip()
    return None


def valid_image(content: bytes) -> bool:
    """Django's ImageField check, as the server makes it: Pillow must open and verify the file
    (magic bytes alone are not enough: a corrupt thumbnail is refused, transcript 61)."""
    if not content.startswith(IMAGE_MAGIC):
        return False
    try:
        Image.open(io.BytesIO(content)).verify()
    except Exception:  # Pillow raises many kinds for broken files
        return False
    return True


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


class FakeInvenTree(FakeServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 username: str = "admin", password: str = "inventree"):
        super().__init__(host, port)
        self.token = token or f"inv-{secrets.token_hex(20)}-{date.today():%Y%m%d}"
        self.username, self.password = username, password
        self.parts: dict[int, dict] = {}
        self.stock_items: dict[int, dict] = {}
        self.categories: dict[int, dict] = {}
        self.locations: dict[int, dict] = {}
        self.templates: dict[int, dict] = {}
        self.parameters: dict[int, dict] = {}
        self.media: dict[str, bytes] = {}
        self._next = {k: 1 for k in ("part", "stock", "category", "location", "template", "parameter")}
        api = "/api"
        self.route("GET", f"{api}/", lambda r: Response(200, ROOT))
        self.route("GET", f"{api}/user/me/", self._authed(lambda r: Response(200, USER)))
        self.route("GET", f"{api}/user/token/", self._token)
        self.route("POST", f"{api}/user/token/", self._authed(
            lambda r: Response(405, {"detail": 'Method "POST" not allowed.'})))
        self.route("GET", f"{api}/part/", self._authed(self._list_parts))
        self.route("POST", f"{api}/part/", self._authed(self._create_part))
        self.route("GET", f"{api}/part/(\\d+)/", self._authed(self._get_part))
        self.route("PATCH", f"{api}/part/(\\d+)/", self._authed(self._patch_part))
        self.route("GET", f"{api}/part/category/", self._authed(lambda r: self._list(r, self.categories, "name", omit=("path",))))
        self.route("POST", f"{api}/part/category/", self._authed(self._create_category))
        self.route("GET", f"{api}/part/category/(\\d+)/", self._authed(
            lambda r, pk: self._detail(self.categories, pk, "PartCategory")))
        self.route("GET", f"{api}/stock/", self._authed(self._list_stock))
        self.route("POST", f"{api}/stock/", self._authed(self._create_stock))
        self.route("GET", f"{api}/stock/(\\d+)/", self._authed(lambda r, pk: self._detail(self.stock_items, pk, "StockItem")))
        self.route("PATCH", f"{api}/stock/(\\d+)/", self._authed(self._patch_stock))
        self.route("GET", f"{api}/stock/location/", self._authed(self._list_locations))
        self.route("POST", f"{api}/stock/location/", self._authed(self._create_location))
        self.route("GET", f"{api}/stock/location/(\\d+)/", self._authed(
            lambda r, pk: self._detail(self.locations, pk, "StockLocation")))
        self.route("GET", f"{api}/parameter/template/", self._authed(self._list_templates))
        self.route("POST", f"{api}/parameter/template/", self._authed(self._create_template))
        self.route("GET", f"{api}/parameter/", self._authed(self._list_parameters))
        self.route("POST", f"{api}/parameter/", self._authed(self._create_parameter))
        self.route("GET", f"{api}/parameter/(\\d+)/", self._authed(
            lambda r, pk: self._detail(self.parameters, pk, "Parameter")))
        self.route("PATCH", f"{api}/parameter/(\\d+)/", self._authed(self._patch_parameter))
        self.route("DELETE", f"{api}/parameter/(\\d+)/", self._authed(self._delete_parameter))
        self.route("GET", "/media/(.+)", self._authed(self._media, html_401=True))
        self.route("GET", "/demo/", lambda r: Response(200, self.demo_listing()))
        self.route("GET", "/web/part/(\\d+)/", self.part_page)  # the part links written to Bambuddy

    @property
    def base_url(self) -> str:
        return self.root_url

    # --- seeding (test/demo API) ---------------------------------------------------------
    def _pk(self, kind: str) -> int:
        pk = self._next[kind]
        self._next[kind] += 1
        return pk

    def add_category(self, name: str, description: str = "") -> int:
        pk = self._pk("category")
        self.categories[pk] = {**CATEGORY_SHAPE, "pk": pk, "name": name, "description": description,
                               "pathstring": name, "path": [{"pk": pk, "name": name}]}
        return pk

    def add_location(self, name: str, description: str = "") -> int:
        pk = self._pk("location")
        self.locations[pk] = {**LOCATION_SHAPE, "pk": pk, "name": name, "description": description,
                              "pathstring": name, "path": [{"pk": pk, "name": name, "icon": ""}]}
        return pk

    def add_template(self, name: str, units: str = "", description: str = "", model_type: str | None = None) -> int:
        pk = self._pk("template")
        self.templates[pk] = {**TEMPLATE_SHAPE, "pk": pk, "name": name, "units": units, "description": description,
                              "model_type": model_type}
        return pk

    # --- auth ------------------------------------------------------------------------------
    def _auth_error(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Token "):
            if hmac.compare_digest(header[6:].strip(), self.token):
                return None
            return Response(401, {"detail": "Invalid token."}, headers={"www-authenticate": "Token"})
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user, password = "", ""
            if hmac.compare_digest(user, self.username) and hmac.compare_digest(password, self.password):
                return None
            return Response(401, {"detail": "Invalid username/password."})
        return Response(401, {"detail": "Authentication credentials were not provided."},
                        headers={"www-authenticate": "Token"})

    def _authed(self, handler, html_401: bool = False):
        def wrapped(request: Request, *args):
            denied = self._auth_error(request)
            if denied is not None:
                if html_401:
                    return Response(401, b"<html><body>Unauthorized</body></html>", content_type="text/html")
                return denied
            return handler(request, *args)
        return wrapped

    def not_found(self, request: Request) -> Response:
        # Every path needs its trailing slash: no redirect, a JSON 404 (CONTRACT.md).
        return Response(404, {"detail": "API endpoint not found", "url": self.root_url + request.path})

    def _token(self, request: Request) -> Response:
        denied = self._auth_error(request)
        if denied is not None:
            return denied
        name = request.arg("name", "inventree-python-client")
        return Response(200, {"token": self.token, "name": name, "expiry": f"{date.today().year + 1}-"
                                                                        f"{date.today():%m-%d}"})

    # --- lists -----------------------------------------------------------------------------
    def _page(self, request: Request, rows: list[dict]) -> Response:
        """Without `limit` a bare array; with it {count, next, previous, results} (CONTRACT.md)."""
        limit = request.arg("limit")
        if limit is None:
            return Response(200, copy.deepcopy(rows))
        limit_n, offset = int(limit), int(request.arg("offset", "0") or 0)
        query = {k: v[0] for k, v in request.query.items() if k not in ("limit", "offset", "format")}

        def link(off: int) -> str:
            params = {**query, "limit": limit_n, **({"offset": off} if off else {})}
            return f"{self.root_url}{request.path}?{urlencode(sorted(params.items()))}"

        nxt = link(offset + limit_n) if offset + limit_n < len(rows) else None
        prev = link(max(0, offset - limit_n)) if offset > 0 else None
        return Response(200, {"count": len(rows), "next": nxt, "previous": prev,
                              "results": copy.deepcopy(rows[offset:offset + limit_n])})

    def _list(self, request: Request, table: dict[int, dict], name_field: str, omit: tuple[str, ...] = ()) -> Response:
        rows = [{k: v for k, v in r.items() if k not in omit} for r in table.values()]
        name = request.arg("name")
        if name is not None:
            rows = [r for r in rows if r[name_field] == name]  # case-sensitive exact (55b)
        return self._page(request, rows)

    def _list_locations(self, request: Request) -> Response:
        # list rows swap path/tags/parameters for counters (transcript 56 vs 04)
        listed = {pk: {**{k: v for k, v in loc.items() if k not in ("path", "tags", "parameters")},
                       "items": sum(1 for s in self.stock_items.values() if s["location"] == pk), "sublocations": 0}
                  for pk, loc in self.locations.items()}
        return self._list(request, listed, "name")

    def _detail(self, table: dict[int, dict], pk: str, model: str) -> Response:
        row = table.get(int(pk))
        if row is None:
            return Response(404, {"detail": f"No {model} matches the given query."})
        return Response(200, copy.deepcopy(row))

    @staticmethod
    def _choice_error(field: str) -> Response:
        return Response(400, {field: ["Select a valid choice. That choice is not one of the available choices."]})

    # --- parts -----------------------------------------------------------------------------
    def _part_out(self, part: dict, with_parameters: bool = False) -> dict:
        out = copy.deepcopy(part)
        cat = self.categories.get(part["category"]) if part["category"] else None
        out["category_detail"] = {k: v for k, v in cat.items() if k != "path"} if cat else None
        if cat:
            out["category_name"] = cat["name"]
            out["category_path"] = [{"pk": cat["pk"], "name": cat["name"]}]
        out["parameters"] = [self._param_out(p) for p in self.parameters.values()
                             if p["model_id"] == part["pk"]] if with_parameters else []
        return out

    def _part_view(self, part: dict, view: str, with_parameters: bool = False) -> dict:
        """Create/PATCH answers carry the most keys; GET one adds `notes` to the list keys, and
        `parameters` when asked for (transcripts 10, 14, 28, 51, 60)."""
        out = self._part_out(part, with_parameters)
        if view == "patch":
            return out
        if view == "create":
            out.pop("notes", None)
            return out
        keep = {k: v for k, v in out.items() if k not in LIST_OMITS or (k == "parameters" and with_parameters)}
        if view == "list":
            keep.pop("notes", None)
        return keep

    def _list_parts(self, request: Request) -> Response:
        rows = sorted(self.parts.values(), key=lambda p: (p["name"], p["pk"]))  # InvenTree orders parts by name
        ipn = request.arg("IPN")
        if ipn is not None:
            rows = [p for p in rows if (p["IPN"] or "").lower() == ipn.lower()]  # iexact
        category = request.arg("category")
        if category is not None:
            if not category.isdigit():
                return self._choice_error("category")
            rows = [p for p in rows if p["category"] == int(category)]
        # list rows carry fewer keys than detail answers (transcripts 14 vs 28)
        listed = [self._part_view(p, "list") for p in rows]
        return self._page(request, listed)

    def _form(self, request: Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + request.body)
            data, files = {}, {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                filename = part.get_filename()
                payload = part.get_payload(decode=True) or b""
                if filename:
                    files[name] = (filename, payload)
                else:
                    data[name] = payload.decode()
            return data, files
        if not request.body:
            return {}, {}
        body = request.json()
        return (body if isinstance(body, dict) else {}), {}

    def _validate_part(self, data: dict, current: dict | None) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        name = data.get("name", current["name"] if current else None)
        if not name:
            errors["name"] = ["This field is required."]
        for field in ("name", "IPN", "description"):
            if field in data and data[field] is not None and len(str(data[field])) > MAX[field]:
                errors[field] = [too_long(field)]
        cat = data.get("category")
        if "category" in data and cat not in (None, "") and (not str(cat).isdigit() or int(cat) not in self.categories):
            errors["category"] = [invalid_pk(cat)]
        return errors

    def _store_image(self, part: dict, filename: str, content: bytes) -> Response | None:
        if not valid_image(content):
            return Response(400, {"image": ["Upload a valid image. The file you uploaded was either not an image or "
                                            "a corrupted image."]})
        stem, _, ext = filename.rpartition(".")
        path = f"part_images/{filename}"
        if path in self.media:  # a repeated name gets a random suffix (CONTRACT.md surprise 6)
            path = f"part_images/{stem}_{secrets.token_urlsafe(5)[:7]}.{ext}"
        old = part.get("image")
        if old:
            self.media.pop(old.removeprefix("/media/"), None)
        self.media[path] = content
        part["image"] = f"/media/{path}"
        part["thumbnail"] = f"/media/{path.rsplit('.', 1)[0]}.thumbnail.{ext}"
        return None

    def _create_part(self, request: Request) -> Response:
        data, files = self._form(request)
        refused = clean_text(data, PART_TEXT)
        if refused:
            return refused
        errors = self._validate_part(data, None)
        if errors:
            return Response(400, errors)
        ipn = data.get("IPN") or ""
        if any(p["name"] == data["name"] and (p["IPN"] or "") == ipn and p["revision"] == data.get("revision", "")
               for p in self.parts.values()):
            return Response(400, {"non_field_errors": ["The fields name, IPN, revision must make a unique set."]})
        pk = self._pk("part")
        part = {**copy.deepcopy(PART_SHAPE), "pk": pk, "name": data["name"], "IPN": ipn,
                "description": data.get("description") or "",
                "category": int(data["category"]) if data.get("category") not in (None, "") else None}
        for flag in ("active", "assembly", "component", "trackable", "purchaseable", "salable", "virtual",
                     "is_template", "testable"):
            if flag in data:
                part[flag] = _bool(data[flag])
        part["full_name"] = f"{ipn} | {part['name']}" if ipn else part["name"]
        if "image" in files:
            bad = self._store_image(part, *files["image"])
            if bad:
                return bad
        self.parts[pk] = part
        return Response(201, self._part_view(part, "create"))

    def _get_part(self, request: Request, pk: str) -> Response:
        part = self.parts.get(int(pk))
        if part is None:
            return Response(404, {"detail": "No Part matches the given query."})
        return Response(200, self._part_view(part, "detail", with_parameters=_bool(request.arg("parameters", "false"))))

    def _patch_part(self, request: Request, pk: str) -> Response:
        part = self.parts.get(int(pk))
        if part is None:
            return Response(404, {"detail": "No Part matches the given query."})
        data, files = self._form(request)
        refused = clean_text(data, PART_TEXT)
        if refused:
            return refused
        errors = self._validate_part(data, part)
        if errors:
            return Response(400, errors)
        if "image" in files:
            bad = self._store_image(part, *files["image"])
            if bad:
                return bad
        for key in ("name", "IPN", "description", "notes", "active", "component", "salable", "purchaseable"):
            if key in data:
                part[key] = _bool(data[key]) if key in ("active", "component", "salable", "purchaseable") else data[key]
        return Response(200, self._part_view(part, "patch"))

    def _media(self, request: Request, path: str) -> Response:
        content = self.media.get(path)
        if content is None:
            return Response(404, b"<html>Not found</html>", content_type="text/html")
        return Response(200, content, content_type="image/png" if path.endswith(".png") else "image/jpeg")

    def _create_category(self, request: Request) -> Response:
        data, _ = self._form(request)
        return Response(201, self.categories[self.add_category(data.get("name", ""), data.get("description", ""))])

    def _create_location(self, request: Request) -> Response:
        data, _ = self._form(request)
        return Response(201, self.locations[self.add_location(data.get("name", ""), data.get("description", ""))])

    # --- stock -----------------------------------------------------------------------------
    def _stock_out(self, item: dict) -> dict:
        out = copy.deepcopy(item)
        part = self.parts.get(item["part"])
        if part:
            out["part_detail"] = {k: part.get(k) for k in STOCK_PART_DETAIL_KEYS}
            out["part_detail"]["minimum_stock"] = f"{part['minimum_stock']:.6f}"  # a string here (transcript 30)
        loc = self.locations.get(item["location"]) if item["location"] else None
        out["location_detail"] = {k: loc[k] for k in ("pk", "name", "pathstring")} if loc else None
        out["location_path"] = copy.deepcopy(loc["path"]) if loc else None
        return out

    def _stock_listed(self, item: dict) -> dict:
        # list rows drop the location and supplier details, tags and tests (transcript 32 vs 30)
        return {k: v for k, v in self._stock_out(item).items()
                if k not in ("location_detail", "location_path", "supplier_part_detail", "tags", "tests")}

    def _list_stock(self, request: Request) -> Response:
        # the recorded order (transcript 54): quantity, then location (none first), then pk
        rows = sorted(self.stock_items.values(),
                      key=lambda s: (s["quantity"], s["location"] is not None, s["location"] or 0, s["pk"]))
        for field in ("part", "location"):
            value = request.arg(field)
            if value is not None:
                if not value.isdigit():
                    return self._choice_error(field)
                rows = [s for s in rows if s[field] == int(value)]
        batch = request.arg("batch")
        if batch is not None:
            rows = [s for s in rows if (s["batch"] or "").lower() == batch.lower()]  # iexact
        return self._page(request, [self._stock_listed(s) for s in rows])

    def _create_stock(self, request: Request) -> Response:
        data, _ = self._form(request)
        part = data.get("part")
        if part in (None, "") or not str(part).isdigit() or int(part) not in self.parts:
            return Response(400, {"part": "Valid part must be supplied"})  # a string, not a list (35)
        refused = clean_text(data, STOCK_TEXT)
        if refused:
            return refused
        errors: dict[str, list[str]] = {}
        try:
            quantity = float(data.get("quantity"))
        except (TypeError, ValueError):
            errors["quantity"] = ["A valid number is required."]
            quantity = 0.0
        if quantity < 0:
            errors["quantity"] = ["Ensure this value is greater than or equal to 0.", "Quantity must be greater than zero"]
        location = data.get("location")
        if location not in (None, "") and (not str(location).isdigit() or int(location) not in self.locations):
            errors["location"] = [invalid_pk(location)]
        batch = data.get("batch")
        if batch is not None and len(str(batch)) > MAX["batch"]:
            errors["batch"] = [too_long("batch")]
        if data.get("serial_numbers") and not self.parts[int(part)]["trackable"]:
            errors["serial_numbers"] = ["Serial numbers cannot be supplied for a non-trackable part"]
        if errors:
            return Response(400, errors)
        try:
            status = int(data.get("status", 10))
        except (TypeError, ValueError):
            status = 10
        if status not in STATUS_TEXT:
            status = 10  # silently replaced on create (CONTRACT.md surprise 3)
        pk = self._pk("stock")
        item = {**copy.deepcopy(STOCK_SHAPE), "pk": pk, "part": int(part), "quantity": quantity, "batch": batch,
                "location": int(location) if location not in (None, "") else None, "notes": data.get("notes"),
                "status": status, "status_custom_key": status, "status_text": STATUS_TEXT[status],
                "in_stock": quantity > 0, "updated": time.strftime("%Y-%m-%d %H:%M")}
        self.stock_items[pk] = item
        return Response(201, [self._stock_out(item)])  # create answers a list

    def _patch_stock(self, request: Request, pk: str) -> Response:
        item = self.stock_items.get(int(pk))
        if item is None:
            return Response(404, {"detail": "No StockItem matches the given query."})
        data, _ = self._form(request)
        refused = clean_text(data, STOCK_TEXT)
        if refused:
            return refused
        if "status" in data:
            try:
                status = int(data["status"])
            except (TypeError, ValueError):
                status = -1
            if status not in STATUS_TEXT:
                return Response(400, {"status": ["Invalid choice"]})
            item.update(status=status, status_custom_key=status, status_text=STATUS_TEXT[status])
        for key in ("notes", "batch"):
            if key in data:
                item[key] = data[key]
        return Response(200, self._stock_out(item))

    # --- parameters --------------------------------------------------------------------------
    def _list_templates(self, request: Request) -> Response:
        rows = list(self.templates.values())
        name = request.arg("name")
        if name is not None:
            rows = [t for t in rows if t["name"] == name]
        if request.arg("model_type") is not None:  # templates for every model do not match (57b)
            wanted = request.arg("model_type")
            rows = [t for t in rows if t["model_type"] in (wanted, f"part.{wanted}")]
        if request.arg("for_model") is not None:
            wanted = request.arg("for_model")
            rows = [t for t in rows if t["model_type"] in (None, wanted, f"part.{wanted}")]
        return self._page(request, rows)

    def _create_template(self, request: Request) -> Response:
        data, _ = self._form(request)
        if any(t["name"] == data.get("name") for t in self.templates.values()):
            return Response(400, {"name": ["Parameter Template with this Name already exists."]})
        if data.get("units", "") not in KNOWN_UNITS:
            return Response(400, {"units": ["Invalid physical unit"]})
        model_type = data.get("model_type")
        pk = self.add_template(data.get("name", ""), data.get("units", ""), data.get("description", ""),
                               f"part.{model_type}" if model_type and "." not in model_type else model_type)
        return Response(201, self.templates[pk])

    def _param_out(self, param: dict) -> dict:
        out = copy.deepcopy(param)
        out["template_detail"] = copy.deepcopy(self.templates.get(param["template"]))
        out["updated_by_detail"] = {k: USER[k] for k in ("pk", "username", "first_name", "last_name", "email")}
        return out

    def _convert(self, value: str, units: str) -> tuple[float | None, str | None]:
        text = str(value).strip()
        match = re.fullmatch(r"([-+]?\d+(?:\.\d+)?)\s*([A-Za-z]*)", text)
        if not units:
            try:
                return float(text), None
            except ValueError:
                return None, None
        if not match:
            return None, f"Could not convert {text} to {units}"
        number, unit = float(match.group(1)), match.group(2) or units
        factor = UNIT_FACTORS.get(units, {units: 1.0}).get(unit)
        if factor is None:
            return None, f"Could not convert {text} to {units}"
        return number * factor, None

    def _list_parameters(self, request: Request) -> Response:
        rows = list(self.parameters.values())
        model_type = request.arg("model_type")
        if model_type is not None:
            rows = [p for p in rows if p["model_type"] in (model_type, f"part.{model_type}")]
        for field in ("model_id", "template"):
            value = request.arg(field)
            if value is not None:
                if not value.isdigit():
                    return self._choice_error(field)
                rows = [p for p in rows if p[field] == int(value)]
        return self._page(request, [self._param_out(p) for p in rows])

    def _create_parameter(self, request: Request) -> Response:
        data, _ = self._form(request)
        model_type = data.get("model_type")
        if not model_type:
            return Response(500, {"error": "ValueError", "error_class": "<class 'ValueError'>",
                                  "detail": "Cannot assign \"''\": \"Parameter.model_type\" must be a "
                                            "\"ContentType\" instance.", "path": request.path, "status_code": 500})
        if model_type not in ("part", "part.part"):
            return Response(400, {"model_type": ["Content type not found"]})
        template = data.get("template")
        if not str(template).isdigit() or int(template) not in self.templates:
            return Response(400, {"template": [invalid_pk(template)]})
        value = data.get("data")
        if value is None or str(value).strip() == "":
            return Response(400, {"data": ["This field may not be blank."]})
        if len(str(value)) > MAX["data"]:
            return Response(400, {"data": [too_long("data")]})
        numeric, error = self._convert(value, self.templates[int(template)]["units"])
        if error:
            return Response(400, {"data": [error]})
        model_id = int(data.get("model_id") or 0)  # not validated by the server (surprise 5)
        if any(p["model_id"] == model_id and p["template"] == int(template) for p in self.parameters.values()):
            return Response(400, {"non_field_errors": ["The fields model_type, model_id, template must make a "
                                                       "unique set."]})
        pk = self._pk("parameter")
        self.parameters[pk] = {"pk": pk, "template": int(template), "model_type": "part.part", "model_id": model_id,
                               "data": str(value), "data_numeric": numeric, "note": data.get("note", ""),
                               "updated": time.strftime("%Y-%m-%d %H:%M"), "updated_by": 1}
        return Response(201, self._param_out(self.parameters[pk]))

    def _patch_parameter(self, request: Request, pk: str) -> Response:
        param = self.parameters.get(int(pk))
        if param is None:
            return Response(404, {"detail": "No Parameter matches the given query."})
        data, _ = self._form(request)
        if "data" in data:
            if str(data["data"]).strip() == "":
                return Response(400, {"data": ["This field may not be blank."]})
            numeric, error = self._convert(data["data"], self.templates[param["template"]]["units"])
            if error:
                return Response(400, {"data": [error]})
            param.update(data=str(data["data"]), data_numeric=numeric)
        return Response(200, self._param_out(param))

    def _delete_parameter(self, request: Request, pk: str) -> Response:
        if self.parameters.pop(int(pk), None) is None:
            return Response(404, {"detail": "No Parameter matches the given query."})
        return Response(204, None)

    # --- demo --------------------------------------------------------------------------------
    def demo_listing(self) -> dict:
        """A browsable summary for the demo (not part of InvenTree's API)."""
        return {"note": "InvenTree stand-in (demo only)", "parts": [
            {"pk": p["pk"], "IPN": p["IPN"], "name": p["name"], "image": p["image"],
             "parameters": {self.templates[q["template"]]["name"]: q["data"] for q in self.parameters.values()
                            if q["model_id"] == p["pk"]},
             "stock_items": [{"pk": s["pk"], "batch": s["batch"], "quantity": s["quantity"], "notes": s["notes"]}
                             for s in self.stock_items.values() if s["part"] == p["pk"]]}
            for p in self.parts.values()]}


    def part_page(self, request: Request, pk: str) -> Response:
        """A small HTML page at the part URL InvenTree's web UI uses (not a copy of that UI): the
        part, its parameters, stock items and image, so the demo's links lead somewhere."""
        part = self.parts.get(int(pk))
        if part is None:
            return Response(404, b"<html><body>Part not found</body></html>", content_type="text/html")
        esc = html.escape
        params = "".join(f"<tr><td>{esc(self.templates[q['template']]['name'])}</td><td>{esc(str(q['data']))}</td></tr>"
                         for q in self.parameters.values() if q["model_id"] == part["pk"])
        stock = "".join(f"<tr><td>{s['pk']}</td><td>{esc(s['batch'] or '')}</td><td>{s['quantity']}</td>"
                        f"<td>{esc(s['notes'] or '')}</td></tr>"
                        for s in self.stock_items.values() if s["part"] == part["pk"])
        image = ""
        content = self.media.get((part.get("image") or "").removeprefix("/media/"))
        if content:  # inline: /media/ needs the API token, a browser has none
            mime = "image/png" if part["image"].endswith(".png") else "image/jpeg"
            image = f'<img alt="part image" src="data:{mime};base64,{base64.b64encode(content).decode()}">'
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(part['name'])}</title></head><body>"
                f"<p>InvenTree stand-in (demo only)</p><h1>{esc(part['name'])}</h1><p>IPN {esc(part['IPN'])}</p>"
                f"<p>{esc(part['description'] or '')}</p>{image}"
                f"<h2>Parameters</h2><table>{params}</table>"
                f"<h2>Stock items</h2><table><tr><th>pk</th><th>batch</th><th>quantity</th><th>notes</th></tr>"
                f"{stock}</table></body></html>")
        return Response(200, page.encode(), content_type="text/html; charset=utf-8")


def seed_demo(fake: FakeInvenTree) -> dict[str, int]:
    return {"INVENTREE_PART_CATEGORY_ID": fake.add_category("3D prints", "Finished 3D prints"),
            "INVENTREE_STOCK_LOCATION_ID": fake.add_location("Print farm", "Print farm output shelf"),
            "weight_template": fake.add_template("Weight", "g", "Print weight in grams"),
            "printtime_template": fake.add_template("PrintTime", "s", "Print duration in seconds")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="InvenTree stand-in (demo/tests only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--seed", choices=["none", "demo"], default="demo")
    parser.add_argument("--token")
    args = parser.parse_args(argv)
    fake = FakeInvenTree(args.host, args.port, token=args.token)
    ids = seed_demo(fake) if args.seed == "demo" else {}
    return serve_until_interrupted(fake, json.dumps({"url": fake.base_url, "token": fake.token, **ids}))


if __name__ == "__main__":
    raise SystemExit(main())
