"""Tests of the Gmail API emulator, driven through the real google-api-python-client / google-auth / httplib2.

The emulator's Python API is used only to set things up (users, faults, quota) and to inspect what it stored.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import os
import random
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import google.auth.exceptions
import google.auth.jwt
import google.auth.transport.requests
import pytest
from google.auth import crypt
from google.oauth2 import service_account
from google_auth_oauthlib.flow import Flow, InstalledAppFlow
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload
from oauthlib.oauth2.rfc6749 import errors as oauth_errors

from tests.rig.gmail_client import authorized_http, build_service, credentials_from_info, plain_http, service_for
from tests.rig.gmail_emulator import Fault, GmailEmulator, parse_header_fields

ALICE = "alice@example.ac.jp"
BOB = "bob@example.ac.jp"
G = "https://www.googleapis.com/auth/"
FULL = "https://mail.google.com/"
INSERT = G + "gmail.insert"
LABELS = G + "gmail.labels"
MODIFY = G + "gmail.modify"
SETTINGS = G + "gmail.settings.basic"
REPO = Path(__file__).resolve().parents[1]


def make_message(n: int, body: bytes = b"hello\r\n", extra: bytes = b"") -> bytes:
    return (
        b"From: Sender <sender@old.example.ac.jp>\r\n"
        b"To: alice@example.ac.jp\r\n"
        b"Subject: message %d\r\n"
        b"Date: Tue, 03 Sep 2024 12:34:56 +0900\r\n"
        b"Message-ID: <m%d@old.example.ac.jp>\r\n" % (n, n) + extra + b"\r\n" + body
    )


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def error_of(exc: HttpError) -> dict:
    return json.loads(exc.content)["error"]


@pytest.fixture
def emu():
    with GmailEmulator() as e:
        e.add_user(ALICE)
        yield e


@pytest.fixture
def svc(emu):
    service, _creds = service_for(emu, ALICE)
    return service


# ----------------------------------------------------------------------------------------------------------
# Labels


def test_labels_list_create_get_and_conflicts(emu, svc):
    labels = svc.users().labels().list(userId="me").execute()["labels"]
    ids = {lab["id"] for lab in labels}
    assert {"INBOX", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT", "SENT", "DRAFT", "CHAT"} <= ids
    assert "CATEGORY_PERSONAL" in ids
    assert all(lab["type"] == "system" for lab in labels)

    created = (
        svc.users()
        .labels()
        .create(
            userId="me",
            body={"name": "Projects", "labelListVisibility": "labelShow", "messageListVisibility": "show"},
        )
        .execute()
    )
    assert created["id"].startswith("Label_")
    assert created["name"] == "Projects"
    assert created["type"] == "user"
    assert emu.label_by_name(ALICE, "projects")["id"] == created["id"]
    assert emu.user(ALICE).labels[created["id"]]["labelListVisibility"] == "labelShow"

    for name in ("PROJECTS", "projects", "CATEGORY_SOCIAL"):
        with pytest.raises(HttpError) as ei:
            svc.users().labels().create(userId="me", body={"name": name}).execute()
        err = error_of(ei.value)
        assert ei.value.resp.status == 409
        assert err["message"] == "Label name exists or conflicts"
        assert err["errors"][0]["reason"] == "aborted"
        assert err["status"] == "ABORTED"

    raws = [make_message(1, extra=b"X: 1\r\n"), make_message(2), make_message(3)]
    label_sets = [["INBOX", created["id"], "UNREAD"], [created["id"]], ["INBOX"]]
    for raw, lids in zip(raws, label_sets, strict=True):
        svc.users().messages().import_(userId="me", body={"raw": b64url(raw), "labelIds": lids}).execute()
    got = svc.users().labels().get(userId="me", id=created["id"]).execute()
    assert (got["messagesTotal"], got["messagesUnread"], got["threadsTotal"], got["threadsUnread"]) == (2, 1, 2, 1)
    inbox = svc.users().labels().get(userId="me", id="INBOX").execute()
    assert (inbox["messagesTotal"], inbox["messagesUnread"]) == (2, 1)
    with pytest.raises(HttpError) as ei:
        svc.users().labels().get(userId="me", id="Label_999").execute()
    assert ei.value.resp.status == 404


@pytest.mark.parametrize("name", ["Inbox", "DRAFTS", "archived", "Muted", "A//B", "/A", "A/", ""])
def test_label_reserved_and_malformed_names(svc, emu, name):
    with pytest.raises(HttpError) as ei:
        svc.users().labels().create(userId="me", body={"name": name}).execute()
    assert ei.value.resp.status == 400
    assert error_of(ei.value)["message"] == "Invalid label name"
    assert all(lab["type"] == "system" for lab in emu.user(ALICE).labels.values())


def test_label_nesting_needs_parent_first(svc, emu):
    with pytest.raises(HttpError) as ei:
        svc.users().labels().create(userId="me", body={"name": "2024/Lectures"}).execute()
    assert ei.value.resp.status == 400
    assert error_of(ei.value)["message"] == "Invalid label name"
    svc.users().labels().create(userId="me", body={"name": "2024"}).execute()
    child = svc.users().labels().create(userId="me", body={"name": "2024/Lectures"}).execute()
    grandchild = svc.users().labels().create(userId="me", body={"name": "2024/lectures/講義"}).execute()
    assert child["name"] == "2024/Lectures"
    assert grandchild["name"] == "2024/lectures/講義"
    assert emu.label_by_name(ALICE, "2024/LECTURES/講義")["id"] == grandchild["id"]


# ----------------------------------------------------------------------------------------------------------
# Import: every upload path


def test_import_json_raw_is_byte_exact(emu, svc):
    raw = make_message(7, body=b"caf\xe9 \x00 nul\r\nlone lf\nlone cr\r\x1b$B$3$s$K$A$O\x1b(B\r\n\xff\xfe")
    resp = (
        svc.users()
        .messages()
        .import_(
            userId="me",
            body={"raw": b64url(raw), "labelIds": ["INBOX", "UNREAD"]},
            internalDateSource="dateHeader",
            neverMarkSpam=True,
            processForCalendar=False,
        )
        .execute()
    )
    (msg,) = emu.user(ALICE).messages
    assert msg.raw == raw
    assert resp == {"id": msg.id, "threadId": msg.thread_id, "labelIds": ["INBOX", "UNREAD"]}
    assert msg.label_ids == ["INBOX", "UNREAD"]
    assert msg.upload_path == "json"
    assert msg.params == {"internalDateSource": "dateHeader", "neverMarkSpam": "true", "processForCalendar": "false"}
    assert msg.message_id == "<m7@old.example.ac.jp>"
    assert msg.internal_date_ms == int(datetime.datetime(2024, 9, 3, 3, 34, 56, tzinfo=datetime.UTC).timestamp()) * 1000
    assert emu.user(ALICE).import_calls == 1

    # Google also takes padded / standard base64 for bytes fields.
    raw2 = make_message(8, body=b"\xfb\xff\xbe?>")
    standard = base64.b64encode(raw2).decode()
    assert "+" in standard or "/" in standard
    svc.users().messages().import_(userId="me", body={"raw": standard}).execute()
    unpadded = b64url(make_message(9, body=b"x")).rstrip("=")
    svc.users().messages().import_(userId="me", body={"raw": unpadded}).execute()
    assert [m.raw for m in emu.user(ALICE).messages[1:]] == [raw2, make_message(9, body=b"x")]


def test_import_validation_errors_store_nothing(emu):
    svc, creds = service_for(emu, ALICE)
    cases = [
        ({"raw": b64url(make_message(1)), "labelIds": ["Label_42"]}, "Invalid label: Label_42"),
        ({"raw": b64url(make_message(1)), "labelIds": ["INBOX", "DRAFT"]}, "Invalid label: DRAFT"),
        ({"raw": b64url(make_message(1)), "labelIds": ["CHAT"]}, "Invalid label: CHAT"),
        ({"raw": "", "labelIds": ["INBOX"]}, "'raw' RFC822 payload message string"),
        ({"raw": "!!not base64!!"}, "Base64 decoding failed"),
        ({"raw": b64url(make_message(1)), "labelIDs": ["INBOX"]}, 'Unknown name "labelIDs"'),
    ]
    for body, message in cases:
        with pytest.raises(HttpError) as ei:
            svc.users().messages().import_(userId="me", body=body).execute()
        assert ei.value.resp.status == 400, body
        assert message in error_of(ei.value)["message"]
    # The client checks enums itself; the front end's own check, through a bare AuthorizedHttp:
    http = authorized_http(creds)
    for query in ("internalDateSource=bogus", "neverMarkSpam=maybe"):
        resp, content = http.request(
            emu.base_url + "gmail/v1/users/me/messages/import?" + query,
            "POST",
            body=json.dumps({"raw": b64url(make_message(1))}),
            headers={"Content-Type": "application/json"},
        )
        assert resp.status == 400
        assert "Invalid value at" in json.loads(content)["error"]["message"]
    assert emu.user(ALICE).messages == []
    assert emu.user(ALICE).import_calls == 0


def test_internal_date_sources(emu, svc):
    before = int(time.time() * 1000)
    no_date = b"From: a@example.ac.jp\r\nSubject: no date\r\n\r\nbody\r\n"
    bad_date = b"Date: the day after tomorrow\r\nSubject: bad\r\n\r\nbody\r\n"
    folded = b"Subject: folded\r\nDate: Wed, 1 Jan 2003\r\n 00:00:00 -0000\r\n\r\nbody\r\n"
    imports = svc.users().messages()
    imports.import_(userId="me", body={"raw": b64url(no_date)}).execute()
    imports.import_(userId="me", body={"raw": b64url(bad_date)}).execute()
    imports.import_(userId="me", body={"raw": b64url(make_message(1))}, internalDateSource="receivedTime").execute()
    imports.import_(userId="me", body={"raw": b64url(folded)}).execute()
    after = int(time.time() * 1000)
    m = emu.user(ALICE).messages
    for msg in m[:3]:
        assert before <= msg.internal_date_ms <= after
    assert m[3].internal_date_ms == int(datetime.datetime(2003, 1, 1, tzinfo=datetime.UTC).timestamp()) * 1000


@pytest.mark.parametrize("mode", ["lenient", "strict"])
def test_date_modes(mode):
    """Strict reads only RFC 5322's strict form in exactly one Date header; lenient what email.utils reads."""
    strict_ok = b"Date: Mon, 01 Dec 2003 10:00:00 +0900 (JST)\r\nSubject: ok\r\n\r\nbody\r\n"
    two_digit = b"Date: Mon, 01 Dec 03 10:00:00 +0900\r\nSubject: 03\r\n\r\nbody\r\n"
    named_zone = b"Date: Mon, 01 Dec 2003 01:00:00 GMT\r\nSubject: GMT\r\n\r\nbody\r\n"
    twice = b"Date: Mon, 01 Dec 2003 10:00:00 +0900\r\nDate: Mon, 01 Dec 2003 10:00:00 +0900\r\n\r\nbody\r\n"
    wrong_day = b"Date: Tue, 01 Dec 2003 10:00:00 +0900\r\nSubject: Tue\r\n\r\nbody\r\n"
    with GmailEmulator(date_mode=mode) as e:
        e.add_user(ALICE)
        svc, _creds = service_for(e, ALICE)
        before = int(time.time() * 1000)
        for raw in (strict_ok, two_digit, named_zone, twice, wrong_day):
            svc.users().messages().import_(userId="me", body={"raw": b64url(raw)}).execute()
        after = int(time.time() * 1000)
        dated = [m.internal_date_ms for m in e.user(ALICE).messages]
    header = int(datetime.datetime(2003, 12, 1, 1, tzinfo=datetime.UTC).timestamp()) * 1000
    assert dated[0] == header
    if mode == "lenient":
        assert dated == [header] * 5
    else:
        assert all(before <= d <= after for d in dated[1:])
    with pytest.raises(ValueError, match="date_mode"):
        GmailEmulator(date_mode="kind")


