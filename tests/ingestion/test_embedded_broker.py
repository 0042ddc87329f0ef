"""The embedded Python MQTT broker (ingestion/embedded_broker.py) that the demo falls back to when
mosquitto is not installed. CI has mosquitto, so every test here asks for the embedded broker
explicitly (DevBroker(kind="embedded")); the demo's own choice is tested with find_mosquitto
patched away. Clients are the real ones: paho-mqtt 2 (CallbackAPIVersion.VERSION2) over TLS,
the printer simulator and the logger service."""

import socket
import ssl
import threading
import time

import paho.mqtt.client as mqtt
import pytest

import ingestion.devbroker as devbroker
from ingestion.devbroker import BrokerUnavailable, DevBroker
from ingestion.embedded_broker import topic_matches, valid_filter
from ingestion.logger import LoggerService
from ingestion.scenarios import expected

from .conftest import jobs, logger_settings, wait_until
from .test_resilience import restart_broker_mid_print

SERIAL = "01S00C000000001"


@pytest.fixture(scope="module")
def broker():
    """Overrides conftest's mosquitto: the simulator fixture runs on the embedded broker too."""
    with DevBroker(kind="embedded") as b:
        assert b.kind == "embedded" and b.proc is None
        yield b


def client_tls(broker: DevBroker) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the CN is a serial, as on a printer
    ctx.load_verify_locations(broker.ca_file)  # and the broker's certificate must verify against it
    return ctx


class Paho:
    """A paho-mqtt 2 client that records what it sees."""

    def __init__(self, broker: DevBroker, password: str | None = "", username: str | None = "", tls: bool = True):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username or broker.username,
                                        broker.password if password == "" else password)
        if tls:
            self.client.tls_set_context(client_tls(broker))
        self.connack: mqtt.ReasonCode | None = None
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.messages: list[tuple[str, bytes, int, bool]] = []
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, m.qos, m.retain))
        self.client.connect_async(broker.host, broker.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = reason_code
        self.answered.set()
        if not reason_code.is_failure:
            self.connected.set()

    def subscribe(self, topic: str, qos: int = 0) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic, qos)
        assert done.wait(5), f"no SUBACK for {topic}"

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def paho(broker):
    made = []

    def make(**kwargs) -> Paho:
        made.append(Paho(broker, **kwargs))
        return made[-1]
    yield make
    for p in made:
        p.close()


# --- raw MQTT over TLS, for what paho will not send -------------------------------------------

def mqtt_string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def connect_packet(username: str, password: str, keepalive: int = 30, client_id: bytes = b"raw") -> bytes:
    body = mqtt_string(b"MQTT") + bytes([4, 0xC2]) + keepalive.to_bytes(2, "big")
    body += mqtt_string(client_id) + mqtt_string(username.encode()) + mqtt_string(password.encode())
    return bytes([0x10, len(body)]) + body


