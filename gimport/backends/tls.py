"""One TLS client context per trust store and process, shared by every connection that trusts the same CAs.

Building a context reads and parses a whole CA bundle: about 17 ms of CPU with OpenSSL 3, and far more when
many threads do it at once (OpenSSL's store takes read-write locks). A connection of its own per user, per
import thread and per reconnect (what imaplib's callers and httplib2 do by default) made an admin run's
start CPU-bound. An SSLContext is safe to share between threads: each connection gets its own SSL object
from it.

A context is made under a lock, so threads starting together wait for the first instead of each building
its own; a CA file that changes on disk (a long `run --follow`) is read again. A file that cannot be read
raises each time (OSError, ssl.SSLError): failures are not kept.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable

_lock = threading.Lock()
# (kind, files) -> (the files' stamps when it was made, the context): one per trust store, a stale one replaced
_contexts: dict[tuple[object, ...], tuple[tuple[object, ...], ssl.SSLContext]] = {}


def _stamp(path: str | None) -> tuple[int, int] | None:
    """What tells a CA file changed: its size and modification time (None: no file, or it cannot be read:
    loading it then raises the error the caller reports)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _cached(kind: str, files: tuple[str | None, ...], make: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """The context of `kind` made from the CA `files` (or directories), made once per version of them."""
    key, stamps = (kind, *files), tuple(map(_stamp, files))
    with _lock:
        found = _contexts.get(key)
        if found is None or found[0] != stamps:
            found = _contexts[key] = (stamps, make())
        return found[1]


def system_and(ca_file: str | None = None) -> ssl.SSLContext:
    """ssl.create_default_context() with `ca_file`'s CAs added to the system's (the IMAP side's [source]
    ca_file): verification and host names checked."""

    def make() -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if ca_file is not None:
            ctx.load_verify_locations(cafile=ca_file)
        return ctx

    # the system's store is what OpenSSL's environment names (SSL_CERT_FILE, SSL_CERT_DIR), else its defaults
    paths = ssl.get_default_verify_paths()
    return _cached("system", (ca_file, paths.cafile, paths.capath), make)


def bundle(ca_certs: str) -> ssl.SSLContext:
    """The context httplib2 builds for each HTTPS connection that verifies against `ca_certs` (its CA bundle):
    PROTOCOL_TLS_CLIENT, certificates required, host names checked, only `ca_certs` trusted."""

    def make() -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        ctx.load_verify_locations(ca_certs)
        return ctx

    return _cached("bundle", (ca_certs,), make)