def test_header_parsing_on_bytes():
    raw = b"Message-ID:\r\n  <folded@x>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nMessage-ID: <body@x>\r\n"
    assert parse_header_fields(raw) == {"message-id": "<folded@x>", "date": "Mon, 1 Jan 2024 00:00:00 +0000"}
    assert parse_header_fields(b"Subject: \xe9\n\nMessage-ID: <no>\n") == {}


def test_media_upload_is_byte_exact(emu, svc):
    raw = make_message(3, body=b"\x00\x01\xfe\xff 8-bit body \xe3\x81\x82\r\n.\r\n")
    media = MediaIoBaseUpload(io.BytesIO(raw), mimetype="message/rfc822", resumable=False)
    resp = svc.users().messages().import_(userId="me", media_body=media, neverMarkSpam=True).execute()
    (msg,) = emu.user(ALICE).messages
    assert msg.raw == raw
    assert msg.upload_path == "media"
    assert msg.label_ids == []
    assert resp == {"id": msg.id, "threadId": msg.thread_id}  # no labelIds key when there are none
    assert msg.params == {"neverMarkSpam": "true"}

    media = MediaIoBaseUpload(io.BytesIO(raw), mimetype="text/plain", resumable=False)
    with pytest.raises(HttpError) as ei:
        svc.users().messages().import_(userId="me", media_body=media).execute()
    assert ei.value.resp.status == 400
    assert "Media type 'text/plain' is not supported" in str(ei.value)