def raw_tls(broker: DevBroker) -> ssl.SSLSocket:
    sock = socket.create_connection((broker.host, broker.port), timeout=5)
    return client_tls(broker).wrap_socket(sock)


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the broker sends until it closes the connection, and how long that took."""
    sock.settimeout(timeout)
    data, started = b"", time.monotonic()
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return data, time.monotonic() - started


# --- tests ----------------------------------------------------------------------------------

def test_topic_filters_and_wildcards():
    assert topic_matches("device/+/report", f"device/{SERIAL}/report")
    assert not topic_matches("device/+/report", f"device/{SERIAL}/request")
    assert topic_matches("device/#", f"device/{SERIAL}/request") and topic_matches("device/#", "device")
    assert not topic_matches("device/+", f"device/{SERIAL}/report")
    assert topic_matches("+/+", "/finance") and not topic_matches("#", "$SYS/broker")
    assert all(valid_filter(f) for f in ("#", "+", "a/+/b", "a/#", "+/+"))
    assert not any(valid_filter(f) for f in ("", "a/#/b", "a#", "a/b+", "a/+b"))


def test_paho_tls_client_publishes_and_subscribes(broker, paho):
    logger, printer = paho(), paho()
    assert logger.connected.wait(5) and printer.connected.wait(5)
    assert broker.describe() == f"embedded Python MQTT broker, TLS + password on 127.0.0.1:{broker.port}"
    logger.subscribe("device/+/report", qos=1)   # as the logger and the Bambuddy bridge subscribe
    printer.subscribe(f"device/{SERIAL}/request", qos=0)  # as a printer listens for commands

    printer.client.publish(f"device/{SERIAL}/report", b'{"print": {"mc_percent": 1}}', qos=0)
    acked = printer.client.publish(f"device/{SERIAL}/report", b'{"print": {"mc_percent": 2}}', qos=1)
    acked.wait_for_publish(5)
    assert acked.is_published()  # PUBACK came back
    logger.client.publish(f"device/{SERIAL}/request", b'{"pushing": {"command": "pushall"}}', qos=1)
    logger.client.publish("device/OTHER/request", b"not for this printer", qos=0)

    wait_until(lambda: len(logger.messages) >= 2 and printer.messages, timeout=5, what="deliveries")
    time.sleep(0.2)  # nothing else may arrive
    # delivered at min(publish QoS, subscription QoS)
    assert logger.messages == [(f"device/{SERIAL}/report", b'{"print": {"mc_percent": 1}}', 0, False),
                               (f"device/{SERIAL}/report", b'{"print": {"mc_percent": 2}}', 1, False)]
    assert printer.messages == [(f"device/{SERIAL}/request", b'{"pushing": {"command": "pushall"}}', 0, False)]


def test_unsubscribe_and_retained_messages(broker, paho):
    first = paho()
    assert first.connected.wait(5)
    first.subscribe("device/UNSUB/report")
    first.client.unsubscribe("device/UNSUB/report")
    time.sleep(0.2)
    first.client.publish("device/UNSUB/report", b"after unsubscribe", qos=1).wait_for_publish(5)
    first.client.publish("retained/state", b"kept", qos=1, retain=True).wait_for_publish(5)
    late = paho()
    assert late.connected.wait(5)
    late.subscribe("retained/#", qos=1)
    wait_until(lambda: late.messages, timeout=5, what="retained message")
    assert late.messages == [("retained/state", b"kept", 1, True)]
    assert first.messages == []
    first.client.publish("retained/state", b"", qos=1, retain=True).wait_for_publish(5)  # clears it
    cleared = paho()
    assert cleared.connected.wait(5)
    cleared.subscribe("retained/#")
    time.sleep(0.3)
    assert cleared.messages == [] and late.messages[1:] == [("retained/state", b"", 1, False)]


@pytest.mark.parametrize("username, password, refusal", [
    ("", "wrong-access-code", "Not authorized"),            # CONNACK 0x05
    ("someone", "", "Not authorized"),                      # unknown user, right password: 0x05
    ("", None, "Bad user name or password"),                # no password at all: 0x04
    (None, None, "Bad user name or password"),              # anonymous: 0x04
])
def test_bad_credentials_are_refused(broker, paho, username, password, refusal):
    intruder = paho(username=username, password=password)
    assert intruder.answered.wait(5)
    assert intruder.connack.is_failure and intruder.connack.getName() == refusal
    assert not intruder.connected.is_set()


def test_refused_client_cannot_publish(broker, paho):
    listener = paho()
    assert listener.connected.wait(5)
    listener.subscribe("a/#")
    with raw_tls(broker) as sock:
        sock.sendall(connect_packet(broker.username, "wrong-access-code"))
        sock.sendall(bytes([0x30, 9]) + mqtt_string(b"a/b") + b"evil")  # PUBLISH anyway
        data, _ = read_until_closed(sock, timeout=5)
    assert data == b"\x20\x02\x00\x05"  # CONNACK "not authorized", then the connection is closed
    time.sleep(0.3)
    assert listener.messages == []


def test_plain_tcp_without_tls_is_not_served(broker, paho):
    # a valid CONNECT with the right password, but without TLS: no CONNACK, the connection is closed
    with socket.create_connection((broker.host, broker.port), timeout=5) as sock:
        sock.sendall(connect_packet(broker.username, broker.password))
        data, _ = read_until_closed(sock, timeout=5)
    assert not data.startswith(b"\x20")  # no CONNACK
    plain = paho(tls=False)
    time.sleep(1.5)
    assert not plain.connected.is_set()
    # the same credentials over TLS are accepted
    with raw_tls(broker) as sock:
        sock.sendall(connect_packet(broker.username, broker.password))
        assert sock.recv(4) == b"\x20\x02\x00\x00"


def test_malformed_packet_closes_only_that_client(broker, paho):
    listener = paho()
    assert listener.connected.wait(5)
    listener.subscribe("device/+/report")
    with raw_tls(broker) as bad:
        bad.sendall(connect_packet(broker.username, broker.password, client_id=b"bad"))
        assert bad.recv(4) == b"\x20\x02\x00\x00"
        bad.sendall(bytes([0x36, 3]) + b"\x00\x01x")  # PUBLISH with QoS 3 is malformed
        data, _ = read_until_closed(bad, timeout=5)
    assert data == b""  # closed, nothing delivered or acknowledged
    printer = paho()
    assert printer.connected.wait(5)
    printer.client.publish(f"device/{SERIAL}/report", b"still served", qos=1).wait_for_publish(5)
    wait_until(lambda: listener.messages, timeout=5, what="delivery after the bad client")
    assert listener.messages == [(f"device/{SERIAL}/report", b"still served", 0, False)]
    assert listener.client.is_connected()


def test_keepalive_expiry_closes_a_silent_client(broker):
    with raw_tls(broker) as pinging, raw_tls(broker) as silent:
        pinging.sendall(connect_packet(broker.username, broker.password, keepalive=2, client_id=b"pinging"))
        silent.sendall(connect_packet(broker.username, broker.password, keepalive=1, client_id=b"silent"))
        assert pinging.recv(4) == b"\x20\x02\x00\x00" and silent.recv(4) == b"\x20\x02\x00\x00"
        connected = time.monotonic()
        pinging.settimeout(2)

        def ping():
            pinging.sendall(b"\xc0\x00")  # PINGREQ
            assert pinging.recv(2) == b"\xd0\x00"  # PINGRESP
        time.sleep(0.7)
        ping()
        read_until_closed(silent, timeout=5)
        silent_for = time.monotonic() - connected
        assert 1.3 <= silent_for <= 4.0  # closed by the broker after 1.5 x its keep-alive of 1 s, not before
        assert "silent" not in broker.embedded.client_ids()
        ping()
        while time.monotonic() - connected < 3.6:  # past 1.5 x its own keep-alive of 2 s
            time.sleep(0.6)
            ping()  # a client that pings in time stays connected
        assert "pinging" in broker.embedded.client_ids()


def test_simulator_and_logger_record_a_completed_job(broker, simulator, tmp_path):
    db = tmp_path / "print_history.db"
    serial = "P1S-EMBEDDED"
    simulator.add(serial, "P1S").wait_connected()
    service = LoggerService(logger_settings(broker, [serial], db))
    service.start()
    try:
        wait_until(lambda: simulator.printers[serial].pushalls_answered >= 1, what="pushall answered")
        simulator.run({serial: ["cloud_completed", "back_to_back"]}, speed=3000)
        want = expected("cloud_completed") + expected("back_to_back")
        wait_until(lambda: sum(1 for j in jobs(db) if j["ended_at"]) >= len(want), what="jobs ended")
    finally:
        service.stop()
    rows = jobs(db)
    assert [r["status"] for r in rows] == want == ["completed"] * 3
    assert rows[0]["job_key"] == rows[0]["subtask_id"]
    assert all(r["progress_pct"] == 100 and r["ended_at"] >= r["started_at"] for r in rows)


def test_broker_restart_mid_print_logger_reconnects(broker, simulator, tmp_path):
    port = broker.port

    def same_port_and_running():
        assert broker.port == port and broker.embedded.running

    restart_broker_mid_print(broker, simulator, tmp_path / "print_history.db", "P1S-EMBEDDED-RESTART",
                             down_seconds=0.5, timeouts=(20, 30), after_restart=same_port_and_running)


# --- the demo's choice of broker ------------------------------------------------------------

def test_auto_falls_back_to_embedded_only_without_mosquitto(monkeypatch, tmp_path):
    monkeypatch.setattr(devbroker, "find_mosquitto", lambda: None)
    with DevBroker(workdir=tmp_path / "auto") as auto:
        assert auto.kind == "embedded" and auto.embedded.running
        assert auto.describe() == (f"embedded Python MQTT broker (mosquitto not installed), "
                                   f"TLS + password on 127.0.0.1:{auto.port}")
    assert not auto.embedded.running
    with pytest.raises(BrokerUnavailable, match="mosquitto not found"):
        DevBroker(workdir=tmp_path / "forced", kind="mosquitto")
    with pytest.raises(ValueError, match="broker kind"):
        DevBroker(kind="hbmqtt")


def test_auto_keeps_mosquitto_when_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(devbroker, "find_mosquitto", lambda: "/usr/sbin/mosquitto-under-test")
    chosen = DevBroker(workdir=tmp_path)  # not started: only the choice is under test
    try:
        assert chosen.kind == "mosquitto" and chosen.embedded is None
        assert chosen.binary == "/usr/sbin/mosquitto-under-test" and chosen.config_file.exists()
        assert chosen.describe().startswith("mosquitto (/usr/sbin/mosquitto-under-test), TLS + password")
    finally:
        chosen.close()


def test_orchestration_demo_announces_the_embedded_fallback(monkeypatch, tmp_path, capsys):
    from orchestration import demo

    monkeypatch.setattr(devbroker, "find_mosquitto", lambda: None)
    broker = demo.start_broker(tmp_path / "broker", "auto")
    try:
        out = capsys.readouterr().out
        assert f"broker: embedded Python MQTT broker (mosquitto not installed), TLS + password on " \
               f"127.0.0.1:{broker.port}" in out
        client = Paho(broker)
        assert client.connected.wait(5)  # the demo's processes can use it
        client.close()
    finally:
        broker.close()
    assert demo.start_broker(tmp_path / "forced", "mosquitto") is None
    assert "mosquitto not found" in capsys.readouterr().err


def test_ingestion_demo_runs_on_the_embedded_broker_without_mosquitto(monkeypatch, tmp_path, capsys):
    from ingestion import demo

    monkeypatch.setattr(devbroker, "find_mosquitto", lambda: None)
    assert demo.main(["--data-dir", str(tmp_path), "--speed", "3000"]) == 0
    out = capsys.readouterr().out
    assert "broker: embedded Python MQTT broker (mosquitto not installed), TLS + password on 127.0.0.1:" in out
    rows = demo.ended(tmp_path / "print_history.db")
    statuses = sorted(r[3] for r in rows)
    want = sorted(s for _, model, _ in demo.FLEET for n in demo.MIX[model] for s in expected(n))
    assert statuses == want and len(rows) == 9
