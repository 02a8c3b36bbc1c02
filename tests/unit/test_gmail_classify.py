"""Error classification: what the caller should do with each answer Gmail (or the network) gives."""

import datetime as dt
import json

import google.auth.exceptions
import httplib2
import pytest
from googleapiclient.errors import HttpError

from gimport.backends.google.gmail import LabelConflict, MessageRejected, RetryableError
from gimport.backends.google.gmail_http import classify
from gimport.errors import AuthError, GmailError

NOW = dt.datetime(2026, 11, 28, 10, 0, 0, tzinfo=dt.UTC)


def http_error(status, reason="", message="", headers=None):
    resp = httplib2.Response({"status": status, **(headers or {})})
    body = {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}}
    return HttpError(resp, json.dumps(body).encode(), uri="https://gmail.googleapis.com/x")


def test_user_rate_limit_with_the_wait_only_in_the_text():
    err = classify(
        http_error(429, "rateLimitExceeded", "User-rate limit exceeded.  Retry after 2026-11-28T10:00:12.500Z"),
        what="import",
        now=lambda: NOW,
    )
    assert isinstance(err, RetryableError)
    assert err.rate_limited
    assert not err.ambiguous
    assert err.wait == pytest.approx(12.5)


def test_too_many_concurrent_requests_is_told_apart_from_the_rate_limit():
    # same status and reason as the rate limit: the caller must lower its concurrency, not its rate
    err = classify(http_error(429, "rateLimitExceeded", "Too many concurrent requests for user."), what="import")
    assert isinstance(err, RetryableError)
    assert err.rate_limited
    assert err.concurrent
    assert err.wait is None
    rate = classify(http_error(429, "rateLimitExceeded", "User-rate limit exceeded."), what="import")
    assert rate.rate_limited
    assert not rate.concurrent


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded"])
def test_403_rate_limits_are_retried(reason):
    err = classify(http_error(403, reason, "slow down"), what="import")
    assert isinstance(err, RetryableError)
    assert err.rate_limited


def test_retry_after_header_is_honoured():
    err = classify(http_error(503, "backendError", "busy", {"retry-after": "7"}), what="import")
    assert isinstance(err, RetryableError)
    assert err.wait == 7
    assert err.ambiguous  # 5xx: it may be stored


@pytest.mark.parametrize(
    ("status", "reason", "kind", "text"),
    [
        (403, "dailyLimitExceeded", GmailError, "run again tomorrow"),
        (403, "insufficientPermissions", AuthError, "gimport auth"),
        (401, "authError", AuthError, "gimport auth"),
        (400, "failedPrecondition", GmailError, "Mail service not enabled"),
        (400, "invalidArgument", MessageRejected, "Invalid message"),
        (413, "", MessageRejected, ""),
        (409, "aborted", LabelConflict, "exists"),
    ],
)
def test_other_answers(status, reason, kind, text):
    message = {"failedPrecondition": "Mail service not enabled", "invalidArgument": "Invalid message"}.get(
        reason, "Label name exists or conflicts" if status == 409 else "no"
    )
    err = classify(http_error(status, reason, message), what="import")
    assert isinstance(err, kind)
    assert text in str(err)


def test_network_errors():
    refused = classify(ConnectionRefusedError(111, "refused"), what="import")
    assert isinstance(refused, RetryableError)
    assert refused.unreachable
    assert not refused.ambiguous
    reset = classify(ConnectionResetError(104, "reset"), what="import")
    assert isinstance(reset, RetryableError)
    assert reset.ambiguous
    assert not reset.unreachable
    dns = classify(httplib2.ServerNotFoundError("Unable to find the server"), what="import")
    assert isinstance(dns, RetryableError)
    assert dns.unreachable


def test_token_endpoint_errors():
    gone = classify(google.auth.exceptions.RefreshError("invalid_grant: Token has been expired or revoked."), what="x")
    assert isinstance(gone, AuthError)
    assert "gimport auth" in str(gone)
    busy = google.auth.exceptions.RefreshError("internal_failure", retryable=True)  # token endpoint 5xx
    assert isinstance(classify(busy, what="x"), RetryableError)
