"""Debian's chromium, headless, for pages gimport writes: the DOM after the page's scripts ran, a screenshot, and
every request the page made, from Chromium's own network log (--log-net-log). Names resolve nowhere
(--host-resolver-rules), so a request the page makes fails, but it is still logged and seen.

Chromium's own services (component updates, sign-in) make requests of their own, with no page's site in
their network isolation key; page_requests keeps those of file:// pages only."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = "chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--net-log-capture-mode=Default",
)


def chromium() -> str:
    """The chromium executable; the test is skipped, saying why, where it is not installed."""
    path = shutil.which(CHROMIUM)
    if path is None:
        pytest.skip("chromium is not installed: scripts/test installs it with apt-get (Debian's chromium package)")
    return path


def run(url: str, work: Path, *extra: str, timeout: float = 90) -> tuple[str, list[str]]:
    """Open `url` headless with `extra` flags: (what Chromium printed, the URLs the page requested)."""
    work.mkdir(parents=True, exist_ok=True)
    netlog = work / "netlog.json"
    netlog.unlink(missing_ok=True)
    done = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={work / 'profile'}", f"--log-net-log={netlog}", *extra, url],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, page_requests(netlog)


def dump_dom(url: str, work: Path) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the URLs the page requested."""
    return run(url, work, "--dump-dom")


def screenshot(url: str, work: Path, png: Path, size: tuple[int, int] = (1280, 1600)) -> list[str]:
    """A PNG of the page at `size`; the URLs the page requested."""
    _out, requests = run(url, work, f"--screenshot={png}", f"--window-size={size[0]},{size[1]}")
    return requests


def page_requests(netlog: Path) -> list[str]:
    """The URLs of every request a file:// page started, from a network log."""
    doc = json.loads(netlog.read_text("utf-8"))
    start = doc["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in doc["events"]
        if e.get("type") == start and "file://" in str(e.get("params", {}).get("network_isolation_key", ""))
    ]
