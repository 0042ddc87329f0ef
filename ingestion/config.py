"""Settings of the logger service.

Read from a JSON file (LOGGER_CONFIG, default ingestion/config.json) in either shape:
- the original single-printer shape: {"printer_ip", "access_code", "serial_number",
  "check_interval", "db_file"};
- a printer list: {"printers": [{"name", "host", "port" (8883), "serial", "access_code",
  "username" ("bblp"), "ca_file", "tls_verify"}], "db_file"}.
Environment variables override the file: DATA_DIR (db at DATA_DIR/print_history.db unless
db_file), PRINTER_IP / PRINTER_SERIAL / PRINTER_ACCESS_CODE / PRINTER_NAME / PRINTER_PORT
(one printer, replacing the file's printers), MQTT_CA_FILE (CA for every printer),
MQTT_TLS_VERIFY, HEARTBEAT_INTERVAL_SECONDS. Validated at start; errors name the field.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DEFAULT_CONFIG_PATH = Path(__file__).with_name("config.json")
MQTT_USERNAME = "bblp"


class ConfigError(ValueError):
    """The logger's configuration is invalid; the message names the field."""


@dataclass(frozen=True)
class PrinterConfig:
    serial: str
    host: str
    access_code: str = field(repr=False)
    name: str = ""
    port: int = 8883
    username: str = MQTT_USERNAME
    ca_file: str | None = None
    tls_verify: bool = False   # printers present a self-signed cert whose CN is the serial

    @property
    def display_name(self) -> str:
        return self.name or self.serial

    @property
    def report_topic(self) -> str:
        return f"device/{self.serial}/report"

    @property
    def request_topic(self) -> str:
        return f"device/{self.serial}/request"


@dataclass(frozen=True)
class LoggerSettings:
    printers: tuple[PrinterConfig, ...]
    db_path: Path
    heartbeat_interval: float = 5.0
    flush_interval: float = 0.2
    max_batch: int = 2000
    # MQTT keep-alive: a sleeping printer leaves a half-open link that only an unanswered ping reveals.
    keepalive: int = 30

    @property
    def heartbeat_file(self) -> Path:
        return self.db_path.with_name("logger.heartbeat")

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, config_path: str | Path | None = None) -> "LoggerSettings":
        env = os.environ if environ is None else environ
        path = Path(config_path or env.get("LOGGER_CONFIG") or DEFAULT_CONFIG_PATH)
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: the top level must be an object")
        elif env.get("LOGGER_CONFIG"):
            raise ConfigError(f"LOGGER_CONFIG={path} does not exist")
        return cls.from_mapping(data, env)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], env: Mapping[str, str]) -> "LoggerSettings":
        ca_default = env.get("MQTT_CA_FILE") or data.get("ca_file")
        verify_default = _bool("MQTT_TLS_VERIFY", env.get("MQTT_TLS_VERIFY", str(data.get("tls_verify", False))))
        if env.get("PRINTER_IP") or env.get("PRINTER_SERIAL") or env.get("PRINTER_ACCESS_CODE"):
            raw_printers = [{"host": env.get("PRINTER_IP", ""), "serial": env.get("PRINTER_SERIAL", ""),
                             "access_code": env.get("PRINTER_ACCESS_CODE", ""), "name": env.get("PRINTER_NAME", ""),
                             "port": env.get("PRINTER_PORT", "8883")}]
            where = "env"
        elif "printers" in data:
            raw_printers = data["printers"]
            if not isinstance(raw_printers, list) or not raw_printers:
                raise ConfigError("printers: must be a non-empty list")
            where = "printers"
        elif any(k in data for k in ("printer_ip", "serial_number", "access_code")):
            raw_printers = [{"host": data.get("printer_ip"), "serial": data.get("serial_number"),
                             "access_code": data.get("access_code"), "name": data.get("name", "")}]
            where = "config"
        else:
            raise ConfigError("no printer configured: set printers[] (or printer_ip, serial_number, access_code) "
                              "in ingestion/config.json, or PRINTER_IP, PRINTER_SERIAL, PRINTER_ACCESS_CODE")
        printers = tuple(_printer(p, i, where, ca_default, verify_default) for i, p in enumerate(raw_printers))
        serials = [p.serial for p in printers]
        dupes = sorted({s for s in serials if serials.count(s) > 1})
        if dupes:
            raise ConfigError(f"printers: serial {dupes[0]} is configured twice")
        if env.get("DATA_DIR"):
            db_path = Path(env["DATA_DIR"]) / "print_history.db"
        elif data.get("db_file"):
            db_path = Path(str(data["db_file"]))
        else:
            db_path = Path("data") / "print_history.db"
        interval = env.get("HEARTBEAT_INTERVAL_SECONDS") or data.get("check_interval") or 5
        try:
            heartbeat = float(interval)
            if heartbeat <= 0:
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"check_interval / HEARTBEAT_INTERVAL_SECONDS={interval!r}: must be a positive number") from None
        return cls(printers=printers, db_path=db_path, heartbeat_interval=min(heartbeat, 30.0))


def _field_name(where: str, index: int, key: str) -> str:
    if where == "printers":
        return f"printers[{index}].{key}"
    if where == "env":
        return {"host": "PRINTER_IP", "serial": "PRINTER_SERIAL", "access_code": "PRINTER_ACCESS_CODE",
                "port": "PRINTER_PORT"}.get(key, key)
    return {"host": "printer_ip", "serial": "serial_number", "access_code": "access_code"}.get(key, key)


def _printer(raw: Any, index: int, where: str, ca_default: str | None, verify_default: bool) -> PrinterConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"printers[{index}]: must be an object")
    values: dict[str, Any] = {}
    for key in ("host", "serial", "access_code"):
        value = raw.get(key)
        if key == "host" and value is None:
            value = raw.get("printer_ip")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{_field_name(where, index, key)}: missing or empty")
        values[key] = value.strip()
    try:
        port = int(raw.get("port", 8883))
        if not 0 < port < 65536:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{_field_name(where, index, 'port')}: {raw.get('port')!r} is not a TCP port") from None
    ca_file = raw.get("ca_file") or ca_default
    if ca_file and not Path(ca_file).exists():
        raise ConfigError(f"{_field_name(where, index, 'ca_file')} / MQTT_CA_FILE: {ca_file} does not exist")
    verify = raw.get("tls_verify", verify_default)
    return PrinterConfig(serial=values["serial"], host=values["host"], access_code=values["access_code"],
                         name=str(raw.get("name") or ""), port=port,
                         username=str(raw.get("username") or MQTT_USERNAME),
                         ca_file=ca_file, tls_verify=bool(verify))


def _bool(name: str, raw: str) -> bool:
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={raw!r}: use true or false")
