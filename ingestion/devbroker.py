"""A real mosquitto broker with TLS and a password, for tests, benchmarks and the demo.

It stands in for the printer's own broker: a self-signed CA and server certificate are made with
the openssl CLI (the server's CN is a serial, like a printer's), the user is `bblp` and the
password plays the access code. Bound to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO_PATHS = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerUnavailable(RuntimeError):
    pass


def find_mosquitto() -> str | None:
    for candidate in MOSQUITTO_PATHS:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificates(directory: Path, common_name: str = "01S00C000000001") -> tuple[Path, Path, Path]:
    """CA + server certificate (EC P-256: fast to make). Returns (ca.crt, server.crt, server.key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
            "-subj", "/CN=printfarm dev CA")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={common_name}")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "3650")
    return directory / "ca.crt", directory / "server.crt", directory / "server.key"


def password_line(username: str, password: str) -> str:
    """mosquitto 2's PBKDF2-SHA512 password format ($7$), as mosquitto_passwd writes it."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return f"{username}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass
class DevBroker:
    """`with DevBroker() as broker:` starts mosquitto; broker.host/port/username/password/ca_file."""

    username: str = "bblp"
    password: str = ""
    port: int = 0
    host: str = "127.0.0.1"
    workdir: Path | None = None

    def __post_init__(self) -> None:
        self.password = self.password or secrets.token_hex(8)
        self._tmp = None
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="printfarm-broker-")
            self.workdir = Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.proc: subprocess.Popen | None = None
        binary = find_mosquitto()
        if binary is None:
            raise BrokerUnavailable("mosquitto not found: install it (apt-get install mosquitto)")
        self.binary = binary
        self.ca_file, cert, key = make_certificates(self.workdir)
        passwd = self.workdir / "passwd"
        passwd.write_text(password_line(self.username, self.password) + "\n")
        passwd.chmod(0o600)
        self.config_file = self.workdir / "mosquitto.conf"
        self.config_file.write_text("\n".join([
            f"listener {self.port} {self.host}",
            f"cafile {self.ca_file}", f"certfile {cert}", f"keyfile {key}",
            "allow_anonymous false", f"password_file {passwd}",
            "persistence false",
            # Started as root, mosquitto would switch to user "mosquitto", who cannot read our files.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            # Never drop a report because a subscriber is briefly slow.
            "max_queued_messages 0", "max_inflight_messages 0",
            "log_type error", "log_type warning", "log_type notice",
            f"log_dest file {self.workdir / 'mosquitto.log'}",
            "",
        ]))

    def start(self, timeout: float = 10.0) -> "DevBroker":
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config_file)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.workdir / "mosquitto.log")
                detail = log.read_text()[-500:] if log.exists() else ""
                raise BrokerUnavailable(f"mosquitto exited with {self.proc.returncode}: {detail}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"mosquitto did not listen on {self.host}:{self.port} within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "DevBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def env(self) -> dict[str, str]:
        """Settings for a logger process pointed at this broker (serial filled in by the caller)."""
        return {"MQTT_CA_FILE": str(self.ca_file)}
