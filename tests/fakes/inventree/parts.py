"""Parts: list, create, get, PATCH, the part image (upload and /media/) and the HTML part page."""

from __future__ import annotations

import base64
import copy
import html
import secrets
from typing import Any

from ..http import Request, Response
from .shapes import LIST_OMITS, MAX, PART_SHAPE, invalid_pk, too_long
from .validation import PART_TEXT, clean_text, valid_image


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


class PartsMixin:
    """Part endpoints of FakeInvenTree (uses its tables and the helpers of the server core)."""

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

    def _refuse_part(self, data: dict, current: dict | None) -> Response | None:
        """What the server refuses in a part create or patch alike: the text rule first, then the fields."""
        refused = clean_text(data, PART_TEXT)
        if refused:
            return refused
        errors = self._validate_part(data, current)
        return Response(400, errors) if errors else None

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
        refused = self._refuse_part(data, None)
        if refused:
            return refused
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
        refused = self._refuse_part(data, part)
        if refused:
            return refused
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
