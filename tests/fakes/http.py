"""Shared machinery of the stand-in servers: a real threaded HTTP server on 127.0.0.1, a
request log, and fault injection (status codes, delays, dropped connections, a failure rate).

The stand-ins themselves (bambuddy.py, inventree/) only describe routes and payloads, which
come from the recorded contracts in tests/contracts/.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int
    body: Any = None                   # JSON-able, or bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Fault:
    status: int | None = None          # answer this status instead
    times: int = 1
    method: str | None = None
    path_prefix: str = ""
    delay: float = 0.0                 # sleep before answering
    drop: bool = False                 # close the connection without an answer
    after_commit: bool = False         # drop only after the handler ran (the write is kept)
    path_regex: str | None = None      # full match instead of the prefix
    skip: int = 0                      # let this many matching requests through first
    action: Callable[[], None] | None = None   # e.g. kill -9 the client, then drop the connection

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.path_regex is not None:
            return re.fullmatch(self.path_regex, path) is not None
        return path.startswith(self.path_prefix)


class DroppedResponse(Exception):
    pass


class FakeServer:
    """Subclasses register routes with `self.route(method, regex, handler)`."""

    SECRET_HEADERS = ("authorization", "x-api-key")

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._routes: list[tuple[str, re.Pattern, Callable]] = []
        self._faults: list[Fault] = []
        self._fail_rate = 0.0
        self._fail_statuses: tuple[int, ...] = (500, 502, 503)
        self._fail_kinds: tuple[str, ...] = ("status",)
        self._stall = 0.0
        self._slow_fault = 0.0
        self.injected = 0                 # faults drawn by fail_rate
        self._slow = 0.0
        self._rng = random.Random(1234)
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name=type(self).__name__)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- faults ----------------------------------------------------------------------
    def inject(self, status: int | None = 500, times: int = 1, method: str | None = None, path_prefix: str = "",
               delay: float = 0.0) -> None:
        with self.lock:
            self._faults.append(Fault(status=status, times=times, method=method, path_prefix=path_prefix, delay=delay))

    def drop_connection(self, times: int = 1, method: str | None = None, path_prefix: str = "") -> None:
        with self.lock:
            self._faults.append(Fault(times=times, method=method, path_prefix=path_prefix, drop=True))

    def drop_response_after_commit(self, times: int = 1, method: str = "POST", path_prefix: str = "") -> None:
        with self.lock:
            self._faults.append(Fault(times=times, method=method, path_prefix=path_prefix, drop=True,
                                      after_commit=True))

    def on_request(self, action: Callable[[], None], method: str, path_regex: str, *, after_commit: bool = True,
                   skip: int = 0) -> None:
        """Run `action` on the (skip+1)-th matching request, before or after the handler committed
        its write, then drop the connection: how the crash tests kill the syncing process at a step."""
        with self.lock:
            self._faults.append(Fault(method=method, path_regex=path_regex, drop=True, after_commit=after_commit,
                                      skip=skip, action=action))

    def fail_rate(self, rate: float, statuses: tuple[int, ...] = (500, 502, 503), seed: int = 1234,
                  kinds: tuple[str, ...] = ("status",), stall: float = 0.0, slow: float = 0.0) -> None:
        """Fail `rate` of all requests. kinds: "status" (one of `statuses`), "drop" (connection reset
        before an answer), "stall" (sleep `stall` seconds, e.g. past the client's timeout, then a
        status), "slow" (sleep `slow` seconds, then answer normally)."""
        with self.lock:
            self._fail_rate, self._fail_statuses, self._rng = rate, statuses, random.Random(seed)
            self._fail_kinds, self._stall, self._slow_fault = kinds, stall, slow

    def delay(self, seconds: float) -> None:
        self._slow = seconds

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()
            self._fail_rate = 0.0
            self._slow = 0.0

    def _take_fault(self, method: str, path: str, after_commit: bool) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.after_commit == after_commit and fault.matches(method, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
            if not after_commit and self._fail_rate and self._rng.random() < self._fail_rate:
                kind = self._rng.choice(self._fail_kinds)
                self.injected += 1
                if kind == "drop":
                    return Fault(drop=True)
                if kind == "stall":
                    return Fault(delay=self._stall, status=self._rng.choice(self._fail_statuses))
                if kind == "slow":
                    return Fault(delay=self._slow_fault)
                return Fault(status=self._rng.choice(self._fail_statuses))
        return None

    # --- routing ---------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Callable[..., Response]) -> None:
        self._routes.append((method, re.compile(pattern + r"\Z"), handler))

    def not_found(self, request: Request) -> Response:
        return Response(404, {"detail": "Not Found"})

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Response:
        return Response(405, {"detail": "Method Not Allowed"}, headers={"allow": ", ".join(allowed)})

    def dispatch(self, request: Request) -> Response:
        allowed = []
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match:
                if method == request.method:
                    return handler(request, *match.groups())
                allowed.append(method)
        if allowed:
            return self.method_not_allowed(request, allowed)
        return self.not_found(request)

    def count(self, method: str | None = None, path_prefix: str = "") -> int:
        return sum(1 for r in self.requests if (method is None or r.method == method) and r.path.startswith(path_prefix))

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms to
            # every answer on a kept-alive connection (real servers set it too)
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # quiet
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True), headers, body)
                logged = {k: ("<redacted>" if k in server.SECRET_HEADERS else v) for k, v in headers.items()}
                with server.lock:
                    server.requests.append(Request(request.method, request.path, request.query, logged, b""))
                if server._slow:
                    time.sleep(server._slow)
                fault = server._take_fault(request.method, request.path, after_commit=False)
                if fault is not None:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.action is not None:
                        fault.action()
                    if fault.drop:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if fault.status is not None:
                        return self._send(Response(fault.status, {"detail": f"injected {fault.status}"}))
                with server.lock:
                    response = server.dispatch(request)
                late = server._take_fault(request.method, request.path, after_commit=True)
                if late is not None:
                    if late.action is not None:
                        late.action()
                    self.close_connection = True
                    self.connection.shutdown(2)  # the write happened, the client never hears of it
                    return
                self._send(response)

            def _send(self, response: Response) -> None:
                if isinstance(response.body, (bytes, bytearray)):
                    payload = bytes(response.body)
                elif response.body is None and response.status == 204:
                    payload = b""
                else:
                    payload = json.dumps(response.body).encode()
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_OPTIONS = _serve

        return Handler


def serve_until_interrupted(fake: FakeServer, banner: str) -> int:
    """Standalone mode of a stand-in (demo): serve until Ctrl-C."""
    fake.start()
    print(banner, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0
