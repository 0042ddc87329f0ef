"""A TCP relay between the logger and the broker that can fall asleep like a printer does.

Asleep, a printer neither answers nor closes: bytes on the open connection vanish (a half-open
link that only the MQTT keep-alive reveals) and new connections fail (PROTOCOL.md section 9,
pitfall 1). Awake again, it accepts new connections; the old ones stay dead.
"""

from __future__ import annotations

import socket
import threading


class SleepyLink:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._asleep = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._links: list[tuple[socket.socket, socket.socket]] = []
        self.accepted = 0
        self.refused = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def sleep(self) -> None:
        self._asleep.set()

    def wake(self) -> None:
        with self._lock:
            dead, self._links = self._links, []
        for pair in dead:
            for s in pair:
                s.close()
        self._asleep.clear()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self.wake()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._asleep.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self.accepted += 1
            with self._lock:
                self._links.append((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self._asleep.is_set():  # asleep: the bytes go nowhere, nothing is closed
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            if not self._asleep.is_set():
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