def test_multipart_upload_ascii_and_the_client_8bit_bug(emu, svc):
    raw = make_message(4, body=b"plain ascii\r\nsecond line\r\n")
    media = MediaIoBaseUpload(io.BytesIO(raw), mimetype="message/rfc822", resumable=False)
    resp = (
        svc.users()
        .messages()
        .import_(userId="me", body={"labelIds": ["INBOX", "STARRED"]}, media_body=media, neverMarkSpam=True)
        .execute()
    )
    (msg,) = emu.user(ALICE).messages
    assert msg.raw == raw
    assert msg.upload_path == "multipart"
    assert msg.label_ids == ["INBOX", "STARRED"] == resp["labelIds"]
    assert msg.params == {"neverMarkSpam": "true"}

    # google-api-python-client bug (#2195): multipart upload of an 8-bit message dies client-side.
    media = MediaIoBaseUpload(io.BytesIO(raw + b"caf\xe9\r\n"), mimetype="message/rfc822", resumable=False)
    with pytest.raises(UnicodeEncodeError):
        svc.users().messages().import_(userId="me", body={"labelIds": ["INBOX"]}, media_body=media).execute()
    assert len(emu.user(ALICE).messages) == 1


def _chunk_marker(data: bytes, chunk: int, chunksize: int) -> bytes:
    return data[chunk * chunksize + 1000 : chunk * chunksize + 1032]


