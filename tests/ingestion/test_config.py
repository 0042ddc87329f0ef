"""Logger configuration: both file shapes, env overrides, errors naming the field."""

import json
import os
import subprocess
import sys

import pytest

from ingestion.config import ConfigError, LoggerSettings


def load(tmp_path, data, env=None):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return LoggerSettings.load(environ=env or {}, config_path=path)


def test_original_single_printer_shape(tmp_path):
    s = load(tmp_path, {"printer_ip": "192.168.1.50", "access_code": "12345678", "serial_number": "01P00A000000001",
                        "check_interval": 10, "db_file": str(tmp_path / "x.db")})
    (p,) = s.printers
    assert (p.host, p.serial, p.port, p.username) == ("192.168.1.50", "01P00A000000001", 8883, "bblp")
    assert s.db_path == tmp_path / "x.db" and s.heartbeat_interval == 10
    assert "12345678" not in repr(s)


def test_printer_list_and_env_overrides(tmp_path):
    data = {"printers": [{"name": "X1C left", "host": "10.0.0.2", "serial": "00M00A000000001", "access_code": "a"},
                         {"name": "P1S", "host": "10.0.0.3", "port": 8884, "serial": "01P00A000000002",
                          "access_code": "b"}]}
    s = load(tmp_path, data, env={"DATA_DIR": str(tmp_path / "d")})
    assert [p.display_name for p in s.printers] == ["X1C left", "P1S"]
    assert s.printers[1].port == 8884
    assert s.db_path == tmp_path / "d" / "print_history.db"
    env = {"PRINTER_IP": "10.9.9.9", "PRINTER_SERIAL": "S9", "PRINTER_ACCESS_CODE": "c"}
    (only,) = load(tmp_path, data, env=env).printers
    assert (only.host, only.serial) == ("10.9.9.9", "S9")


@pytest.mark.parametrize("data, env, named", [
    ({"printers": [{"host": "h", "access_code": "a"}]}, {}, "printers[0].serial"),
    ({"printers": [{"host": "h", "serial": "s", "access_code": "a", "port": "x"}]}, {}, "printers[0].port"),
    ({"printers": [{"host": "h", "serial": "s", "access_code": ""}]}, {}, "printers[0].access_code"),
    ({"printers": []}, {}, "printers"),
    ({"printer_ip": "h", "serial_number": "s"}, {}, "access_code"),
    ({}, {"PRINTER_IP": "h", "PRINTER_ACCESS_CODE": "a"}, "PRINTER_SERIAL"),
    ({}, {}, "no printer configured"),
    ({"printers": [{"host": "h", "serial": "s", "access_code": "a"}] * 2}, {}, "configured twice"),
    ({"printers": [{"host": "h", "serial": "s", "access_code": "a", "ca_file": "/nope.pem"}]}, {}, "ca_file"),
])
def test_errors_name_the_field(tmp_path, data, env, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        load(tmp_path, data, env)


def test_cli_reports_config_error_without_the_access_code(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"printers": [{"host": "h", "serial": "s", "access_code": "SECRET-CODE-1",
                                              "port": 70000}]}))
    env = {**os.environ, "LOGGER_CONFIG": str(path), "DATA_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "ingestion"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "printers[0].port" in proc.stderr
    assert "SECRET-CODE-1" not in proc.stderr + proc.stdout
