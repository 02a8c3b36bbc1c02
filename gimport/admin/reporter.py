"""What `admin run` tells the outside while it runs (gimport.render.admin renders it), and the engine's
Reporter for one user that forwards to it."""

from __future__ import annotations

import logging
from typing import Protocol

from gimport.admin.report import UserRow
from gimport.admin.users import UserEntry

log = logging.getLogger("gimport.admin")


class AdminReporter(Protocol):
    """What AdminRun tells the outside (gimport.render.admin renders it)."""

    def user_started(self, number: int, total: int, entry: UserEntry) -> None: ...
    def transfer_added(self, messages: int, size: int) -> None: ...
    def message_finished(self, outcome: str, size: int) -> None: ...
    def user_warning(self, gmail: str, text: str) -> None: ...
    def user_finished(self, done: int, total: int, row: UserRow) -> None: ...
    def warning(self, text: str) -> None: ...
    def paused(self, until: str | None) -> None: ...  # the daily budget: "until when" while waiting, then None


class NullAdminReporter:
    def user_started(self, number: int, total: int, entry: UserEntry) -> None:
        pass

    def transfer_added(self, messages: int, size: int) -> None:
        pass

    def message_finished(self, outcome: str, size: int) -> None:
        pass

    def user_warning(self, gmail: str, text: str) -> None:
        pass

    def user_finished(self, done: int, total: int, row: UserRow) -> None:
        pass

    def warning(self, text: str) -> None:
        pass

    def paused(self, until: str | None) -> None:
        pass


class UserReporter:
    """The engine's Reporter for one user, forwarding to the run's AdminReporter."""

    def __init__(self, gmail: str, sink: AdminReporter) -> None:
        self.gmail, self.sink = gmail, sink

    def phase(self, text: str) -> None:
        log.debug("%s: %s", self.gmail, text)

    def transfer_started(self, messages: int, size: int) -> None:
        self.sink.transfer_added(messages, size)

    def message_finished(self, folder: str, outcome: str, size: int) -> None:
        self.sink.message_finished(outcome, size)

    def warning(self, text: str) -> None:
        self.sink.user_warning(self.gmail, text)
