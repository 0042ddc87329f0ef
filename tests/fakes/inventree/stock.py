"""Stock items: list, create (answering a list), get and PATCH."""

from __future__ import annotations

import copy
import time

from ..http import Request, Response
from .shapes import MAX, STATUS_TEXT, STOCK_PART_DETAIL_KEYS, STOCK_SHAPE, invalid_pk, too_long
from .validation import STOCK_TEXT, clean_text


class StockMixin:
    """Stock item endpoints of FakeInvenTree (uses its tables and the helpers of the server core)."""

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
