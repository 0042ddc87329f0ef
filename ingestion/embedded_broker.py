"""A small MQTT 3.1.1 broker on asyncio: TLS + password, bound to 127.0.0.1, for the demo when
mosquitto is not installed (DevBroker(kind="embedded") wraps it).

What it does (MQTT 3.1.1, OASIS standard, sections 2-4): CONNECT with username/password checked
against mosquitto-format password hashes ($7$ PBKDF2-SHA512, as `devbroker.password_line` writes
them; compared with hmac.compare_digest), CONNACK 0x04 when credentials are missing and 0x05 when
they are wrong; SUBSCRIBE/UNSUBSCRIBE with `+` and `#` wildcards (granted QoS at most 1);
PUBLISH QoS 0, 1 (PUBACK) and 2 (PUBREC/PUBREL/PUBCOMP), delivered at min(publish QoS, granted
QoS); retained messages; last will; PINGREQ; DISCONNECT; keep-alive (1.5 x the client's value);
a client connecting with an id already in use takes the session over.

What it does not: persistent sessions (clean_session=0 is accepted but nothing is kept or
redelivered), MQTT 5, ACLs, outbound QoS 2. A malformed packet or a protocol violation closes
only the client that sent it. The broker runs in a background thread with its own event loop;
start()/stop()/restart() may be called from any other thread.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Mapping

from .embedded_broker_wire import (  # noqa: F401 - also re-exported for devbroker and the tests
    ACCEPTED, BAD_USERNAME_OR_PASSWORD, CONNACK, CONNECT, DISCONNECT, IDENTIFIER_REJECTED,
    MAX_GRANTED_QOS, MAX_PACKET_BYTES, MalformedPacket, NOT_AUTHORIZED, PINGREQ, PINGRESP, PUBACK,
    PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, SUBSCRIBE, UNACCEPTABLE_PROTOCOL_VERSION, UNSUBACK,
    UNSUBSCRIBE, _Body, _Client, _DUMMY_HASH, _packet, read_password_file, tls_context,
    topic_matches, valid_filter, valid_topic, verify_password,
)

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """`with EmbeddedBroker(users=..., ssl_context=...) as broker:`; broker.host / broker.port.

    users: {username: mosquitto `$7$` hash} (see read_password_file). ssl_context None serves
    plain TCP (tests only; DevBroker always passes TLS). port 0 picks a free port on the first
    start and keeps it across restarts.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, users: Mapping[str, str],
                 ssl_context: ssl.SSLContext | None, connect_timeout: float = 10.0,
                 max_packet_bytes: int = MAX_PACKET_BYTES):
        for stored in users.values():
            verify_password(stored, b"")  # fail now on a hash we cannot check
        self.host, self.port = host, port
        self.users = dict(users)
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.max_packet_bytes = max_packet_bytes
        self.connections_accepted = 0
        self.connections_refused = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._clients: dict[str, _Client] = {}
        self._tasks: set[asyncio.Task] = set()
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._stopping = False

    # --- lifecycle (any thread) ---------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> "EmbeddedBroker":
        if self.running:
            return self
        ready = threading.Event()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                        name=f"mqtt-broker-{self.host}:{self.port}")
        self._thread.start()
        if not ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"embedded MQTT broker did not start within {timeout}s")
        if self._startup_error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise self._startup_error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every client connection at once (like a broker going down)."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._request_stop)
            except RuntimeError:
                pass  # the loop has already finished
        thread.join(timeout)
        self._thread = None

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def client_ids(self) -> list[str]:
        """Ids of the clients connected now."""
        loop = self._loop
        if not self.running or loop is None:
            return []

        async def snapshot() -> list[str]:
            return sorted(self._clients)
        return asyncio.run_coroutine_threadsafe(snapshot(), loop).result(5)

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- event loop thread ----------------------------------------------------------------
    def _request_stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            if not ready.is_set():
                self._startup_error = exc
            else:
                log.exception("embedded MQTT broker stopped with an error")
        finally:
            ready.set()
            self._loop = None
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stop_event = asyncio.Event()
        self._stopping = False
        server = await asyncio.start_server(self._handle, self.host, self.port, ssl=self.ssl_context,
                                            ssl_handshake_timeout=self.connect_timeout if self.ssl_context else None)
        self.port = server.sockets[0].getsockname()[1]
        log.info("embedded MQTT broker listening on %s:%s (%s)", self.host, self.port,
                 "TLS" if self.ssl_context else "plain TCP")
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            self._stopping = True
            server.close()
            for client in list(self._clients.values()):
                client.writer.transport.abort()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()
            self._clients.clear()
            log.info("embedded MQTT broker on %s:%s stopped", self.host, self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        client = _Client(reader, writer)
        clean = False
        try:
            if await self._connect(client):
                clean = await self._session(client)
        except MalformedPacket as exc:
            log.warning("embedded MQTT broker: closing client %s (%s): %s", client.client_id or "-",
                        client.name, exc)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # broker stopping
        finally:
            self._tasks.discard(task)
            self._drop(client, publish_will=not clean)

    def _drop(self, client: _Client, publish_will: bool) -> None:
        if client.client_id is not None and self._clients.get(client.client_id) is client:
            del self._clients[client.client_id]
            if publish_will and client.will is not None and not self._stopping:
                self._route(*client.will)
        if self._stopping:
            client.writer.transport.abort()
        else:
            client.writer.close()

    async def _read_packet(self, reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
        first = (await reader.readexactly(1))[0]
        length, multiplier = 0, 1
        for _ in range(4):
            digit = (await reader.readexactly(1))[0]
            length += (digit & 0x7F) * multiplier
            if not digit & 0x80:
                break
            multiplier *= 128
        else:
            raise MalformedPacket("remaining length longer than 4 bytes")
        if length > self.max_packet_bytes:
            raise MalformedPacket(f"packet of {length} bytes exceeds {self.max_packet_bytes}")
        body = await reader.readexactly(length) if length else b""
        return first >> 4, first & 0x0F, body

    # --- CONNECT ----------------------------------------------------------------------
    async def _connect(self, client: _Client) -> bool:
        try:
            kind, flags, body = await asyncio.wait_for(self._read_packet(client.reader), self.connect_timeout)
        except asyncio.TimeoutError:
            log.info("embedded MQTT broker: %s sent no CONNECT within %ss", client.name, self.connect_timeout)
            return False
        if kind != CONNECT or flags:
            raise MalformedPacket("first packet is not CONNECT")
        r = _Body(body)
        protocol, level = r.string(), r.byte()
        if protocol not in ("MQTT", "MQIsdp"):
            raise MalformedPacket(f"unknown protocol name {protocol!r}")
        if (protocol, level) not in (("MQTT", 4), ("MQIsdp", 3)):
            client.send(_packet(CONNACK, 0, bytes([0, UNACCEPTABLE_PROTOCOL_VERSION])))
            return False
        cflags, keepalive = r.byte(), r.u16()
        clean_session, will_flag = bool(cflags & 0x02), bool(cflags & 0x04)
        will_qos, will_retain = (cflags >> 3) & 0x03, bool(cflags & 0x20)
        password_flag, username_flag = bool(cflags & 0x40), bool(cflags & 0x80)
        if cflags & 0x01:
            raise MalformedPacket("reserved CONNECT flag set")
        if will_qos == 3 or (not will_flag and (will_qos or will_retain)):
            raise MalformedPacket("invalid will flags")
        if password_flag and not username_flag:
            raise MalformedPacket("password without user name")
        client_id = r.string()
        will = None
        if will_flag:
            will_topic, will_payload = r.string(), r.binary()
            if not valid_topic(will_topic):
                raise MalformedPacket(f"invalid will topic {will_topic!r}")
            will = (will_topic, will_payload, will_qos, will_retain)
        username = r.string() if username_flag else None
        password = r.binary() if password_flag else None
        if not r.done():
            raise MalformedPacket("bytes after the CONNECT payload")

        code = self._authenticate(username, password)
        if code == ACCEPTED and not client_id:
            if clean_session:
                client_id = f"auto-{secrets.token_hex(8)}"
            else:
                code = IDENTIFIER_REJECTED
        if code != ACCEPTED:
            self.connections_refused += 1
            log.warning("embedded MQTT broker: refused %s (user %r): CONNACK %#04x", client.name, username, code)
            client.send(_packet(CONNACK, 0, bytes([0, code])))
            return False

        previous = self._clients.get(client_id)
        if previous is not None:  # section 3.1.4: the new connection takes the client id over
            log.info("embedded MQTT broker: client id %s reconnected; closing its old connection", client_id)
            self._drop(previous, publish_will=True)
        client.client_id, client.keepalive, client.will = client_id, keepalive, will
        self._clients[client_id] = client
        self.connections_accepted += 1
        client.send(_packet(CONNACK, 0, bytes([0, ACCEPTED])))
        return True

    def _authenticate(self, username: str | None, password: bytes | None) -> int:
        if username is None or password is None:
            return BAD_USERNAME_OR_PASSWORD
        stored = self.users.get(username)
        matches = verify_password(stored or _DUMMY_HASH, password)
        return ACCEPTED if matches and stored is not None else NOT_AUTHORIZED

    # --- after CONNECT ------------------------------------------------------------------
    async def _session(self, client: _Client) -> bool:
        """Serve one connected client; True when it ended with DISCONNECT."""
        timeout = client.keepalive * 1.5 if client.keepalive else None
        while True:
            try:
                kind, flags, body = await asyncio.wait_for(self._read_packet(client.reader), timeout)
            except asyncio.TimeoutError:
                log.info("embedded MQTT broker: keep-alive of %s expired", client.client_id)
                return False
            if kind == PUBLISH:
                self._on_publish(client, flags, body)
            elif kind == SUBSCRIBE:
                self._on_subscribe(client, flags, body)
            elif kind == UNSUBSCRIBE:
                self._on_unsubscribe(client, flags, body)
            elif kind == PUBACK and not flags and len(body) == 2:
                pass  # acknowledges our QoS 1 delivery; nothing is kept for redelivery
            elif kind == PUBREL and flags == 0x02 and len(body) == 2:
                packet_id = int.from_bytes(body, "big")
                client.qos2_pending.discard(packet_id)
                client.send(_packet(PUBCOMP, 0, body))
            elif kind == PINGREQ and not flags and not body:
                client.send(_packet(PINGRESP, 0))
            elif kind == DISCONNECT and not flags and not body:
                return True
            else:
                raise MalformedPacket(f"unexpected packet type {kind} (flags {flags:#x}, {len(body)} bytes)")

    def _on_publish(self, client: _Client, flags: int, body: bytes) -> None:
        qos, retain = (flags >> 1) & 0x03, bool(flags & 0x01)
        if qos == 3:
            raise MalformedPacket("PUBLISH with QoS 3")
        r = _Body(body)
        topic = r.string()
        if not valid_topic(topic):
            raise MalformedPacket(f"invalid topic name {topic!r}")
        packet_id = r.u16() if qos else 0
        if qos and packet_id == 0:
            raise MalformedPacket("PUBLISH with packet id 0")
        payload = r.rest()
        if qos == 1:
            client.send(_packet(PUBACK, 0, packet_id.to_bytes(2, "big")))
        elif qos == 2:
            client.send(_packet(PUBREC, 0, packet_id.to_bytes(2, "big")))
            if packet_id in client.qos2_pending:
                return  # a resend before PUBREL: delivered already
            client.qos2_pending.add(packet_id)
        self._route(topic, payload, qos, retain)

    def _route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if retain:
            if payload:
                self._retained[topic] = (payload, qos)
            else:
                self._retained.pop(topic, None)
        for subscriber in list(self._clients.values()):
            granted = max((q for f, q in subscriber.subscriptions.items() if topic_matches(f, topic)), default=None)
            if granted is not None:
                subscriber.deliver(topic, payload, min(qos, granted))

    def _on_subscribe(self, client: _Client, flags: int, body: bytes) -> None:
        if flags != 0x02:
            raise MalformedPacket("SUBSCRIBE with wrong fixed-header flags")
        r = _Body(body)
        packet_id = r.u16()
        if r.done():
            raise MalformedPacket("SUBSCRIBE without topic filters")
        codes, added = [], []
        while not r.done():
            topic_filter, requested = r.string(), r.byte()
            if requested > 2:
                raise MalformedPacket(f"SUBSCRIBE requesting QoS byte {requested:#x}")
            if not valid_filter(topic_filter):
                codes.append(0x80)
                continue
            granted = min(requested, MAX_GRANTED_QOS)
            client.subscriptions[topic_filter] = granted
            codes.append(granted)
            added.append((topic_filter, granted))
        client.send(_packet(SUBACK, 0, packet_id.to_bytes(2, "big") + bytes(codes)))
        for topic_filter, granted in added:
            for topic, (payload, qos) in list(self._retained.items()):
                if topic_matches(topic_filter, topic):
                    client.deliver(topic, payload, min(qos, granted), retain=True)

    def _on_unsubscribe(self, client: _Client, flags: int, body: bytes) -> None:
        if flags != 0x02:
            raise MalformedPacket("UNSUBSCRIBE with wrong fixed-header flags")
        r = _Body(body)
        packet_id = r.u16()
        if r.done():
            raise MalformedPacket("UNSUBSCRIBE without topic filters")
        while not r.done():
            client.subscriptions.pop(r.string(), None)
        client.send(_packet(UNSUBACK, 0, packet_id.to_bytes(2, "big")))
