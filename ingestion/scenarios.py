"""Simulated printers and print scenarios, modelled on the real reports in
tests/contracts/mqtt/samples (X1C sends full objects, P1S/A1 send deltas).

Parts of the lifecycle that have no real capture (PREPARE, PAUSE, mid-print deltas, the cancel
delta with print_error 50348044, FINISH -> IDLE) follow PROTOCOL.md and are synthetic.
A scenario is a list of steps; `Step.after` is printer time in seconds, divided by the
simulator's speed factor when replayed.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

CANCEL_CODE = 0x0300400C  # "task was cancelled"
FAULT_CODE = 0x0700_8011  # a filament-runout style fault (synthetic example)

MODELS = {
    # model: (sends full reports?, has mc_print_error_code?, AMS kind)
    "X1C": (True, True, "ams"),
    "P1S": (False, False, "ams"),
    "A1": (False, False, "ams_lite"),
}


def _tray(tray_id: str, tray_type: str, color: str) -> dict[str, Any]:
    return {"id": tray_id, "tray_type": tray_type, "tray_color": color, "remain": 80, "tag_uid": "0000000000000000",
            "tray_sub_brands": f"{tray_type} Basic", "nozzle_temp_min": "190", "nozzle_temp_max": "230"}


def idle_state(model: str) -> dict[str, Any]:
    """A full IDLE report in the shape of samples 01/03/07 (only the fields the logger reads
    and a few around them)."""
    state: dict[str, Any] = {
        "gcode_state": "IDLE", "print_type": "idle", "mc_percent": 0, "mc_remaining_time": 0,
        "layer_num": 0, "total_layer_num": 0, "print_error": 0, "task_id": "0", "subtask_id": "0",
        "project_id": "0", "profile_id": "0", "subtask_name": "", "gcode_file": "", "hms": [],
        "bed_temper": 24.0, "nozzle_temper": 25.0, "wifi_signal": "-52dBm", "spd_lvl": 2,
        "gcode_file_prepare_percent": "0", "mc_print_stage": "1", "mc_print_sub_stage": 0,
        "ams": {"ams": [{"id": "0", "humidity": "4", "temp": "24.5",
                         "tray": [_tray("0", "PLA", "FF0000FF"), _tray("1", "PETG", "00FF00FF"),
                                  _tray("2", "PLA", "FFFFFFFF"), {"id": "3"}]}],
                "tray_now": "255", "tray_pre": "255", "tray_tar": "255", "version": 4},
        "vt_tray": {"id": "254", "tray_type": "", "tray_color": "00000000"},
    }
    if MODELS[model][1]:
        state["mc_print_error_code"] = "0"
    return state


@dataclass
class Step:
    after: float                     # printer seconds to wait before this step
    changes: dict[str, Any] = field(default_factory=dict)
    full: bool = False               # send a full report (as after pushall / reconnect)
    note: str = ""


@dataclass
class Job:
    name: str
    duration_s: float = 7200
    cloud: bool = True
    layers: int = 120
    ticks: int = 6                   # progress reports while running
    file: str | None = None


_ids = itertools.count(700_000_001)


def reset_ids() -> None:
    """A restarted printer (or simulator process) numbers its tasks from the start again."""
    global _ids
    _ids = itertools.count(700_000_001)


def _job_ids(job: Job) -> dict[str, str]:
    if not job.cloud:
        return {"task_id": "0", "subtask_id": "0", "project_id": "0", "profile_id": "0"}
    task = next(_ids)
    return {"task_id": str(task), "subtask_id": str(task + 1), "project_id": "12345", "profile_id": "67890"}


def _gcode_file(job: Job) -> str:
    if job.file:
        return job.file
    return "/data/Metadata/plate_1.gcode" if job.cloud else f"{job.name}.gcode.3mf"


def start_steps(job: Job, tray_now: str = "0") -> list[Step]:
    ids = _job_ids(job)
    ident = {**ids, "subtask_name": job.name, "gcode_file": _gcode_file(job),
             "print_type": "cloud" if job.cloud else "local"}
    return [
        Step(2, {**ident, "gcode_state": "PREPARE", "gcode_file_prepare_percent": "0", "mc_percent": 0,
                 "total_layer_num": job.layers, "layer_num": 0, "mc_remaining_time": int(job.duration_s // 60),
                 "print_error": 0}, note="prepare"),
        Step(30, {"gcode_file_prepare_percent": "100", "bed_temper": 55.0}),
        Step(60, {"gcode_state": "RUNNING", "ams": {"tray_now": tray_now}, "nozzle_temper": 220.0}, note="running"),
    ]


def progress_steps(job: Job, upto: float = 1.0) -> list[Step]:
    steps = []
    ticks = max(1, int(job.ticks * upto))
    for i in range(1, ticks + 1):
        frac = i / (job.ticks + 1)
        steps.append(Step(job.duration_s / (job.ticks + 1), {
            "mc_percent": int(frac * 100), "layer_num": int(frac * job.layers),
            "mc_remaining_time": int(job.duration_s * (1 - frac) // 60), "bed_temper": 55.0 + i % 2 * 0.5}))
    return steps


def finish_steps(job: Job) -> list[Step]:
    return [
        Step(job.duration_s / (job.ticks + 1), {"gcode_state": "FINISH", "mc_percent": 100, "layer_num": job.layers,
                                                "mc_remaining_time": 0}, note="finish"),
        Step(20, {"print_type": "idle", "ams": {"tray_now": "255"}, "bed_temper": 40.0}),
    ]


def completed(job: Job) -> list[Step]:
    return start_steps(job) + progress_steps(job) + finish_steps(job)


def cancelled(job: Job) -> list[Step]:
    return start_steps(job) + progress_steps(job, 0.5) + [
        Step(10, {"print_error": CANCEL_CODE}, note="cancel"),
        Step(1, {"gcode_state": "FAILED"}),
        Step(2, {"print_error": 0, "print_type": "idle"}),  # the code is reset seconds later
    ]


def failed(job: Job, model: str) -> list[Step]:
    fault = {"print_error": FAULT_CODE}
    if MODELS[model][1]:
        fault["mc_print_error_code"] = str(FAULT_CODE)
    return start_steps(job) + progress_steps(job, 0.3) + [
        Step(10, fault, note="fault"),
        Step(5, {"gcode_state": "FAILED", "fail_reason": str(FAULT_CODE)}),
    ]


def paused_resumed(job: Job) -> list[Step]:
    return start_steps(job) + progress_steps(job, 0.5) + [
        Step(5, {"gcode_state": "PAUSE"}, note="pause"),
        Step(300, {"gcode_state": "RUNNING"}, note="resume"),
    ] + progress_steps(job, 0.5)[1:] + finish_steps(job)


def power_off(job: Job, model: str) -> list[Step]:
    """The printer dies mid-print and reboots: silence, then a full IDLE report."""
    reboot = idle_state(model)
    return start_steps(job) + progress_steps(job, 0.4) + [
        Step(600, reboot, full=True, note="rebooted idle"),
    ]


def duplicate_finish(job: Job) -> list[Step]:
    """FINISH is sticky: reconnects and pushalls re-deliver it (PROTOCOL.md pitfall 3)."""
    return completed(job) + [Step(30, {}, full=True, note="re-delivered FINISH"),
                             Step(30, {}, full=True, note="re-delivered FINISH")]


def back_to_back(job: Job) -> list[Step]:
    """The same LAN file printed twice in a row: two jobs."""
    lan = Job(job.name, job.duration_s, cloud=False, layers=job.layers, ticks=job.ticks)
    return completed(lan) + completed(lan)


# name -> (builder, expected job statuses in order)
SCENARIOS: dict[str, tuple[Any, list[str]]] = {
    "cloud_completed": (lambda m: completed(Job("Benchy", cloud=True)), ["completed"]),
    "lan_completed": (lambda m: completed(Job("Fidget Collection", cloud=False)), ["completed"]),
    "cancel": (lambda m: cancelled(Job("Cable clip")), ["cancelled"]),
    "failure": (lambda m: failed(Job("Vase", duration_s=5400), m), ["failed"]),
    "pause_resume": (lambda m: paused_resumed(Job("Hinge box")), ["completed"]),
    "power_off": (lambda m: power_off(Job("Gear set"), m), ["aborted"]),
    "duplicate_finish": (lambda m: duplicate_finish(Job("Spool holder")), ["completed"]),
    "back_to_back": (lambda m: back_to_back(Job("Keychain")), ["completed", "completed"]),
}

# The demo's mix: each printer runs a few scenarios back to back.
MIX = {
    "X1C": ["cloud_completed", "cancel", "cloud_completed"],
    "P1S": ["lan_completed", "failure", "back_to_back"],
    "A1": ["pause_resume", "duplicate_finish"],
}


def build(name: str, model: str) -> list[Step]:
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return SCENARIOS[name][0](model)


def expected(name: str) -> list[str]:
    return list(SCENARIOS[name][1])


class SimPrinterState:
    """The printer side of the protocol: a full state, and reports in the model's style."""

    def __init__(self, serial: str, model: str):
        if model not in MODELS:
            raise ValueError(f"unknown printer model {model!r}; known: {', '.join(MODELS)}")
        self.serial = serial
        self.model = model
        self.state = idle_state(model)
        self._seq = itertools.count(1)

    @property
    def sends_full(self) -> bool:
        return MODELS[self.model][0]

    def _envelope(self, body: dict[str, Any], msg: int) -> dict[str, Any]:
        return {"print": {**body, "command": "push_status", "msg": msg, "sequence_id": str(next(self._seq))}}

    def full_report(self) -> dict[str, Any]:
        return self._envelope(copy.deepcopy(self.state), 0)

    def apply(self, step: Step) -> dict[str, Any]:
        if step.full and step.changes:
            self.state = copy.deepcopy(step.changes)
        else:
            _merge(self.state, step.changes)
        if step.full or self.sends_full:
            return self.full_report()
        return self._envelope(copy.deepcopy(step.changes), 1)


def _merge(state: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(state.get(key), dict):
            _merge(state[key], value)
        else:
            state[key] = copy.deepcopy(value)
