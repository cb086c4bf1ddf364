"""A loopback HTTP app for behaviour tests. Each response goes out in one send (no
Nagle/delayed-ACK stall), so thousands of requests through Envoy take seconds.

Answers 200 with header ``x-upstream: <name>`` and a JSON echo of path and headers, except:
``/status/<code>`` answers <code>; ``/fail-once/<key>`` answers 503 the first time for a
key; ``/sleep/<ms>`` waits first; ``/bad-on/<name>[,<name>...]`` answers 500 on the apps so named.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _status(self) -> int:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        head, arg = parts[0], (parts[1] if len(parts) > 1 else "")
        if head == "status" and arg.isdigit():
            return int(arg)
        if head == "fail-once":
            with self.server.lock:
                first = arg not in self.server.seen
                self.server.seen.add(arg)
            return 503 if first else 200
        if head == "sleep" and arg.isdigit():
            time.sleep(int(arg) / 1000)
        if head == "bad-on" and self.server.name in arg.split(","):
            return 500
        return 200

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.paths["/" + self.path.strip("/").split("/")[0]] += 1
        status = self._status()
        body = json.dumps({"name": self.server.name, "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        head = (f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
                f"x-upstream: {self.server.name}\r\n\r\n").encode()
        try:
            self.wfile.write(head + body)
        except OSError:  # the client (Envoy) gave up, e.g. after a timeout
            pass

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    name = ""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.lock = threading.Lock()
        self.paths: Counter[str] = Counter()
        self.seen: set[str] = set()


class FastUpstream:
    def __init__(self, name: str, host: str = "127.0.0.1") -> None:
        self.name = name
        self.server = _Server((host, 0), _Handler)
        self.server.name = name
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def paths(self) -> Counter[str]:
        return self.server.paths

    def __enter__(self) -> FastUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
