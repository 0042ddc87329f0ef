"""Parameter templates and parameters, with the unit conversion of parameter values."""

from __future__ import annotations

import copy
import re
import time

from ..http import Request, Response
from .shapes import KNOWN_UNITS, MAX, UNIT_FACTORS, USER, invalid_pk, too_long


class ParametersMixin:
    """Template and parameter endpoints of FakeInvenTree (uses its tables and the helpers of the server core)."""

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
