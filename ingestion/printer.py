"""MQTT transport to one printer (paho-mqtt 2.x, CallbackAPIVersion.VERSION2).

The printer is the broker: TLS on 8883, user `bblp`, password = LAN access code. We subscribe
to the report topic only (subscribing to /request breaks A1 sessions, PROTOCOL.md section 2),
ask for a full report (pushall) on every (re)connect, and let paho reconnect with backoff
forever. Messages are handed to the logger's inbox untouched, stamped with receive time.
"""

from __future__ import annotations

import json
import logging
import ssl
import uuid
from datetime import datetime, timezone
from typing import Callable

import paho.mqtt.client as mqtt

from .config import PrinterConfig
from .protocol import PUSHALL_REQUEST

log = logging.getLogger(__name__)

# (serial, kind, payload, received_at); kind is "message", "connected" or "disconnected".
Deliver = Callable[[str, str, bytes, datetime], None]


def tls_context(printer: PrinterConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The certificate's CN is the serial, not the IP, so hostname checks always fail.
    ctx.check_hostname = False
    if printer.ca_file:
        ctx.load_verify_locations(printer.ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif printer.tls_verify:
        ctx.load_default_certs()
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class PrinterConnection:
    def __init__(self, printer: PrinterConfig, deliver: Deliver, keepalive: int = 30):
        self.printer = printer
        self.deliver = deliver
        self.connected = False
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"printfarm-{printer.serial}-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv311)
        self.client.username_pw_set(printer.username, printer.access_code)
        self.client.tls_set_context(tls_context(printer))
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._keepalive = keepalive

    def start(self) -> None:
        # connect_async + loop_start: the network thread keeps retrying until the printer answers.
        self.client.connect_async(self.printer.host, self.printer.port, keepalive=self._keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("printer %s: connection refused (%s); check its access code and serial",
                        self.printer.display_name, reason_code)
            return
        self.connected = True
        log.info("printer %s: connected to %s:%s", self.printer.display_name, self.printer.host, self.printer.port)
        self.deliver(self.printer.serial, "connected", b"", datetime.now(timezone.utc))
        client.subscribe(self.printer.report_topic, qos=0)
        client.publish(self.printer.request_topic, json.dumps(PUSHALL_REQUEST), qos=0)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected:
            log.warning("printer %s: disconnected (%s); reconnecting", self.printer.display_name, reason_code)
        self.connected = False
        self.deliver(self.printer.serial, "disconnected", b"", datetime.now(timezone.utc))

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self.deliver(self.printer.serial, "message", message.payload, datetime.now(timezone.utc))