def test_resumable_upload_20mb_with_chunk_faults_byte_exact(emu, svc):
    chunksize = 2 * 1024 * 1024
    body = random.Random(7).randbytes(20 * 1024 * 1024 - 300)
    raw = make_message(20) + body
    n_chunks = -(-len(raw) // chunksize)
    assert n_chunks == 10
    # first chunk refused (the status query then has no Range header), chunk 4 refused, chunk 7 kept but
    # answered 503, and the last chunk completes the message but is answered 503 too.
    emu.faults.add(Fault("5xx_before", method="upload.chunk", match=_chunk_marker(raw, 0, chunksize)))
    emu.faults.add(Fault("5xx_before", method="upload.chunk", match=_chunk_marker(raw, 4, chunksize), status=500))
    emu.faults.add(Fault("5xx_after", method="upload.chunk", match=_chunk_marker(raw, 7, chunksize)))
    emu.faults.add(Fault("5xx_after", method="upload.chunk", match=raw[-32:]))

    media = MediaIoBaseUpload(io.BytesIO(raw), mimetype="message/rfc822", chunksize=chunksize, resumable=True)
    request = (
        svc.users()
        .messages()
        .import_(userId="me", body={"labelIds": ["INBOX", "IMPORTANT"]}, media_body=media, neverMarkSpam=True)
    )
    http = plain_http()
    response, errors, progress = None, [], []
    for _ in range(40):  # 10 chunks, 4 errors: a bound, so a broken server fails the test instead of hanging it
        if response is not None:
            break
        try:
            status, response = request.next_chunk(num_retries=0)
        except HttpError as e:
            errors.append(e.resp.status)
            if len(errors) == 1:
                # Nothing received yet: a status query answers 308 without a Range header.
                resp, _ = http.request(request.resumable_uri, "PUT", headers={"Content-Range": f"bytes */{len(raw)}"})
                assert resp.status == 308
                assert "range" not in resp
            continue
        if status is not None:
            progress.append(status.resumable_progress)
    assert response is not None
    assert errors == [503, 500, 503, 503]
    (msg,) = emu.user(ALICE).messages
    assert msg.raw == raw  # byte-exact, 20 MB
    assert response == {"id": msg.id, "threadId": msg.thread_id, "labelIds": ["INBOX", "IMPORTANT"]}
    assert msg.upload_path == "resumable"
    assert msg.params == {"neverMarkSpam": "true"}
    assert progress == sorted(progress)
    assert progress[-1] == 9 * chunksize
    requests = emu.stats.snapshot()["requests"]
    assert requests["messages.import"] == 1  # the initiating POST
    assert requests["upload.chunk"] == n_chunks + 2  # the two refused chunks were sent again
    assert requests["upload.status"] == 4 + 1  # one per error, plus ours
    assert emu.stats.snapshot()["units_charged"][ALICE] == 25
    assert emu.user(ALICE).import_calls == 1

    # A status query after completion answers 200 and the message again.
    resp, content = http.request(request.resumable_uri, "PUT", headers={"Content-Range": f"bytes */{len(raw)}"})
    assert resp.status == 200
    assert json.loads(content)["id"] == msg.id


# ----------------------------------------------------------------------------------------------------------
# Batch, quota, concurrency


def test_batch_of_ten_imports_with_one_rejected(emu, svc):
    emu.faults.add(Fault("400", match=b"<m4@"))
    results: dict[str, tuple] = {}

    def callback(request_id, response, exception):
        results[request_id] = (response, exception)

    batch = svc.new_batch_http_request(callback=callback)
    for n in range(10):
        body = {"raw": b64url(make_message(n)), "labelIds": ["INBOX"]}
        batch.add(svc.users().messages().import_(userId="me", body=body, neverMarkSpam=True), request_id=f"r{n}")
    batch.execute()

    assert sorted(results) == sorted(f"r{n}" for n in range(10))
    response, exc = results["r4"]
    assert response is None
    assert exc.resp.status == 400
    assert error_of(exc)["message"] == "Invalid message"
    stored = {m.message_id: m for m in emu.user(ALICE).messages}
    assert len(emu.user(ALICE).messages) == 9
    for n in range(10):
        if n == 4:
            assert "<m4@old.example.ac.jp>" not in stored
            continue
        response, exc = results[f"r{n}"]
        msg = stored[f"<m{n}@old.example.ac.jp>"]
        assert exc is None
        assert response["id"] == msg.id  # replies map back to the right request
        assert msg.raw == make_message(n)
        assert msg.upload_path == "json"
        assert msg.params == {"neverMarkSpam": "true"}
    snap = emu.stats.snapshot()
    assert snap["requests"]["batch"] == 1
    assert snap["requests"]["messages.import"] == 10
    assert snap["units_charged"][ALICE] == 9 * 25  # each part charged; the refused one is not
    assert snap["faults_fired"] == 1


def test_batch_with_auth_on_the_outer_request_only(emu):
    """A hand-made batch (LF line endings inside parts, no Authorization in them) sent with AuthorizedHttp."""
    _svc, creds = service_for(emu, ALICE)
    raw = make_message(1, body=b"\xe9\x00\r\n")
    payload = json.dumps({"raw": b64url(raw), "labelIds": ["INBOX"]})
    parts = [
        ("a+1", "GET /gmail/v1/users/me/labels/INBOX HTTP/1.1\n\n"),
        (
            "a+2",
            "POST /gmail/v1/users/me/messages/import?neverMarkSpam=true HTTP/1.1\n"
            f"Content-Type: application/json\ncontent-length: {len(payload)}\n\n{payload}",
        ),
        ("a+3", "GET /gmail/v1/users/me/labels/Label_77 HTTP/1.1\n\n"),
    ]
    body = "".join(
        f"--XYZ\r\nContent-Type: application/http\r\nContent-ID: <{cid}>\r\n\r\n{inner}\r\n" for cid, inner in parts
    )
    body += "--XYZ--\r\n"
    resp, content = authorized_http(creds).request(
        emu.base_url + "batch/gmail/v1",
        "POST",
        body=body,
        headers={"Content-Type": 'multipart/mixed; boundary="XYZ"'},
    )
    assert resp.status == 200
    assert resp["content-type"].startswith("multipart/mixed; boundary=")
    text = content.decode()
    assert re.findall(r"Content-ID: <(response-a\+\d)>", text) == ["response-a+1", "response-a+2", "response-a+3"]
    assert re.findall(r"HTTP/1\.1 (\d+)", text) == ["200", "200", "404"]
    assert "Content-Type: application/http\r\n" in text
    assert "HTTP/1.1 200 OK\r\n" in text
    (msg,) = emu.user(ALICE).messages
    assert msg.raw == raw
    assert msg.params == {"neverMarkSpam": "true"}
    assert msg.label_ids == ["INBOX"]
    assert msg.id in text


def test_quota_429_retry_after_and_refill(emu, svc):
    # 15,000 units/min = 250 units/s; a bucket of 25 units (one import) refills in 100 ms.
    emu.set_quota(15000, burst_seconds=0.1)
    imports = svc.users().messages()
    imports.import_(userId="me", body={"raw": b64url(make_message(0))}).execute()
    for n in range(1, 6):
        try:
            imports.import_(userId="me", body={"raw": b64url(make_message(n))}).execute()
        except HttpError as e:
            refused_at = time.time()
            status, err = e.resp.status, error_of(e)
            break
    else:
        pytest.fail("no 429 from the quota")
    assert status == 429
    assert err["status"] == "RESOURCE_EXHAUSTED"
    assert err["errors"][0]["reason"] == "rateLimitExceeded"
    assert err["errors"][0]["domain"] == "usageLimits"
    m = re.fullmatch(
        r"User-rate limit exceeded\.  Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)", err["message"]
    )
    assert m, err["message"]
    retry_at = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
    retry_at = retry_at.timestamp()
    assert refused_at - 1 <= retry_at <= refused_at + 0.11
    stored_before = len(emu.user(ALICE).messages)

    deadline = time.monotonic() + 5
    while True:
        try:
            imports.import_(userId="me", body={"raw": b64url(make_message(99))}).execute()
            break
        except HttpError as e2:
            assert e2.resp.status == 429  # noqa: PT017 - calls until one goes through: each refusal is checked
            assert time.monotonic() < deadline
    assert time.time() >= retry_at - 0.002  # nothing passed before the announced time
    snap = emu.stats.snapshot()
    assert snap["quota_limited"] >= 1
    assert snap["rate_limited"] == snap["quota_limited"]
    assert snap["units_charged"][ALICE] == 25 * (stored_before + 1)  # refused calls cost nothing


def _retry_at(exc: HttpError) -> float:
    """The wall-clock time of Gmail's "Retry after <ts>" in a 429's message."""
    err = error_of(exc)
    assert exc.resp.status == 429, err
    assert err["errors"][0]["reason"] == "rateLimitExceeded", err
    m = re.fullmatch(
        r"User-rate limit exceeded\.  Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)", err["message"]
    )
    assert m, err["message"]
    when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
    return when.timestamp()


def test_sliding_window_quota_refuses_until_the_oldest_charge_ages_out(emu, svc):
    # 1,500 units/min over a 2 s window: 50 units in any 2 s, i.e. two imports. A token bucket at that rate
    # would let the next call through as it refills; the window frees nothing until a charge ages out.
    emu.set_quota(1500, mode="sliding", window=2.0)
    imports = svc.users().messages()
    sent = []
    for n in range(2):
        if n:
            time.sleep(0.5)  # not a wait for anything: spaces the two charges so they age out 0.5 s apart
        sent.append(time.time())
        imports.import_(userId="me", body={"raw": b64url(make_message(n))}).execute()
    with pytest.raises(HttpError) as ei:
        imports.import_(userId="me", body={"raw": b64url(make_message(2))}).execute()
    refused_at = time.time()
    first_out = _retry_at(ei.value)
    # the first charge leaves the window 2 s after it was made (between sending it and the refusal)
    assert sent[0] + 2 - 0.01 <= first_out <= refused_at + 2
    with pytest.raises(HttpError) as ei:  # the units in the window plus this call's: 50 + 1 > 50
        svc.users().labels().list(userId="me").execute()
    assert _retry_at(ei.value) == pytest.approx(first_out, abs=0.002)

    deadline = time.monotonic() + 10
    while True:
        try:
            imports.import_(userId="me", body={"raw": b64url(make_message(3))}).execute()
            break
        except HttpError as e:
            assert _retry_at(e) == pytest.approx(first_out, abs=0.002)  # noqa: PT017 - as above
            assert time.monotonic() < deadline
    assert time.time() >= first_out - 0.002  # nothing passed before the announced time
    # the window now holds the second import and this one: the next call waits for the second to age out
    with pytest.raises(HttpError) as ei:
        imports.import_(userId="me", body={"raw": b64url(make_message(4))}).execute()
    second_out = _retry_at(ei.value)
    assert sent[1] + 2 - 0.01 <= second_out <= first_out + 2
    assert second_out > first_out + 0.4
    snap = emu.stats.snapshot()
    assert snap["units_charged"][ALICE] == 3 * 25  # refused calls cost nothing
    assert snap["rate_limited"] == snap["quota_limited"] >= 4
    assert snap["concurrency_limited"] == 0


def test_quota_mode_is_checked_and_bucket_stays_the_default():
    with pytest.raises(ValueError, match="quota_mode"):
        GmailEmulator(quota_units_per_minute=6000, quota_mode="fixed")
    with pytest.raises(ValueError, match="quota_window"):
        GmailEmulator(quota_units_per_minute=6000, quota_mode="sliding", quota_window=0)
    emu = GmailEmulator(quota_units_per_minute=6000)
    assert emu.quota_mode == "bucket"
    assert emu.burst_seconds == 1.0


def test_injected_429_then_execute_num_retries_succeeds(emu, svc):
    emu.faults.add(Fault("429", count=2, delay=30))
    request = svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(1))})
    sleeps: list[float] = []
    request._sleep = sleeps.append  # the client's backoff, without waiting
    response = request.execute(num_retries=3)
    assert len(sleeps) == 2
    (msg,) = emu.user(ALICE).messages
    assert response["id"] == msg.id
    snap = emu.stats.snapshot()
    assert snap["faults_fired"] == 2
    assert snap["rate_limited"] == 2
    assert snap["units_charged"][ALICE] == 25


