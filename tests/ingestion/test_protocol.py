"""Report parsing and merging. Contract: tests/contracts/mqtt/PROTOCOL.md section 4 and the
real samples in tests/contracts/mqtt/samples/ (see SOURCES.md)."""

import json

import pytest

from ingestion.protocol import BadPayload, active_tray, merge_report, parse_report


def test_every_sample_parses_and_merges(samples_dir):
    files = sorted(samples_dir.glob("*.json"))
    assert len(files) >= 10
    for path in files:
        data = parse_report(path.read_bytes())
        if "print" in data:
            state = merge_report({}, data["print"])
            # merging the same full report again changes nothing
            assert merge_report(json.loads(json.dumps(state)), data["print"]) == state


def test_delta_updates_only_its_fields(samples_dir):
    full = json.loads((samples_dir / "03_p1p_failed_pushall_lan.json").read_text())["print"]
    delta = json.loads((samples_dir / "13_p1s_idle_delta_msg1.json").read_text())["print"]
    state = merge_report({}, full)
    before = json.loads(json.dumps(state))
    merge_report(state, delta)
    assert state["bed_temper"] == delta["bed_temper"]
    assert state["gcode_state"] == before["gcode_state"] == "FAILED"  # absent = unchanged
    assert state["subtask_name"] == "Fidget Collection"


def test_ams_units_and_trays_merge_by_id(samples_dir):
    state = merge_report({}, json.loads((samples_dir / "01_x1c_finish_pushall_cloud.json").read_text())["print"])
    units = {u["id"]: u for u in state["ams"]["ams"]}
    assert len(units) == 4
    first_tray = units["0"]["tray"][0]
    assert first_tray.get("tray_type")
    # SYNTHETIC delta: one tray's remaining changes, another slot is emptied ({id} only).
    merge_report(state, {"ams": {"ams": [{"id": "0", "tray": [{"id": "0", "remain": 7}, {"id": "1"}]}]}})
    unit0 = {u["id"]: u for u in state["ams"]["ams"]}["0"]
    trays = {t["id"]: t for t in unit0["tray"]}
    assert trays["0"]["remain"] == 7 and trays["0"]["tray_type"] == first_tray["tray_type"]
    assert trays["1"] == {"id": "1"}  # an empty slot replaces the old spool
    assert len(state["ams"]["ams"]) == 4  # other units untouched


def test_hms_is_replaced_whole():
    state = merge_report({}, {"hms": [{"attr": 1, "code": 2}, {"attr": 3, "code": 4}]})
    merge_report(state, {"hms": []})
    assert state["hms"] == []


def test_active_tray_resolves_global_index(samples_dir):
    state = merge_report({}, json.loads((samples_dir / "09_x1_running_pushall_cloud.json").read_text())["print"])
    assert state["ams"]["tray_now"] == "128"  # the AMS HT's single slot
    tray = active_tray(state)
    assert tray is not None and tray["id"] == "0" and tray.get("tray_type")
    state["ams"]["tray_now"] = "255"
    assert active_tray(state) is None


@pytest.mark.parametrize("payload, reason", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a non-empty JSON object"),
    (b'{"print": "x"}', "'print' is not an object"),
    (b'{"print": {"gcode_state": 5}}', "print.gcode_state"),
    (b'{"print": {"mc_percent": [1]}}', "print.mc_percent"),
    (b'{"print": {"ams": []}}', "print.ams"),
    (b"\xff\xfe\x00", "not JSON"),
    (b'{"print": {"x": "' + b"a" * (1024 * 1024) + b'"}}', "too large"),
])
def test_bad_payloads_are_rejected_with_a_reason(payload, reason):
    with pytest.raises(BadPayload, match=reason):
        parse_report(payload)
