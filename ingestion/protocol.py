"""The Bambu Lab local-MQTT report model: parsing and merging reports (no I/O here).

P1/A1 printers send deltas (`msg: 1`), X1 printers full objects; both are deep-merged into one
state dict per printer as tests/contracts/mqtt/PROTOCOL.md section 4 describes:
dicts merge recursively, scalars overwrite, `ams.ams[]` and `tray[]` merge by `id`, a tray
reported as only {id} or {id, state} is an empty slot and replaces the old one, `hms[]` is
replaced whole, and an absent field means "unchanged".
"""

from __future__ import annotations

import copy
import json
from typing import Any

MAX_PAYLOAD_BYTES = 1024 * 1024
# Real reports nest 8 levels deep; far deeper ones would exhaust the recursion of merge/copy/dump.
MAX_DEPTH = 32
_INT64 = (-(2**63), 2**63 - 1)  # what an SQLite INTEGER column holds
PUSHALL_REQUEST = {"pushing": {"sequence_id": "0", "command": "pushall", "version": 1, "push_target": 1}}

# Fields the job logic reads, with the JSON types a printer may send for them (types drift
# between firmwares, PROTOCOL.md pitfall 5: ids may be "" and numbers may come as strings).
_NUMERIC = (int, float, str)
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "gcode_state": (str,),
    "mc_percent": _NUMERIC,
    "mc_remaining_time": _NUMERIC,
    "layer_num": _NUMERIC,
    "total_layer_num": _NUMERIC,
    "print_error": _NUMERIC,
    "mc_print_error_code": _NUMERIC,
    "task_id": (str, int),
    "subtask_id": (str, int),
    "project_id": (str, int),
    "profile_id": (str, int),
    "subtask_name": (str,),
    "gcode_file": (str,),
    "print_type": (str,),
    "gcode_start_time": _NUMERIC,
    "hms": (list,),
    "ams": (dict,),
    "vt_tray": (dict,),
    "msg": (int,),
}
_EMPTY_TRAY_KEYS = ({"id"}, {"id", "state"})


class BadPayload(ValueError):
    """A report that cannot be used; it is quarantined with this reason."""


def parse_report(payload: bytes | str) -> dict[str, Any]:
    """Decode one MQTT payload; raise BadPayload with a short reason if it is unusable."""
    size = len(payload)
    if size > MAX_PAYLOAD_BYTES:
        raise BadPayload(f"payload too large ({size} bytes > {MAX_PAYLOAD_BYTES})")
    try:
        data = json.loads(payload)
    except RecursionError:
        raise BadPayload(f"not JSON we accept: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, ints over 4300 digits
        raise BadPayload(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise BadPayload("top level is not a non-empty JSON object")
    if _too_deep(data):
        raise BadPayload(f"not JSON we accept: nested deeper than {MAX_DEPTH} levels")
    if _has_lone_surrogate(payload, data):
        raise BadPayload("not JSON we accept: a \\u escape is an unpaired UTF-16 surrogate")
    report = data.get("print")
    if report is not None:
        if not isinstance(report, dict):
            raise BadPayload("'print' is not an object")
        for key, types in FIELD_TYPES.items():
            if key in report and report[key] is not None and not isinstance(report[key], types):
                raise BadPayload(f"print.{key} has type {type(report[key]).__name__}")
            if isinstance(report.get(key), bool):  # bool is an int subclass; never valid here
                raise BadPayload(f"print.{key} has type bool")
    return data


def _too_deep(data: Any) -> bool:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return False


def _has_lone_surrogate(payload: bytes | str, data: dict[str, Any]) -> bool:
    """json turns "\\ud800" into a str that cannot be encoded (SQLite would refuse the row)."""
    if b"\\u" not in (payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload):
        return False
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def is_status_report(data: dict[str, Any]) -> bool:
    report = data.get("print")
    return isinstance(report, dict) and report.get("command", "push_status") == "push_status"


def is_full_report(report: dict[str, Any]) -> bool:
    """msg 0 is a full report; X1 firmware sometimes omits msg but always sends gcode_state."""
    msg = report.get("msg")
    return msg == 0 or (msg is None and "gcode_state" in report)


def merge_report(state: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge a `print` object into the printer state, in place; returns the state."""
    for key, value in delta.items():
        if key == "hms":
            state[key] = copy.deepcopy(value)
        elif key == "ams" and isinstance(value, dict):
            if not isinstance(state.get("ams"), dict):
                state["ams"] = {}  # an earlier report sent "ams": null
            _merge_ams(state["ams"], value)
        elif isinstance(value, dict) and isinstance(state.get(key), dict):
            merge_report(state[key], value)
        else:
            state[key] = copy.deepcopy(value)
    return state


def _merge_ams(state: dict[str, Any], delta: dict[str, Any]) -> None:
    for key, value in delta.items():
        if key == "ams" and isinstance(value, list):
            state["ams"] = _merge_by_id(state.get("ams") or [], value, _merge_unit)
        elif isinstance(value, dict) and isinstance(state.get(key), dict):
            merge_report(state[key], value)
        else:
            state[key] = copy.deepcopy(value)


def _merge_unit(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(old)
    for key, value in new.items():
        if key == "tray" and isinstance(value, list):
            merged["tray"] = _merge_by_id(old.get("tray") or [], value, _merge_tray)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merge_report(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_tray(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    if set(new) in _EMPTY_TRAY_KEYS:
        return copy.deepcopy(new)  # an emptied slot: forget the old spool
    merged = copy.deepcopy(old)
    merge_report(merged, new)
    return merged


def _merge_by_id(old: list, new: list, merge_item) -> list:
    """Arrays of objects with `id` merge item by item; anything else is replaced whole."""
    if not all(isinstance(x, dict) and "id" in x for x in new):
        return copy.deepcopy(new)
    if not isinstance(old, list):
        old = []  # an earlier report sent a scalar or an object where the array goes
    by_id = {str(x.get("id")): x for x in old if isinstance(x, dict)}
    order = [str(x.get("id")) for x in old if isinstance(x, dict)]
    for item in new:
        key = str(item["id"])
        if key in by_id:
            by_id[key] = merge_item(by_id[key], item)
        else:
            by_id[key] = copy.deepcopy(item)
            order.append(key)
    return [by_id[k] for k in order]


def active_tray(state: dict[str, Any]) -> dict[str, Any] | None:
    """The spool in use: ams.tray_now is a global slot index (unit*4 + slot), 254 = external spool, 255 = none."""
    ams = state.get("ams") or {}
    now = str(ams.get("tray_now", "") or "")
    if not now.isdecimal() or now == "255":
        return None
    if now == "254":
        tray = state.get("vt_tray")
        return tray if isinstance(tray, dict) else None
    index = int(now)
    # AMS/AMS lite units 0..3 have four slots; an AMS HT (unit id 128+) has one (sample 09).
    unit_id, slot = (str(index), "0") if index >= 128 else (str(index // 4), str(index % 4))
    # Only ams.ams itself is type-checked on arrival: skip units and trays of any other shape.
    for unit in _dicts(ams.get("ams")):
        if str(unit.get("id")) == unit_id:
            for tray in _dicts(unit.get("tray")):
                if str(tray.get("id")) == slot:
                    return tray
    return None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def as_int(value: Any) -> int | None:
    """Lenient number parsing for drifting firmware types ("759", 759, 759.0, "")."""
    if value is None or value == "":
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError, OverflowError):  # OverflowError: inf, "1e400", ints beyond float
        return None
    return number if _INT64[0] <= number <= _INT64[1] else None