def test_concurrency_cap(emu):
    emu.max_concurrent = 3
    svc, creds = service_for(emu, ALICE)
    svc.users().labels().list(userId="me").execute()  # token fetched before the threads share it
    slow = emu.faults.add(Fault("slow", method="labels.list", count=3, delay=30))
    results: list = []

    def call():
        results.append(svc.users().labels().list(userId="me").execute(http=authorized_http(creds)))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while emu.in_flight(ALICE) < 3:
        assert time.monotonic() < deadline, "slow calls never arrived"
        time.sleep(0.002)
    with pytest.raises(HttpError) as ei:
        svc.users().getProfile(userId="me").execute()
    err = error_of(ei.value)
    assert ei.value.resp.status == 429
    assert err["message"] == "Too many concurrent requests for user."
    assert err["errors"][0]["reason"] == "rateLimitExceeded"
    slow.release()
    for t in threads:
        t.join(10)
    assert len(results) == 3
    assert emu.in_flight(ALICE) == 0
    assert svc.users().getProfile(userId="me").execute()["emailAddress"] == ALICE
    snap = emu.stats.snapshot()
    assert snap["concurrency_limited"] == 1
    assert snap["units_charged"][ALICE] == 1 + 3 + 1  # the 429 is free

    # A batch is one request for the cap: five parts pass with a cap of one.
    emu.max_concurrent = 1
    got = []
    batch = svc.new_batch_http_request(callback=lambda rid, resp, exc: got.append(exc or resp["id"]))
    for lid in ("INBOX", "SENT", "SPAM", "TRASH", "UNREAD"):
        batch.add(svc.users().labels().get(userId="me", id=lid))
    batch.execute()
    assert got == ["INBOX", "SENT", "SPAM", "TRASH", "UNREAD"]
    assert emu.in_flight(ALICE) == 0


def test_latency_per_call_and_per_mb_holds_the_slot(emu):
    svc, creds = service_for(emu, ALICE)
    svc.users().labels().list(userId="me").execute()  # token fetched before the latency is on
    emu.latency, emu.latency_per_mb, emu.max_concurrent = 0.3, 2.0, 1
    t = time.monotonic()
    small = svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(1))}).execute()
    small_secs = time.monotonic() - t
    assert 0.3 <= small_secs < 0.3 + 1.0
    big = make_message(2, body=b"x" * 76 + b"\r\n") + b"y" * 300_000  # ~400 KB once base64 in JSON
    box: list = []
    caller = threading.Thread(
        target=lambda: box.append(
            svc.users().messages().import_(userId="me", body={"raw": b64url(big)}).execute(http=authorized_http(creds))
        )
    )
    t = time.monotonic()
    caller.start()
    deadline = time.monotonic() + 10
    while emu.in_flight(ALICE) < 1:
        assert time.monotonic() < deadline, "the call never arrived"
        time.sleep(0.002)
    # it holds its slot while it takes its time: another call is refused at once, without the latency
    refused_at = time.monotonic()
    with pytest.raises(HttpError) as ei:
        svc.users().getProfile(userId="me").execute()
    assert error_of(ei.value)["message"] == "Too many concurrent requests for user."
    assert time.monotonic() - refused_at < 0.3
    caller.join(10)
    big_secs = time.monotonic() - t
    assert 0.3 + 2.0 * 0.4 <= big_secs < 0.3 + 2.0 * 0.6 + 1.0  # the size part counts the request body
    assert [m.id for m in emu.user(ALICE).messages] == [small["id"], box[0]["id"]]


