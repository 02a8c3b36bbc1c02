"""A small OAuth 2.0 server on loopback for the source's OAuth login: what Dovecot's oauth2 passdb asks
(token introspection, RFC 7662), what gimport refreshes with (the refresh-token grant, RFC 6749 section 6)
and what MSAL's device-code flow speaks (OpenID discovery, the device authorization endpoint, the
device-code grant, RFC 8628), so that the whole chain runs with real parts.

    with OAuthServer(workdir) as oauth:
        access, refresh = oauth.issue("alice")          # a grant for user alice, as a sign-in would give
        oauth.expire(access)                             # Dovecot now refuses it; a refresh gets a new one
        oauth.revoke(refresh)                            # the refresh grant is refused (invalid_grant)

Two listeners share one state: ``url`` (plain HTTP, for Dovecot's introspection and gimport's refresh on
loopback) and ``https_url`` (a self-signed certificate, ``ca_file``: MSAL refuses any authority that is not
https). Thread-safe; everything it was asked is in ``requests`` (form fields, tokens elided).
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CLIENT_ID = "gimport-test-client"
CLIENT_SECRET = "gimport-test-secret"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class _Grant:
    user: str
    client_id: str
    revoked: bool = False


@dataclass
class _Device:
    client_id: str
    scope: str
    user_code: str
    user: str | None = None  # set when the person approves it


@dataclass
class OAuthState:
    access: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (user, expires at)
    refresh: dict[str, _Grant] = field(default_factory=dict)
    devices: dict[str, _Device] = field(default_factory=dict)  # device_code -> device
    # client-credentials apps: client_id -> (secret, the principal its tokens introspect as: "app@campus.test")
    apps: dict[str, tuple[str, str]] = field(default_factory=dict)
    app_grants: int = 0  # client-credentials tokens handed out
    delegated: set[str] = field(default_factory=set)  # service accounts (client_email) with domain-wide delegation
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, form without secrets)


class OAuthServer:
    """The rig's OAuth server. `lifetime`: seconds an access token lives; `rotate`: every refresh hands out
    a new refresh token and spends the old one (as Microsoft does)."""

    def __init__(self, workdir: Path | str, *, lifetime: int = 3600, rotate: bool = False) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lifetime, self.rotate = lifetime, rotate
        self.state = OAuthState()
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------------------------ lifecycle
    @property
    def ca_file(self) -> Path:
        return self.workdir / "oauth-cert.pem"

    def start(self) -> None:
        self._make_cert()
        handler = type("Handler", (_Handler,), {"oauth": self})
        for tls in (False, True):
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            if tls:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(self.ca_file, self.workdir / "oauth-key.pem")
                server.socket = ctx.wrap_socket(server.socket, server_side=True)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> OAuthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self._servers[1].server_address[1]}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.url}/introspect"

    def _make_cert(self) -> None:
        if self.ca_file.exists():
            return
        cmd = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(self.workdir / "oauth-key.pem"), "-out", str(self.ca_file), "-days", "7",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)

    # ------------------------------------------------------------------------------------ the grants
    def issue(self, user: str, *, client_id: str = CLIENT_ID, lifetime: int | None = None) -> tuple[str, str]:
        """A fresh grant for `user`: (access token, refresh token)."""
        refresh = "rt-" + secrets.token_urlsafe(16)
        with self._lock:
            self.state.refresh[refresh] = _Grant(user, client_id)
            return self._access(user, lifetime), refresh

    def _access(self, user: str, lifetime: int | None = None) -> str:
        token = "at-" + secrets.token_urlsafe(16)
        self.state.access[token] = (user, time.time() + (self.lifetime if lifetime is None else lifetime))
        return token

    def expire(self, token: str) -> None:
        """The access token is past its life: introspection says inactive."""
        with self._lock:
            user, _ = self.state.access[token]
            self.state.access[token] = (user, 0.0)

    def revoke(self, refresh: str) -> None:
        with self._lock:
            self.state.refresh[refresh].revoked = True

    def active(self, token: str) -> str | None:
        """The user of an active access token, None otherwise."""
        with self._lock:
            user, until = self.state.access.get(token, ("", 0.0))
        return user if until > time.time() else None

    def register_app(self, client_id: str, secret: str, principal: str) -> None:
        """An application that gets tokens with the client-credentials grant (Microsoft 365 app-only): each
        introspects as `principal`; a Dovecot comparing by domain then lets it read every mailbox there."""
        with self._lock:
            self.state.apps[client_id] = (secret, principal)

    def approve(self, user_code: str, user: str) -> None:
        """The person typed `user_code` on the verification page and signed in as `user`."""
        with self._lock:
            for device in self.state.devices.values():
                if device.user_code == user_code:
                    device.user = user
                    return
        raise KeyError(user_code)

    def asked(self, path: str) -> list[dict[str, str]]:
        """The forms posted to `path` (secrets replaced by "*")."""
        with self._lock:
            return [form for p, form in self.state.requests if p == path]

    # ------------------------------------------------------------------------------------ endpoints
    def token_endpoint(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type")
        with self._lock:
            if grant == "refresh_token":
                return self._refresh_grant(form)
            if grant == DEVICE_GRANT:
                return self._device_grant(form)
            if grant == "client_credentials":
                return self._client_grant(form)
            if grant == JWT_GRANT:
                return self._jwt_grant(form)
        return 400, {"error": "unsupported_grant_type"}

    def _jwt_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """A service account acting as a user (RFC 7523, as Google's token endpoint): the assertion's `sub`
        gets a token when its `iss` has delegation. The signature is not checked (the rig trusts the key)."""
        try:
            claims = json.loads(base64.urlsafe_b64decode(form["assertion"].split(".")[1] + "=="))
        except (KeyError, IndexError, ValueError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT"}
        if claims.get("iss") not in self.state.delegated:
            return 401, {"error": "unauthorized_client", "error_description": "Client is unauthorized"}
        self.state.app_grants += 1
        return 200, {"access_token": self._access(claims["sub"]), "token_type": "Bearer", "expires_in": self.lifetime}

    def _client_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        app = self.state.apps.get(form.get("client_id", ""))
        if app is None or form.get("client_secret") != app[0]:
            return 401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret"}
        if not form.get("scope", "").endswith("/.default"):
            return 400, {"error": "invalid_scope", "error_description": "client credentials need a /.default scope"}
        self.state.app_grants += 1
        return 200, {"access_token": self._access(app[1]), "token_type": "Bearer", "expires_in": self.lifetime}

    def _refresh_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        g = self.state.refresh.get(form.get("refresh_token", ""))
        if g is None or g.revoked:
            return 400, {"error": "invalid_grant", "error_description": "the refresh token is revoked or unknown"}
        if form.get("client_id") != g.client_id:
            return 401, {"error": "invalid_client"}
        if g.client_id == CLIENT_ID and form.get("client_secret") != CLIENT_SECRET:
            return 401, {"error": "invalid_client"}
        answer: dict[str, Any] = {
            "access_token": self._access(g.user),
            "token_type": "Bearer",
            "expires_in": self.lifetime,
        }
        if self.rotate:
            g.revoked = True
            fresh = "rt-" + secrets.token_urlsafe(16)
            self.state.refresh[fresh] = _Grant(g.user, g.client_id)
            answer["refresh_token"] = fresh
        return 200, answer

    def _device_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        device = self.state.devices.get(form.get("device_code", ""))
        if device is None or device.client_id != form.get("client_id"):
            return 400, {"error": "invalid_grant"}
        if device.user is None:
            return 400, {"error": "authorization_pending"}
        del self.state.devices[form["device_code"]]
        refresh = "rt-" + secrets.token_urlsafe(16)
        self.state.refresh[refresh] = _Grant(device.user, device.client_id)
        return 200, {
            "access_token": self._access(device.user),
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "scope": device.scope,
        }

    def device_endpoint(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        code, user_code = secrets.token_urlsafe(16), secrets.token_hex(4).upper()
        with self._lock:
            self.state.devices[code] = _Device(form.get("client_id", ""), form.get("scope", ""), user_code)
        return 200, {
            "device_code": code,
            "user_code": user_code,
            "verification_uri": f"{self.https_url}/devicelogin",
            "expires_in": 900,
            # MSAL waits `interval` seconds between polls and checks its deadline only then: a server saying 0
            # would have it poll forever, so gimport insists on at least 1
            "interval": 0,
            "message": f"To sign in, open {self.https_url}/devicelogin and enter the code {user_code}.",
        }

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.https_url}/{tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        }


class _Handler(BaseHTTPRequestHandler):
    oauth: OAuthServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        self.wfile.write(head.encode() + data)

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        parts = path.strip("/").split("/")
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            self._reply(200, self.oauth.openid_configuration(parts[0]))
        else:
            self._reply(404, {"error": "not_found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
        path = urllib.parse.urlsplit(self.path).path
        secret = ("refresh_token", "client_secret", "token", "device_code", "code", "client_assertion")
        with self.oauth._lock:
            self.oauth.state.requests.append((path, {k: ("*" if k in secret else v) for k, v in form.items()}))
        if path == "/introspect":
            user = self.oauth.active(form.get("token", ""))
            self._reply(200, {"active": True, "username": user} if user else {"active": False})
        elif path == "/token" or path.endswith("/oauth2/v2.0/token"):
            self._reply(*self.oauth.token_endpoint(form))
        elif path.endswith("/oauth2/v2.0/devicecode"):
            self._reply(*self.oauth.device_endpoint(form))
        else:
            self._reply(404, {"error": "not_found"})
