"""The InvenTree stand-in's core: routes, seeding, auth, list paging, request bodies, categories,
locations and the demo listing. The endpoints of each domain live in parts.py, stock.py and
parameters.py."""

from __future__ import annotations

import base64
import copy
import email.parser
import email.policy
import hmac
import secrets
from datetime import date
from typing import Any
from urllib.parse import urlencode

from ..http import FakeServer, Request, Response
from .parameters import ParametersMixin
from .parts import PartsMixin
from .shapes import CATEGORY_SHAPE, LOCATION_SHAPE, ROOT, TEMPLATE_SHAPE, USER
from .stock import StockMixin


class FakeInvenTree(PartsMixin, StockMixin, ParametersMixin, FakeServer):
    """The stand-in server; the endpoints of parts, stock and parameters come from the mixins."""

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

    # --- request bodies ----------------------------------------------------------------------
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

    # --- categories and locations ------------------------------------------------------------
    def _create_category(self, request: Request) -> Response:
        data, _ = self._form(request)
        return Response(201, self.categories[self.add_category(data.get("name", ""), data.get("description", ""))])

    def _create_location(self, request: Request) -> Response:
        data, _ = self._form(request)
        return Response(201, self.locations[self.add_location(data.get("name", ""), data.get("description", ""))])

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


def seed_demo(fake: FakeInvenTree) -> dict[str, int]:
    return {"INVENTREE_PART_CATEGORY_ID": fake.add_category("3D prints", "Finished 3D prints"),
            "INVENTREE_STOCK_LOCATION_ID": fake.add_location("Print farm", "Print farm output shelf"),
            "weight_template": fake.add_template("Weight", "g", "Print weight in grams"),
            "printtime_template": fake.add_template("PrintTime", "s", "Print duration in seconds")}
