"""Test-only helpers: point the real google-api-python-client at a GmailEmulator (or any base URL).

How: load the bundled discovery document, set rootUrl/baseUrl/mtlsRootUrl to the local base URL and
build_from_document() -- then plain calls, uploads and batch all go there (client_options api_endpoint
does not move uploads or batch).
"""

from __future__ import annotations

import copy
import functools
import json

import google_auth_httplib2
import httplib2
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.http import build_http

from tests.rig.gmail_emulator import discovery_document_path


@functools.lru_cache(maxsize=1)
def _discovery() -> dict:
    with open(discovery_document_path(), encoding="utf-8") as fh:
        return json.load(fh)


def discovery_for(base_url: str) -> dict:
    doc = copy.deepcopy(_discovery())
    doc["rootUrl"] = doc["baseUrl"] = doc["mtlsRootUrl"] = base_url
    return doc


def credentials_from_info(info: dict, scopes=None) -> Credentials:
    """from_authorized_user_info() resets token_uri to Google's: put the emulator's back."""
    scopes = list(scopes if scopes is not None else info["scopes"])
    return Credentials.from_authorized_user_info(info, scopes).with_token_uri(info["token_uri"])


def plain_http(timeout: float = 30) -> httplib2.Http:
    """httplib2.Http as the client builds it (308 is not a redirect: it is "Resume Incomplete"), no proxy."""
    http = build_http()
    http.timeout = timeout
    http.proxy_info = None
    return http


def authorized_http(creds, timeout: float = 30) -> google_auth_httplib2.AuthorizedHttp:
    return google_auth_httplib2.AuthorizedHttp(creds, http=plain_http(timeout))


def build_service(base_url: str, creds=None, http=None):
    """A gmail v1 Resource whose every URL (plain, upload, batch) goes to base_url."""
    if http is None:
        http = authorized_http(creds)
    return build_from_document(discovery_for(base_url), http=http)


def service_for(emu, email: str, scopes=("https://mail.google.com/",)):
    """(service, credentials) for a user of a running GmailEmulator, through the refresh grant."""
    creds = credentials_from_info(emu.authorized_user_info(email, list(scopes)))
    return build_service(emu.base_url, creds), creds
