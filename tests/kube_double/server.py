"""TEST DOUBLE of the Kubernetes API server — not a Kubernetes implementation.

No kube-apiserver can run on these machines, so tests drive the official
``kubernetes`` client against this small HTTP server on 127.0.0.1 (a free port).
It speaks only the list/watch protocol of the collection paths the Kubernetes
source uses (``/api/v1/services``, ``/apis/discovery.k8s.io/v1/endpointslices``,
``/apis/networking.istio.io/v1/virtualservices``, ...):

- list: ``{"kind": "<Kind>List", "metadata": {"resourceVersion"}, "items": [...]}``
  (items without kind/apiVersion, as the real server sends built-in types);
- watch (``?watch=true&resourceVersion=N``): a chunked stream of JSON event lines
  (ADDED, MODIFIED, DELETED) replayed from N, then live; BOOKMARK on demand when
  ``allowWatchBookmarks``; ``timeoutSeconds`` honoured;
- an expired resourceVersion (older than ``compact()``) answers 410 Gone, either
  as an ERROR event carrying a Status with code 410 (what a real server sends on
  an open watch) or as HTTP 410 (``expire_mode="http"``);
- collections never registered answer 404 (an Istio CRD that is not installed);
- ``drop_watches()`` cuts every open watch mid-stream; ``refuse_watches`` makes new
  watch requests fail at the connection level, i.e. the watch is down;
- ``go_away("refuse")`` makes the whole API unreachable (the port is closed: connections are
  refused, open ones cut), ``go_away("hang")`` makes it stop answering (connections are
  accepted and left without an answer, open watches go silent); ``come_back()`` serves again
  on the same port, cutting whatever was held during the outage. Objects may change while it
  is away (``upsert``/``delete``/``compact`` work as usual): ``compact()`` then makes the
  clients' old resourceVersion expire, so they must relist.

``admission[path]`` stands for the mutating webhooks of a collection: called on every create
(POST) with the object, it returns the object to store or raises ValueError, which refuses the
request with a 400 naming the message.

Single objects of a registered collection (Leases, ConfigMaps, Secrets, ...) can also be read
(GET ``.../namespaces/NS/PLURAL/NAME``), created (POST; 409 AlreadyExists), replaced (PUT
with optimistic concurrency on ``metadata.resourceVersion``: 409 Conflict when stale) and
deleted (DELETE; 404 when absent); their status subresource takes a JSON merge patch (PATCH
``.../NAME/status``).
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class _Event:
    rv: int
    type: str
    obj: dict[str, Any]


@dataclass
class _Collection:
    kind: str
    api_version: str
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[_Event] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]

    @property
    def watch(self) -> bool:
        return self.query.get("watch") in ("true", "1")


class KubeApiDouble:
    """Test double of the Kubernetes API server's list/watch protocol (see module doc)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._rv = 1000
        self._collections: dict[str, _Collection] = {}
        self.compacted_rv = 0
        self.expire_mode = "event"  # or "http"
        self.refuse_watches = False
        self.down: str | None = None  # None, "refuse" or "hang" (see go_away)
        self._port = 0
        self._drop_generation = 0
        self._bookmark_generation = 0
        self._open_watches = 0
        self.requests: list[Request] = []
        # Mutating admission per collection path, as the API server calls webhooks on CREATE:
        # the object to store, or ValueError (the request is refused with its message).
        self.admission: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()

    # --- lifecycle -----------------------------------------------------------------
    def start(self) -> KubeApiDouble:
        double = self

        class Handler(_Handler):
            server_double = double

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self.down = None  # held requests end
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self.drop_watches()
            self._server.server_close()
            self._server = None

    # --- outages ------------------------------------------------------------------
    def go_away(self, mode: str = "refuse") -> None:
        """The API becomes unreachable: "refuse" closes the port (new connections refused,
        open ones cut); "hang" accepts connections and never answers, and open watches send
        nothing more. Until come_back()."""
        if mode not in ("refuse", "hang"):
            raise ValueError(f"unknown outage mode {mode!r}")
        with self._cond:
            self.down = mode
            self._cond.notify_all()
        if mode == "refuse" and self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self.drop_watches()

    def come_back(self) -> None:
        """Serve again on the same port. Connections held or silenced during a "hang" are cut
        (they did not survive the outage); clients reconnect."""
        with self._cond:
            mode, self.down = self.down, None
            self._cond.notify_all()
        if mode == "hang":
            self.drop_watches()
        if self._server is None:
            self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._port, "start() first"
        return f"http://127.0.0.1:{self._port}"

    # --- data ---------------------------------------------------------------------
    def serve(self, path: str, kind: str, api_version: str) -> None:
        """Register a collection (e.g. "/api/v1/services", "Service", "v1")."""
        with self._cond:
            self._collections.setdefault(path, _Collection(kind, api_version))

    def upsert(self, path: str, obj: dict[str, Any]) -> str:
        """Create or update an object; returns its new resourceVersion."""
        with self._cond:
            coll = self._collections[path]
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            key = (meta.get("namespace", ""), meta["name"])
            existed = key in coll.objects
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            meta.setdefault(
                "uid", coll.objects.get(key, {}).get("metadata", {}).get("uid") or str(uuid.uuid4())
            )
            obj["kind"], obj["apiVersion"] = coll.kind, coll.api_version
            coll.objects[key] = obj
            coll.events.append(_Event(self._rv, "MODIFIED" if existed else "ADDED", obj))
            self._cond.notify_all()
            return str(self._rv)

    def delete(self, path: str, namespace: str, name: str) -> None:
        with self._cond:
            coll = self._collections[path]
            obj = coll.objects.pop((namespace, name))
            self._rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._rv)
            coll.events.append(_Event(self._rv, "DELETED", obj))
            self._cond.notify_all()

    def compact(self) -> None:
        """Forget history: watches from any resourceVersion before now get 410 Gone."""
        with self._cond:
            self.compacted_rv = self._rv
            for coll in self._collections.values():
                coll.events.clear()
            self._cond.notify_all()

    def bookmark(self) -> str:
        """Advance the resourceVersion and send a BOOKMARK to watches that allow them."""
        with self._cond:
            self._rv += 1
            self._bookmark_generation += 1
            self._cond.notify_all()
            return str(self._rv)

    def drop_watches(self) -> None:
        """Cut every open watch connection mid-stream (no final chunk)."""
        with self._cond:
            self._drop_generation += 1
            for sock in list(self._sockets):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._cond.notify_all()

    # --- single objects: GET, POST (create) and PUT (replace) ---------------------------
    def _object_route(self, path: str) -> tuple[str, str, str] | None:
        """``/api/v1/namespaces/NS/configmaps[/NAME]`` or ``/apis/G/V/namespaces/NS/leases[/NAME]``
        (or a cluster-scoped ``/api/v1/namespaces/NAME``) -> (collection path, namespace, name);
        None when ``path`` names no registered collection."""
        segments = path.strip("/").split("/")
        head = 2 if segments[:1] == ["api"] else 3
        prefix, rest = "/" + "/".join(segments[:head]), segments[head:]
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 2:
            return None
        collection = f"{prefix}/{rest[0]}"
        if collection not in self._collections:
            return None
        return collection, namespace, rest[1] if len(rest) == 2 else ""

    def serves(self, path: str) -> bool:
        """Whether ``path`` names a registered collection or one of its objects."""
        return path in self._collections or self._object_route(path) is not None

    def get(self, path: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object of a collection (a copy), or None."""
        with self._cond:
            found = self._collections[path].objects.get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def create(self, path: str, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST: 201 and the stored object, or 409 AlreadyExists."""
        with self._cond:
            meta = obj.get("metadata", {})
            key = (meta.get("namespace", ""), meta.get("name", ""))
            if key in self._collections[path].objects:
                kind = self._collections[path].kind
                return 409, _status(409, "AlreadyExists", f'{kind} "{key[1]}" already exists')
            meta.pop("resourceVersion", None)
            self.upsert(path, obj)
            return 201, copy.deepcopy(self._collections[path].objects[key])

    def replace(self, path: str, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """PUT: optimistic concurrency on metadata.resourceVersion, as the API server does
        (409 Conflict when it is not the current one; 404 when there is nothing to replace)."""
        with self._cond:
            meta = obj.get("metadata", {})
            key = (meta.get("namespace", ""), meta.get("name", ""))
            current = self._collections[path].objects.get(key)
            if current is None:
                return 404, _status(404, "NotFound", f'"{key[1]}" not found')
            expected = meta.get("resourceVersion")
            if expected and expected != current["metadata"]["resourceVersion"]:
                return 409, _status(
                    409, "Conflict", "the object has been modified; please apply your changes "
                    "to the latest version and try again"
                )
            meta["uid"] = current["metadata"].get("uid")
            self.upsert(path, obj)
            return 200, copy.deepcopy(self._collections[path].objects[key])

    def patch_status(self, path: str, namespace: str, name: str, patch: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """PATCH of the status subresource (a JSON merge patch of ``status`` only, as the API
        server applies it there): 200 and the object, 404 when there is none, 409 when the
        patch names a ``metadata.resourceVersion`` that is not the current one."""
        with self._cond:
            current = self._collections[path].objects.get((namespace, name))
            if current is None:
                return 404, _status(404, "NotFound", f'"{name}" not found')
            expected = (patch.get("metadata") or {}).get("resourceVersion")
            if expected and expected != current["metadata"]["resourceVersion"]:
                return 409, _status(409, "Conflict", "the object has been modified; please apply your changes "
                                    "to the latest version and try again")
            obj = copy.deepcopy(current)
            obj["status"] = _merge_patch(obj.get("status") or {}, patch.get("status") or {})
            self.upsert(path, obj)
            return 200, copy.deepcopy(self._collections[path].objects[(namespace, name)])

    def objects(self, path: str) -> list[dict[str, Any]]:
        """The collection's objects now (copies), as the API would list them."""
        with self._cond:
            return [copy.deepcopy(o) for _, o in sorted(self._collections[path].objects.items())]

    @property
    def open_watches(self) -> int:
        with self._cond:
            return self._open_watches

    def watch_requests(self, path: str) -> list[Request]:
        return [r for r in list(self.requests) if r.path == path and r.watch]

    def list_requests(self, path: str) -> list[Request]:
        return [r for r in list(self.requests) if r.path == path and not r.watch]


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as Go's net/http (the API server) has it: headers and body are two writes,
    # and with Nagle's algorithm the body waits for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server_double: KubeApiDouble

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        double = self.server_double
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        request = Request(parts.path, query)
        double.requests.append(request)
        if double.down == "hang" and self._held():
            return
        coll = double._collections.get(parts.path)
        if coll is None and double._object_route(parts.path) is not None:
            self._get_object(parts.path, query)
            return
        if coll is None:
            self._json(
                404, _status(404, "NotFound", "the server could not find the requested resource")
            )
            return
        if request.watch:
            self._watch(coll, query)
        else:
            self._list(coll, query)

    def _get_object(self, path: str, query: dict[str, str]) -> None:
        double = self.server_double
        route = double._object_route(path)
        assert route is not None
        collection, namespace, name = route
        if not name:  # a namespaced list
            with double._cond:
                coll = double._collections[collection]
                items = [copy.deepcopy(o) for (ns, _), o in sorted(coll.objects.items())
                         if ns == namespace]
                body = {"kind": f"{coll.kind}List", "apiVersion": coll.api_version,
                        "metadata": {"resourceVersion": str(double._rv)}, "items": items}
            self._json(200, body)
            return
        found = double.get(collection, namespace, name)
        if found is None:
            self._json(404, _status(404, "NotFound", f'"{name}" not found'))
        else:
            self._json(200, found)

    def do_POST(self) -> None:
        self._write("POST")

    def do_PUT(self) -> None:
        self._write("PUT")

    def do_DELETE(self) -> None:
        """``.../namespaces/NS/PLURAL/NAME``: 200 and the object as it was (a DELETED event
        for watchers), or 404."""
        double = self.server_double
        parts = urlsplit(self.path)
        double.requests.append(Request(parts.path, {"method": "DELETE"}))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))  # DeleteOptions: ignored
        if double.down == "hang" and self._held():
            return
        route = double._object_route(parts.path)
        found = double.get(*route) if route is not None and route[2] else None
        if route is None or found is None:
            self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
            return
        try:
            double.delete(*route)
        except KeyError:  # deleted meanwhile by another request
            self._json(404, _status(404, "NotFound", f'"{route[2]}" not found'))
            return
        self._json(200, found)

    def do_PATCH(self) -> None:
        """Only ``.../NAME/status`` (the status subresource), with a JSON merge patch."""
        double = self.server_double
        parts = urlsplit(self.path)
        content_type = self.headers.get("Content-Type", "")
        double.requests.append(Request(parts.path, {"method": "PATCH", "content-type": content_type}))
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        route = double._object_route(parts.path.removesuffix("/status"))
        if not parts.path.endswith("/status") or route is None or not route[2]:
            self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
            return
        if "merge-patch" not in content_type or not isinstance(body, dict):
            self._json(415, _status(415, "UnsupportedMediaType", f"unsupported patch type {content_type}"))
            return
        code, stored = double.patch_status(*route, body)
        self._json(code, stored)

    def _write(self, method: str) -> None:
        double = self.server_double
        parts = urlsplit(self.path)
        double.requests.append(Request(parts.path, {"method": method}))
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if double.down == "hang" and self._held():
            return
        route = double._object_route(parts.path)
        if route is None or (method == "POST") != (route[2] == ""):
            self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
            return
        collection, namespace, name = route
        meta = body.setdefault("metadata", {})
        if namespace:
            meta["namespace"] = namespace
        if name and meta.get("name") != name:
            self._json(400, _status(400, "BadRequest", "the name of the object does not match the URL"))
            return
        if method == "POST" and collection in double.admission:
            try:  # outside the lock: the webhook may take its time
                body = double.admission[collection](body)
            except ValueError as error:
                self._json(400, _status(400, "BadRequest", f"admission webhook denied the request: {error}"))
                return
        code, stored = (double.create if method == "POST" else double.replace)(collection, body)
        self._json(code, stored)

    def _held(self) -> bool:
        """During a "hang" outage: no answer; cut when the API comes back (True)."""
        double = self.server_double
        with double._cond:
            double._sockets.add(self.connection)
            while double.down == "hang":
                double._cond.wait(0.1)
            double._sockets.discard(self.connection)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return True

    def _json(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _expired(self, rv: str | None) -> bool:
        double = self.server_double
        return rv not in (None, "", "0") and int(rv) < double.compacted_rv  # type: ignore[arg-type]

    def _list(self, coll: _Collection, query: dict[str, str]) -> None:
        double = self.server_double
        with double._cond:
            if self._expired(query.get("resourceVersion")):
                body = _status(410, "Expired", "too old resource version")
                self._json(410, body)
                return
            items = []
            for key in sorted(coll.objects):
                item = copy.deepcopy(coll.objects[key])
                item.pop("kind", None)
                item.pop("apiVersion", None)
                items.append(item)
            body = {
                "kind": f"{coll.kind}List",
                "apiVersion": coll.api_version,
                "metadata": {"resourceVersion": str(double._rv)},
                "items": items,
            }
        self._json(200, body)

    def _watch(self, coll: _Collection, query: dict[str, str]) -> None:
        double = self.server_double
        if double.refuse_watches:  # the watch is down: the connection closes unanswered
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        rv_param = query.get("resourceVersion")
        if self._expired(rv_param) and double.expire_mode == "http":
            self._json(
                410,
                _status(
                    410, "Expired", f"too old resource version: {rv_param} ({double.compacted_rv})"
                ),
            )
            return
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(query.get("timeoutSeconds", "3600"))
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with double._cond:
            double._open_watches += 1
            double._sockets.add(self.connection)
            drop_generation = double._drop_generation
            bookmark_generation = double._bookmark_generation
            if rv_param in (None, "", "0"):  # no resourceVersion: synthetic ADDED for what exists
                sent = double._rv
                pending = [_Event(sent, "ADDED", o) for _, o in sorted(coll.objects.items())]
            else:
                sent = int(rv_param)  # type: ignore[arg-type]
                pending = []
        try:
            if self._expired(rv_param):
                self._chunk(
                    {
                        "type": "ERROR",
                        "object": _status(410, "Expired", f"too old resource version: {rv_param}"),
                    }
                )
                self._end()
                return
            while True:
                for event in pending:
                    self._chunk({"type": event.type, "object": event.obj})
                with double._cond:
                    while True:
                        pending = [e for e in coll.events if e.rv > sent]
                        dropped = (
                            double._drop_generation != drop_generation or double._server is None
                        )
                        wants_bookmark = (
                            bookmarks and double._bookmark_generation != bookmark_generation
                        )
                        if double.down == "hang" and not dropped:
                            double._cond.wait(0.1)  # silent: nothing is sent while away
                            continue
                        if pending or dropped or wants_bookmark or time.monotonic() >= deadline:
                            break
                        double._cond.wait(0.1)
                    if dropped:
                        return
                    if pending:
                        sent = pending[-1].rv
                    if wants_bookmark and not pending:
                        bookmark_generation = double._bookmark_generation
                        sent = double._rv
                        bookmark = {
                            "kind": coll.kind,
                            "apiVersion": coll.api_version,
                            "metadata": {"resourceVersion": str(sent)},
                        }
                        pending = [_Event(sent, "BOOKMARK", bookmark)]
                if not pending and time.monotonic() >= deadline:
                    self._end()
                    return
        except OSError:
            return
        finally:
            with double._cond:
                double._open_watches -= 1
                double._sockets.discard(self.connection)
            self.close_connection = True

    def _chunk(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