@pytest.mark.parametrize("merge", [True, False])
def test_reimport_of_same_message_id(merge):
    with GmailEmulator(merge_duplicates=merge) as emu:
        emu.add_user(ALICE)
        svc, _ = service_for(emu, ALICE)
        lab = svc.users().labels().create(userId="me", body={"name": "Old"}).execute()
        raw = make_message(5)
        first = svc.users().messages().import_(userId="me", body={"raw": b64url(raw), "labelIds": ["INBOX"]}).execute()
        second = (
            svc.users()
            .messages()
            .import_(userId="me", body={"raw": b64url(raw), "labelIds": [lab["id"], "INBOX"]})
            .execute()
        )
        st = emu.user(ALICE)
        assert st.import_calls == 2
        if merge:
            assert second["id"] == first["id"]
            assert len(st.messages) == 1
            assert st.messages[0].label_ids == ["INBOX", lab["id"]] == second["labelIds"]
        else:
            assert second["id"] != first["id"]
            assert len(st.messages) == 2
            assert [m.label_ids for m in st.messages] == [["INBOX"], [lab["id"], "INBOX"]]
        reply = b"In-Reply-To: <m5@old.example.ac.jp>\r\nMessage-ID: <reply@x>\r\nSubject: Re\r\n\r\nok\r\n"
        third = svc.users().messages().import_(userId="me", body={"raw": b64url(reply)}).execute()
        assert third["threadId"] == first["threadId"] != third["id"]


# ----------------------------------------------------------------------------------------------------------
# Faults


def test_fault_5xx_before_is_not_stored(emu, svc):
    emu.faults.add(Fault("5xx_before", status=503))
    with pytest.raises(HttpError) as ei:
        svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(1))}).execute()
    assert ei.value.resp.status == 503
    assert error_of(ei.value)["status"] == "UNAVAILABLE"
    assert emu.user(ALICE).messages == []
    assert emu.user(ALICE).import_calls == 0
    svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(1))}).execute()
    assert len(emu.user(ALICE).messages) == 1


def test_fault_5xx_after_is_stored(emu, svc):
    emu.faults.add(Fault("5xx_after", method="messages.import", status=500))
    with pytest.raises(HttpError) as ei:
        svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(1))}).execute()
    assert ei.value.resp.status == 500
    (msg,) = emu.user(ALICE).messages
    assert msg.raw == make_message(1)


def test_fault_reset_after_is_stored_and_client_sees_connection_error(emu, svc):
    emu.faults.add(Fault("reset_after"))
    with pytest.raises(ConnectionError):
        svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(1))}).execute()
    assert len(emu.user(ALICE).messages) == 1
    # the same client carries on over a new connection
    svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(2))}).execute()
    assert len(emu.user(ALICE).messages) == 2


def test_fault_close_after_makes_httplib2_resend_the_post():
    # Documents a duplicate hazard: a connection closed without a response is silently retried by httplib2.
    with GmailEmulator(merge_duplicates=False) as emu:
        emu.add_user(ALICE)
        svc, _ = service_for(emu, ALICE)
        emu.faults.add(Fault("close_after"))
        svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(1))}).execute()
        assert [m.raw for m in emu.user(ALICE).messages] == [make_message(1)] * 2
        assert emu.stats.snapshot()["requests"]["messages.import"] == 2


def test_fault_skip_count_match_and_method_names(emu, svc):
    fault = emu.faults.add(
        Fault("5xx_before", method="gmail.users.messages.import", count=2, skip=1, match=b"X-Tag: y")
    )
    assert fault.method == "messages.import"
    imports = svc.users().messages()
    outcomes = []
    for n, tagged in enumerate([False, True, False, True, True, True]):
        raw = make_message(n, extra=b"X-Tag: y\r\n" if tagged else b"")
        try:
            imports.import_(userId="me", body={"raw": b64url(raw)}).execute()
            outcomes.append("ok")
        except HttpError as e:
            outcomes.append(e.resp.status)
    assert outcomes == ["ok", "ok", "ok", 503, 503, "ok"]
    assert fault.fired == 2
    assert fault.exhausted
    emu.faults.add(Fault("5xx_before", method="labels.create", match=b"Broken"))
    svc.users().labels().create(userId="me", body={"name": "Fine"}).execute()
    with pytest.raises(HttpError):
        svc.users().labels().create(userId="me", body={"name": "Broken"}).execute()
    with pytest.raises(ValueError, match="unknown fault kind 'boom'"):
        Fault("boom")
    with pytest.raises(ValueError, match=r"unknown method name 'labels\.lst'"):
        Fault("slow", method="labels.lst")


# ----------------------------------------------------------------------------------------------------------
# OAuth


class _UrlCatcher(io.StringIO):
    """Stands in for stdout: catches the authorization URL that run_local_server prints."""

    def __init__(self) -> None:
        super().__init__()
        self.url: str | None = None
        self.ready = threading.Event()

    def write(self, s: str) -> int:
        m = re.search(r"http://\S+", s)
        if m and self.url is None:
            self.url = m.group(0)
            self.ready.set()
        return super().write(s)


def _no_redirect_opener():
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    return urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)


def test_oauth_installed_app_flow_with_pkce(emu, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    scopes = [INSERT, LABELS, "openid", G + "userinfo.email"]
    flow = InstalledAppFlow.from_client_config(emu.client_config(), scopes)
    catcher = _UrlCatcher()
    monkeypatch.setattr(sys, "stdout", catcher)
    browser_errors: list = []

    def browser():
        try:
            assert catcher.ready.wait(10)
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(catcher.url, timeout=10) as r:  # follows the 302 to the flow's local server
                r.read()
        except Exception as e:  # noqa: BLE001 - whatever it is, the test thread reports it
            browser_errors.append(e)

    t = threading.Thread(target=browser)
    t.start()
    creds = flow.run_local_server(port=0, open_browser=False, authorization_prompt_message="{url}", timeout_seconds=10)
    t.join(10)
    assert browser_errors == []
    asked = emu.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) >= 43
    assert asked["redirect_uri"].startswith("http://localhost:")
    assert asked["response_type"] == "code"
    assert creds.refresh_token
    assert creds.token
    assert set(creds.scopes) == set(scopes)
    claims = google.auth.jwt.decode(creds.id_token, verify=False)
    assert claims["email"] == ALICE
    assert claims["email_verified"] is True
    assert claims["aud"] == emu.client_id
    assert {"sub", "iss", "iat", "exp"} <= set(claims)

    creds = creds.with_token_uri(emu.base_url + "token")
    svc = build_service(emu.base_url, creds)
    assert any(lab["id"] == "INBOX" for lab in svc.users().labels().list(userId="me").execute()["labels"])
    creds.refresh(google.auth.transport.requests.Request())  # the refresh token works too


