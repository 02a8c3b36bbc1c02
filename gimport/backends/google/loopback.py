"""The loopback receiver of `gimport auth`: listens on localhost (127.0.0.1 and ::1) for Google's redirect.

gimport's own (not ``InstalledAppFlow.run_local_server``): it keeps waiting when the browser asks for
something else (``/favicon.ico``), shows an honest page when consent was denied, and listens on both
addresses so that whichever one the browser picks for "localhost" reaches it.
"""

from __future__ import annotations

import errno
import http.server
import queue
import socket
import socketserver
import sys
import threading
import urllib.parse
from typing import Any

from gimport.errors import AuthError, ConfigError
from gimport.i18n import _

DEFAULT_PORT = 8765  # tried first, so that `ssh -L 8765:localhost:8765` can usually be given in advance

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>gimport</title></head>
<body style="font-family: sans-serif; margin: 3em"><h1>gimport</h1><p>{}</p></body></html>"""


class RedirectHandler(http.server.BaseHTTPRequestHandler):
    server: LoopbackServer
    timeout = 15  # a connection that sends nothing (a browser preconnect) must not live forever

    def log_message(self, format: str, *args: Any) -> None:  # the base class's name
        pass

    def do_GET(self) -> None:  # the base class's name
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if url.path != "/" or not ("code" in params or "error" in params):
            self._page(404, _("Nothing here: gimport is waiting for Google's answer."))
            return
        if "error" in params:
            self._page(200, _("Access was not granted. You can close this tab; the terminal says what to do next."))
        else:
            self._page(200, _("Google's answer reached gimport. You can close this tab and go back to the terminal."))
        # only after the page is written: the caller may close the server as soon as it has the answer
        self.server.answers.put(params)

    def _page(self, status: int, text: str) -> None:
        body = _PAGE.format(text).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class LoopbackServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    # SO_REUSEADDR lets a port in TIME_WAIT be reused but never one with a listener (Linux, macOS); on
    # Windows it would let two servers share the port, so there the default exclusive bind is kept.
    allow_reuse_address = sys.platform != "win32"

    def __init__(self, address: tuple[str, int], answers: queue.Queue[dict[str, str]]) -> None:
        self.answers = answers
        super().__init__(address, RedirectHandler)


class LoopbackServer6(LoopbackServer):
    address_family = socket.AF_INET6


class Receiver:
    """Listens on localhost:`port` (127.0.0.1 and ::1) until closed; answers arrive on `answers`.

    port None: DEFAULT_PORT when it is free, else any free port (another user's `gimport auth` on a shared
    server may hold 8765); `self.port` is the port actually used. An explicit port that is busy is a
    ConfigError."""

    def __init__(self, port: int | None) -> None:
        self.answers: queue.Queue[dict[str, str]] = queue.Queue()
        self._servers: list[LoopbackServer] = []
        self.port = 0
        if port is None:
            try:
                self._listen(DEFAULT_PORT)
            except ConfigError:  # busy (another user's listener?): any free port will do
                self._listen(0)
        else:
            self._listen(port)
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="gimport-auth")
            for s in self._servers
        ]
        for t in self._threads:
            t.start()

    def _listen(self, port: int) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(
                _("--port must be between 1 and 65535 (or 0 for any free port), not {port}").format(port=port)
            )
        for _attempt in range(5):  # with port 0, ::1 may hold the port 127.0.0.1 got: pick again
            try:
                self._bind(port)
                return
            except OSError as exc:
                self._close_servers()
                if exc.errno != errno.EADDRINUSE or port != 0:
                    why = (
                        _("in use: another 'gimport auth' running?") if exc.errno == errno.EADDRINUSE else exc.strerror
                    )
                    raise ConfigError(
                        _(
                            "cannot listen on localhost port {port} for Google's answer ({why}): choose another"
                            " port with --port, e.g. --port {other} (and use that number in ssh -L), or leave"
                            " --port out to take a free one"
                        ).format(port=port, why=why, other=port + 1 if 0 < port < 65535 else DEFAULT_PORT + 1)
                    ) from None
        raise ConfigError(_("cannot find a free localhost port: pass one with --port"))

    def _bind(self, port: int) -> None:
        v4 = LoopbackServer(("127.0.0.1", port), self.answers)
        self._servers.append(v4)
        self.port = v4.server_address[1]
        if socket.has_ipv6:
            try:
                self._servers.append(LoopbackServer6(("::1", self.port), self.answers))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise
                # no IPv6 loopback here: browsers then use 127.0.0.1

    def wait(self, timeout: float) -> dict[str, str]:
        try:
            return self.answers.get(timeout=timeout)
        except queue.Empty:
            raise AuthError(
                _(
                    "no answer from the browser within {timeout:g} s (--timeout to wait longer, --paste if the"
                    " browser cannot reach this machine)"
                ).format(timeout=timeout),
                hint="",
            ) from None

    def _close_servers(self) -> None:
        for s in self._servers:
            s.server_close()
        self._servers = []

    def close(self) -> None:
        for s in self._servers:
            s.shutdown()
        for t in self._threads:
            t.join()
        self._close_servers()
