"""A test JWT issuer: RSA keys made with ``cryptography``, tokens signed with PyJWT, and a
loopback HTTP server that serves its JWKS (and an OpenID discovery document) and can be
told to rotate keys, fail, or hang.

    issuer = TestIssuer("https://issuer.test")
    with JwksServer(issuer) as server:          # 127.0.0.1 on a free port
        server.jwks_uri                          # http://127.0.0.1:<port>/jwks.json
        token = issuer.token(sub="alice")
        issuer.rotate(); server.status = 503; server.hang = True
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


class TestIssuer:
    __test__ = False  # not a pytest class

    def __init__(self, issuer: str = "https://issuer.test", kid: str = "key-1") -> None:
        self.issuer = issuer
        self._serial = 1
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def jwks(self) -> str:
        return json.dumps({"keys": [self.jwk()]})

    def rotate(self) -> None:
        """A new key with a new kid; the old one is gone from the JWKS."""
        self._serial += 1
        self.kid = f"key-{self._serial}"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(self, sub: str = "alice", *, audience: str | list[str] | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"iss": self.issuer, "sub": sub, "iat": now, "exp": now + 3600, **claims}
        if audience is not None:
            payload["aud"] = audience
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})


def tamper(token: str) -> str:
    """The same token with a payload that no longer matches its signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub"] = "mallory"
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{forged}.{signature}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.requests += 1
            hang, status, body = srv.hang, srv.status, srv.body_for(self.path)
        if hang:
            srv.release.wait(30)
            return
        if body is None:
            status, body = 404, b"not found"
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: JwksServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.requests = 0
        self.hang = False
        self.status = 200

    def body_for(self, path: str) -> bytes | None:
        return self.owner.body_for(path)


class JwksServer:
    """Serves ``/jwks.json`` (the issuer's JWKS, or ``override``) and
    ``/.well-known/openid-configuration`` naming it."""

    def __init__(self, issuer: TestIssuer) -> None:
        self.issuer = issuer
        self.override: bytes | None = None  # served instead of the JWKS when set
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.base_url}/jwks.json"

    @property
    def requests(self) -> int:
        with self._server.lock:
            return self._server.requests

    @property
    def status(self) -> int:
        return self._server.status

    @status.setter
    def status(self, value: int) -> None:
        with self._server.lock:
            self._server.status = value

    @property
    def hang(self) -> bool:
        return self._server.hang

    @hang.setter
    def hang(self, value: bool) -> None:
        with self._server.lock:
            self._server.hang = value
        if not value:
            self._server.release.set()

    def body_for(self, path: str) -> bytes | None:
        path = path.split("?", 1)[0]
        if path == "/jwks.json":
            return self.override if self.override is not None else self.issuer.jwks().encode()
        if path == "/.well-known/openid-configuration":
            return json.dumps({"issuer": self.base_url, "jwks_uri": self.jwks_uri}).encode()
        return None

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