def test_oauth_code_exchange_rejects_wrong_pkce_verifier_and_denied_consent(emu, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    flow = Flow.from_client_config(emu.client_config(), [INSERT], redirect_uri="http://localhost:9/")
    url, state = flow.authorization_url()
    with pytest.raises(urllib.error.HTTPError) as ei:
        _no_redirect_opener().open(url, timeout=10)
    location = ei.value.headers["Location"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert location.startswith("http://localhost:9/?")
    assert query["state"] == [state]
    assert query["scope"] == [INSERT]
    flow.code_verifier = "x" * 64
    with pytest.raises(oauth_errors.InvalidGrantError):
        flow.fetch_token(code=query["code"][0])

    emu.deny_consent = True
    url, state = flow.authorization_url()
    with pytest.raises(urllib.error.HTTPError) as ei:
        _no_redirect_opener().open(url, timeout=10)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(ei.value.headers["Location"]).query)
    assert query == {"state": [state], "error": ["access_denied"]}


def test_oauth_refresh_expiry_and_revocation(emu):
    svc, creds = service_for(emu, ALICE)
    assert creds.token is None
    svc.users().labels().list(userId="me").execute()  # refresh grant on first use
    first_token = creds.token
    assert emu.stats.snapshot()["requests"]["oauth.token"] == 1

    emu.expire_access_tokens(ALICE)  # the server says 401, AuthorizedHttp refreshes and retries
    svc.users().labels().list(userId="me").execute()
    assert creds.token != first_token
    assert emu.stats.snapshot()["requests"]["oauth.token"] == 2

    # revoke the current access token at /revoke: the whole grant goes, refresh gives invalid_grant
    http = plain_http()
    resp, content = http.request(
        emu.base_url + "revoke",
        "POST",
        body=urllib.parse.urlencode({"token": creds.token}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 200
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        svc.users().labels().list(userId="me").execute()
    resp, content = http.request(emu.base_url + "revoke?token=unknown", "POST")
    assert resp.status == 400
    assert json.loads(content)["error"] == "invalid_token"

    # revoke_refresh_tokens(): a second grant's refresh fails once its access token is gone
    svc2, _creds2 = service_for(emu, ALICE, [LABELS])
    svc2.users().labels().list(userId="me").execute()
    emu.revoke_refresh_tokens(ALICE)
    svc2.users().labels().list(userId="me").execute()  # the access token still works
    emu.expire_access_tokens(ALICE)
    with pytest.raises(google.auth.exceptions.RefreshError, match="Token has been expired or revoked"):
        svc2.users().labels().list(userId="me").execute()


def test_missing_or_unknown_access_token_gets_google_401(emu):
    svc = build_service(emu.base_url, http=plain_http())  # no credentials at all
    with pytest.raises(HttpError) as ei:
        svc.users().labels().list(userId="me").execute()
    err = error_of(ei.value)
    assert ei.value.resp.status == 401
    assert err["status"] == "UNAUTHENTICATED"
    assert err["errors"][0]["reason"] == "authError"
    assert err["message"].startswith("Request had invalid authentication credentials.")
    assert "invalid_token" in ei.value.resp["www-authenticate"]
    resp, content = plain_http().request(
        emu.base_url + "gmail/v1/users/me/labels", headers={"Authorization": "Bearer ya29.bogus"}
    )
    assert resp.status == 401
    assert json.loads(content)["error"]["code"] == 401


def test_service_account_jwt_bearer_grant(emu):
    class UnsignedSigner(crypt.Signer):  # the emulator does not check signatures
        key_id = "test"

        def sign(self, message):
            return b"not-a-signature"

    def sa_creds(subject):
        return service_account.Credentials(
            UnsignedSigner(),
            "migrator@project.iam.gserviceaccount.com",
            emu.base_url + "token",
            scopes=[INSERT, LABELS],
            subject=subject,
        )

    svc = build_service(emu.base_url, sa_creds(ALICE))
    svc.users().messages().import_(userId=ALICE, body={"raw": b64url(make_message(1))}).execute()
    assert len(emu.user(ALICE).messages) == 1
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        build_service(emu.base_url, sa_creds("nobody@example.ac.jp")).users().labels().list(userId="me").execute()


def test_scope_enforcement_delegation_and_missing_mailbox(emu):
    emu.add_user(BOB)
    svc, _ = service_for(emu, ALICE, [INSERT])
    svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(1))}).execute()
    for call in (svc.users().labels().list(userId="me"), svc.users().getProfile(userId="me")):
        with pytest.raises(HttpError) as ei:
            call.execute()
        err = error_of(ei.value)
        assert ei.value.resp.status == 403
        assert err["message"] == "Request had insufficient authentication scopes."
        assert err["errors"][0]["reason"] == "insufficientPermissions"
        assert err["status"] == "PERMISSION_DENIED"
    svc_mod, _ = service_for(emu, ALICE, [MODIFY])
    with pytest.raises(HttpError) as ei:  # updateImap accepts only gmail.settings.basic
        svc_mod.users().settings().updateImap(userId="me", body={"enabled": False}).execute()
    assert ei.value.resp.status == 403

    with pytest.raises(HttpError) as ei:
        svc.users().messages().import_(userId=BOB, body={"raw": b64url(make_message(2))}).execute()
    assert ei.value.resp.status == 403
    assert error_of(ei.value)["message"] == f"Delegation denied for {ALICE}"
    svc.users().messages().import_(userId=ALICE.upper(), body={"raw": b64url(make_message(3))}).execute()

    emu.user(ALICE).exists = False
    with pytest.raises(HttpError) as ei:
        svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(4))}).execute()
    err = error_of(ei.value)
    assert ei.value.resp.status == 400
    assert err["message"] == "Mail service not enabled"
    assert err["errors"][0]["reason"] == "failedPrecondition"
    assert err["status"] == "FAILED_PRECONDITION"
    assert len(emu.user(ALICE).messages) == 2
    assert emu.user(BOB).messages == []


