"""One TLS context per trust store and process (gimport.backends.tls): shared, still verifying, read again
when the CA file changes, never keeping a failure. And httplib2's HTTPS connections on it, against a real
TLS server on loopback."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gimport.backends import tls
from gimport.backends.google.gmail_http import GmailHttp, _HTTPSConnection


def make_cert(where: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = where / f"{name}.pem", where / f"{name}-key.pem"
    cmd = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https(cert: tuple[Path, Path]) -> Iterator[str]:
    """An HTTPS server on loopback answering every GET with 200 "ok"."""

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_one_context_per_ca_file(cert: tuple[Path, Path], tmp_path: Path) -> None:
    first = tls.system_and(str(cert[0]))
    assert tls.system_and(str(cert[0])) is first
    assert first.verify_mode == ssl.CERT_REQUIRED
    assert first.check_hostname
    other, _key = make_cert(tmp_path, "other")
    assert tls.system_and(str(other)) is not first
    assert tls.system_and(None) is tls.system_and(None) is not first


def test_a_changed_ca_file_is_read_again(tmp_path: Path) -> None:
    ca, _key = make_cert(tmp_path, "ca")
    before = tls.system_and(str(ca))
    kept = len(tls._contexts)
    ca.write_text(ca.read_text() + "\n")  # same CA, another size: the file changed
    assert tls.system_and(str(ca)) is not before
    assert len(tls._contexts) == kept  # the stale one is replaced, not kept beside it


def test_a_failure_is_not_kept(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    with pytest.raises(FileNotFoundError):
        tls.system_and(str(missing))
    cert, _key = make_cert(tmp_path, "ca")
    cert.rename(missing)
    assert tls.system_and(str(missing)).verify_mode == ssl.CERT_REQUIRED


def test_threads_starting_together_build_one_context(tmp_path: Path) -> None:
    ca, _key = make_cert(tmp_path, "ca")
    got: list[ssl.SSLContext] = []
    threads = [threading.Thread(target=lambda: got.append(tls.bundle(str(ca)))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 16
    assert len({id(c) for c in got}) == 1


def test_https_connections_share_one_verifying_context(cert: tuple[Path, Path], https: str) -> None:
    answers, contexts = [], []
    for _ in range(2):  # two Http objects: two import threads
        h = GmailHttp(5.0)
        h.ca_certs = str(cert[0])
        resp, body = h.request(https)
        answers.append((resp.status, body))
        contexts += [c._context for c in h.connections.values()]
    assert answers == [(200, b"ok")] * 2
    assert len(contexts) == 2
    assert contexts[0] is contexts[1] is tls.bundle(str(cert[0]))


def test_https_still_refuses_an_unknown_certificate(https: str) -> None:
    """httplib2's own bundle does not hold the test CA: the shared context must not have turned checks off."""
    with pytest.raises(ssl.SSLCertVerificationError):
        GmailHttp(5.0).request(https)


def test_a_connection_without_verification_keeps_its_own_context(cert: tuple[Path, Path]) -> None:
    conn = _HTTPSConnection("127.0.0.1", 443, ca_certs=str(cert[0]), disable_ssl_certificate_validation=True)
    assert conn._context is not tls.bundle(str(cert[0]))
    assert conn._context.verify_mode == ssl.CERT_NONE
    shared = _HTTPSConnection("127.0.0.1", 443, ca_certs=str(cert[0]))
    assert shared._context is tls.bundle(str(cert[0]))
    assert not shared.disable_ssl_certificate_validation
