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
