"""The import request gimport sends is the one the client library builds for it, byte for byte."""

from __future__ import annotations

import base64

import pytest
from google.auth.credentials import AnonymousCredentials

from gimport.backends.google.gmail import IMPORT_PARAMS, GmailClient


@pytest.mark.parametrize(
    ("raw", "labels"),
    [
        (b"Subject: a\r\n\r\nbody\r\n", ["INBOX", "Label_1"]),
        (bytes(range(256)) * 40, []),  # every byte value: the base64 alphabet's - and _ included
        (b"x", ["Label_\u65e5\u672c", 'odd "quoted" \\ name']),  # labels JSON must escape
    ],
)
def test_the_import_request_is_the_client_librarys(raw, labels):
    client = GmailClient(AnonymousCredentials(), api_url="http://127.0.0.1:9/")
    body = {"raw": base64.urlsafe_b64encode(raw).decode("ascii"), "labelIds": labels}
    theirs = client._messages.import_(userId="me", body=body, **IMPORT_PARAMS)
    ours = client._json_import(raw, labels)
    for attr in ("uri", "method", "body", "headers", "methodId", "resumable", "postproc"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert "internalDateSource=dateHeader" in ours.uri
    assert ours.headers is not client._import_template.headers  # execute() adds content-length to its own copy


def test_clients_share_the_built_resources_but_never_an_http_object():
    """The resources built from the discovery document are built once per API address and shared; a request
    executed on them without its client's HTTP object fails instead of going out with someone's credentials."""
    a = GmailClient(AnonymousCredentials(), api_url="http://127.0.0.1:9/")
    b = GmailClient(AnonymousCredentials(), api_url="http://127.0.0.1:9/")
    other = GmailClient(AnonymousCredentials(), api_url="http://127.0.0.1:8/")
    assert a._messages is b._messages
    assert a._import_template is b._import_template
    assert other._messages is not a._messages
    assert a._http() is not b._http()
    with pytest.raises(AssertionError, match="without its client's HTTP object"):
        a._labels.list(userId="me").execute()
