"""An unmodified app for pods in network namespaces: an HTTP server on the given ports that
answers every request with JSON naming itself and echoing what it saw (headers, the caller's
address). Run inside a namespace: ``python -m controlplane.pods.echo_app NAME PORT [PORT...]``.
Binds 0.0.0.0 and never looks names up (no DNS in a pod namespace)."""

from __future__ import annotations

import http.server
import json
import socketserver
import sys
import threading


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:  # HTTPServer's would call getfqdn()
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "app", self.server_address[1]


def serve(name: str, port: int) -> _Server:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"name": name, "port": port, "path": self.path,
                               "headers": {k.lower(): v for k, v in self.headers.items()},
                               "peer": self.client_address[0]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = _Server(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    app_name, *ports = sys.argv[1:]
    for p in ports:
        serve(app_name, int(p))
    print("serving", flush=True)
    threading.Event().wait()