def test_settings_imap_send_as_forwarding(emu):
    svc, _ = service_for(emu, ALICE, [SETTINGS, G + "gmail.settings.sharing", FULL])
    settings = svc.users().settings()
    assert settings.getImap(userId="me").execute()["enabled"] is True
    updated = settings.updateImap(userId="me", body={"enabled": False, "autoExpunge": False}).execute()
    assert updated["enabled"] is False
    assert emu.user(ALICE).imap["autoExpunge"] is False
    assert settings.getImap(userId="me").execute()["enabled"] is False

    emu.user(ALICE).imap_locked_enabled = True  # personal accounts reportedly keep IMAP on
    assert settings.updateImap(userId="me", body={"enabled": False}).execute()["enabled"] is True
    assert settings.getImap(userId="me").execute()["enabled"] is True

    (primary,) = settings.sendAs().list(userId="me").execute()["sendAs"]
    assert primary["sendAsEmail"] == ALICE
    assert primary["isPrimary"] is True
    assert settings.getAutoForwarding(userId="me").execute() == {"enabled": False}
    assert settings.forwardingAddresses().list(userId="me").execute() == {}
    assert settings.filters().list(userId="me").execute() == {}

    emu.user(ALICE).forwarding_addresses.append({"forwardingEmail": "x@y.jp", "verificationStatus": "accepted"})
    emu.user(ALICE).filters.append({"id": "f1", "criteria": {"from": "a"}, "action": {"forward": "x@y.jp"}})
    fwd = settings.updateAutoForwarding(
        userId="me", body={"enabled": True, "emailAddress": "x@y.jp", "disposition": "leaveInInbox"}
    ).execute()
    assert fwd["enabled"] is True
    assert settings.getAutoForwarding(userId="me").execute()["emailAddress"] == "x@y.jp"
    assert settings.filters().list(userId="me").execute()["filter"][0]["action"]["forward"] == "x@y.jp"
    assert settings.forwardingAddresses().list(userId="me").execute()["forwardingAddresses"][0]["forwardingEmail"]
    profile = svc.users().getProfile(userId="me").execute()
    assert profile["emailAddress"] == ALICE
    assert profile["messagesTotal"] == 0


def test_json_import_throughput(emu, svc):
    """A loose floor (the benchmark wants >= 1,000/s); catches e.g. a per-request delayed-ACK stall."""
    imports = svc.users().messages()
    raw = make_message(0, body=b"x" * 4000)
    bodies = [{"raw": b64url(raw.replace(b"<m0@", b"<p%d@" % n))} for n in range(400)]
    t0 = time.perf_counter()
    for body in bodies:
        imports.import_(userId="me", body=body).execute()
    rate = len(bodies) / (time.perf_counter() - t0)
    assert len(emu.user(ALICE).messages) == 400
    assert rate > 250, f"{rate:.0f} imports/s"


# ----------------------------------------------------------------------------------------------------------
# Standalone process


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not sel.select(remaining):
            raise TimeoutError(f"no line from the emulator process (got {buf!r})")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise EOFError(f"emulator process ended: {proc.wait()} {buf!r}")
        buf += chunk
    return buf.decode()


def test_standalone_process():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.rig.gmail_emulator", "--port", "0", "--no-merge", "--user", BOB],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    try:
        line = _read_line(proc, 20)
        m = re.fullmatch(r"gmail emulator listening on (http://127\.0\.0\.1:\d+/)\n", line)
        assert m, line
        base = m.group(1)
        http = plain_http()
        resp, content = http.request(
            base + "_emulator/users", "POST", body=json.dumps({"email": ALICE, "scopes": [INSERT]})
        )
        assert resp.status == 200
        info = json.loads(content)
        assert info["type"] == "authorized_user"
        assert info["token_uri"] == base + "token"
        svc = build_service(base, credentials_from_info(info))
        raw = make_message(1, body=b"\xff\x00 binary\r\n")
        for _ in range(2):
            svc.users().messages().import_(userId="me", body={"raw": b64url(raw)}, neverMarkSpam=True).execute()
        resp, _ = http.request(base + "_emulator/faults", "POST", body=json.dumps({"kind": "5xx_before"}))
        assert resp.status == 200
        with pytest.raises(HttpError) as ei:
            svc.users().messages().import_(userId="me", body={"raw": b64url(raw)}).execute()
        assert ei.value.resp.status == 503
        resp, content = http.request(base + "_emulator/users/" + urllib.parse.quote(ALICE) + "/messages")
        listed = json.loads(content)
        assert resp.status == 200
        assert len(listed) == 2  # --no-merge
        assert listed[0]["sha256"] == hashlib.sha256(raw).hexdigest()
        assert listed[0]["size"] == len(raw)
        assert listed[0]["message_id"] == "<m1@old.example.ac.jp>"
        assert listed[0]["params"] == {"neverMarkSpam": "true"}
        resp, content = http.request(base + "_emulator/stats")
        stats = json.loads(content)
        assert stats["requests"]["messages.import"] == 3
        assert stats["users"][ALICE]["messages"] == 2
        assert stats["faults_fired"] == 1
        assert BOB in stats["users"]
        resp, content = http.request(base + "_emulator/client_config")  # for a standalone `gimport auth`
        installed = json.loads(content)["installed"]
        assert installed["token_uri"] == base + "token"
        assert installed["auth_uri"] == base + "o/oauth2/auth"
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(10)
        proc.stdout.close()
    assert rc == 0


def test_standalone_process_with_a_sliding_window_quota():
    cmd = [sys.executable, "-m", "tests.rig.gmail_emulator", "--port", "0", "--quota-units-per-minute", "100"]
    cmd += ["--quota-mode", "sliding", "--quota-window", "30"]  # 50 units in any 30 s: two imports
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE)
    try:
        base = re.fullmatch(r"gmail emulator listening on (http://\S+/)\n", _read_line(proc, 20)).group(1)
        _resp, content = plain_http().request(
            base + "_emulator/users", "POST", body=json.dumps({"email": ALICE, "scopes": [INSERT]})
        )
        svc = build_service(base, credentials_from_info(json.loads(content)))
        first = time.time()
        for n in range(2):
            svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(n))}).execute()
        with pytest.raises(HttpError) as ei:
            svc.users().messages().import_(userId="me", body={"raw": b64url(make_message(2))}).execute()
        assert first + 30 - 0.01 <= _retry_at(ei.value) <= time.time() + 30  # a 30 s window, not a bucket
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(10)
        proc.stdout.close()
    assert rc == 0
    bad = subprocess.run([*cmd[:3], "--quota-mode", "fixed"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "--quota-mode" in bad.stderr
