"""An MQTT broker with TLS and a password, for tests, benchmarks and the demo.

It stands in for the printer's own broker: a self-signed CA and server certificate are made with
the openssl CLI (the server's CN is a serial, like a printer's), the user is `bblp` and the
password plays the access code. Bound to 127.0.0.1 only.

kind="mosquitto" runs a real mosquitto; kind="embedded" runs the small Python broker of
ingestion/embedded_broker.py in a background thread (same certificates, same password file);
kind="auto" (the default) is mosquitto when it is installed, else the embedded broker.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .embedded_broker import EmbeddedBroker, read_password_file, tls_context

MOSQUITTO_PATHS = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
BROKER_KINDS = ("auto", "mosquitto", "embedded")


class BrokerUnavailable(RuntimeError):
    pass


def _default_signals() -> None:
    """preexec_fn: mosquitto gets default signals even from a parent that ignores SIGINT/SIGTERM
    (same as orchestration.processes.default_signals; ingestion does not import orchestration)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


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
    """`with DevBroker() as broker:` starts a broker; broker.host/port/username/password/ca_file.

    broker.kind is what runs ("mosquitto" or "embedded"), whatever was asked for.
    """

    username: str = "bblp"
    password: str = ""
    port: int = 0
    host: str = "127.0.0.1"
    workdir: Path | None = None
    kind: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in BROKER_KINDS:
            raise ValueError(f"broker kind must be one of {', '.join(BROKER_KINDS)}, not {self.kind!r}")
        self.requested_kind = self.kind
        binary = find_mosquitto() if self.kind != "embedded" else None
        if binary is None and self.kind == "mosquitto":
            raise BrokerUnavailable("mosquitto not found: install it (apt-get install mosquitto)")
        self.kind = "mosquitto" if binary else "embedded"
        self.binary = binary
        self.password = self.password or secrets.token_hex(8)
        self._tmp = None
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="printfarm-broker-")
            self.workdir = Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.proc: subprocess.Popen | None = None
        self.embedded: EmbeddedBroker | None = None
        self.config_file: Path | None = None
        self.ca_file, cert, key = make_certificates(self.workdir)
        passwd = self.workdir / "passwd"
        passwd.write_text(password_line(self.username, self.password) + "\n")
        passwd.chmod(0o600)
        if self.kind == "embedded":
            self.embedded = EmbeddedBroker(self.host, self.port, users=read_password_file(passwd),
                                           ssl_context=tls_context(cert, key))
            return
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

    def describe(self) -> str:
        """One line for a person: which broker runs, and where."""
        if self.kind == "mosquitto":
            what = f"mosquitto ({self.binary})"
        else:
            why = " (mosquitto not installed)" if self.requested_kind == "auto" else ""
            what = f"embedded Python MQTT broker{why}"
        return f"{what}, TLS + password on {self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "DevBroker":
        if self.embedded is not None:
            try:
                self.embedded.start(timeout)
            except (OSError, TimeoutError) as exc:
                raise BrokerUnavailable(f"embedded MQTT broker could not listen on {self.host}:{self.port}: "
                                        f"{exc}") from exc
            return self
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config_file)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_default_signals)
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
        if self.embedded is not None:
            self.embedded.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # by pid: this broker only, never `pkill mosquitto`
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
