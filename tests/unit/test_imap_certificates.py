"""Certificate advice: a hostname mismatch or an expired certificate is not cured by
[source] ca_file, so the message must not say so. A real TLS handshake on loopback against generated certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gimport.backends.imap.source import ImapSource
from gimport.config.settings import SourceSettings
from gimport.errors import SourceError


def _cert(tmp: Path, *, names: list[x509.GeneralName], days: tuple[int, int]) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _serve_handshakes(cert: Path, key: Path) -> tuple[int, threading.Event]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    done = threading.Event()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"* OK ready\r\n")
            except (ssl.SSLError, OSError):
                pass
        finally:
            listener.close()
            done.set()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], done


@pytest.mark.parametrize(
    ("names", "days", "advice", "not_advice"),
    [
        ([x509.DNSName("mail.example.org")], (-1, 30), "another name", "set [source] ca_file to"),
        ([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], (-30, -1), "expired", "set [source] ca_file to"),
        ([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], (-1, 30), None, None),
    ],
    ids=["hostname-mismatch", "expired", "good"],
)
def test_certificate_advice_fits_the_cause(tmp_path, names, days, advice, not_advice):
    cert, key = _cert(tmp_path, names=names, days=days)
    port, done = _serve_handshakes(cert, key)
    settings = SourceSettings(host="127.0.0.1", user="alice", security="ssl", port=port, ca_file=cert, timeout=5)
    source = ImapSource(settings, "secret")
    if advice is None:
        with pytest.raises(SourceError) as err:  # the handshake verifies; the fake server then says no more
            source.connect()
        assert "certificate" not in str(err.value)
    else:
        with pytest.raises(SourceError) as err:
            source.connect()
        text = str(err.value)
        assert advice in text, text
        assert not_advice not in text, text
    assert done.wait(10)
