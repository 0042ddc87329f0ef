"""MQTT 3.1.1 wire format and checks for the embedded broker (ingestion/embedded_broker.py):
packet types and codes, mosquitto `$7$` passwords, the TLS context, topic filters, packet
encoding/decoding and one client's connection state."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ssl
from pathlib import Path

# Control packet types (section 2.2.1).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# CONNACK return codes (section 3.2.2.3).
ACCEPTED = 0x00
UNACCEPTABLE_PROTOCOL_VERSION = 0x01
IDENTIFIER_REJECTED = 0x02
BAD_USERNAME_OR_PASSWORD = 0x04
NOT_AUTHORIZED = 0x05

MAX_GRANTED_QOS = 1
MAX_PACKET_BYTES = 16 * 1024 * 1024
# Verified against when the user is unknown, so an unknown user costs as much as a wrong password.
_DUMMY_HASH = "$7$101$AAAAAAAAAAAAAAAA$" + base64.b64encode(bytes(64)).decode()


class MalformedPacket(Exception):
    """The client broke the protocol; its connection is closed."""


# --- passwords -----------------------------------------------------------------------------

def read_password_file(path: Path) -> dict[str, str]:
    """`user:$7$...` lines (mosquitto_passwd's format) -> {user: hash}."""
    users = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            user, _, stored = line.partition(":")
            users[user] = stored
    return users


def verify_password(stored: str, password: bytes) -> bool:
    """Check a password against a mosquitto `$7$<iterations>$<salt b64>$<sha512 b64>` hash."""
    parts = stored.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise ValueError("unsupported password hash (expected mosquitto's $7$ format)")
    iterations, salt, digest = int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4])
    computed = hashlib.pbkdf2_hmac("sha512", password, salt, iterations)
    return hmac.compare_digest(computed, digest)


def tls_context(cert_file: Path | str, key_file: Path | str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


# --- topics --------------------------------------------------------------------------------

def valid_filter(topic_filter: str) -> bool:
    """Section 4.7.1: `#` only as the whole last level, `+` only as a whole level."""
    if not topic_filter or "\0" in topic_filter:
        return False
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def valid_topic(topic: str) -> bool:
    return bool(topic) and "+" not in topic and "#" not in topic and "\0" not in topic


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Section 4.7: `a/#` matches `a` and everything below it; `+` one level; wildcards at the
    first level do not match topics starting with `$`."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels, topic_levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(topic_levels) or (level != "+" and level != topic_levels[i]):
            return False
    return len(filter_levels) == len(topic_levels)


# --- wire format ---------------------------------------------------------------------------

def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(kind: int, flags: int, body: bytes = b"") -> bytes:
    return bytes([kind << 4 | flags]) + _remaining_length(len(body)) + body


def _string(value: str) -> bytes:
    raw = value.encode()
    return len(raw).to_bytes(2, "big") + raw


class _Body:
    """Reads the variable header and payload of one packet; running short is malformed."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedPacket("packet shorter than its fields")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "big")

    def binary(self) -> bytes:
        return self._take(self.u16())

    def string(self) -> str:
        try:
            value = self.binary().decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("invalid UTF-8 string") from None
        if "\0" in value:
            raise MalformedPacket("U+0000 in a string")
        return value

    def rest(self) -> bytes:
        chunk, self.pos = self.data[self.pos:], len(self.data)
        return chunk

    def done(self) -> bool:
        return self.pos >= len(self.data)


class _Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.name = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.client_id: str | None = None
        self.keepalive = 0
        self.subscriptions: dict[str, int] = {}
        self.will: tuple[str, bytes, int, bool] | None = None
        self.qos2_pending: set[int] = set()
        self._packet_id = 0

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def deliver(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        header = _string(topic)
        if qos:
            self._packet_id = self._packet_id % 0xFFFF + 1
            header += self._packet_id.to_bytes(2, "big")
        self.send(_packet(PUBLISH, qos << 1 | int(retain), header + payload))
