"""The reporter of a run nobody watches (the engine without a CLI, verify without a progress line): it
offers gimport.contract.Reporter and drops every report."""

from __future__ import annotations


class NullReporter:
    def phase(self, text: str) -> None:
        pass

    def transfer_started(self, messages: int, size: int) -> None:
        pass

    def message_finished(self, folder: str, outcome: str, size: int) -> None:
        pass

    def warning(self, text: str) -> None:
        pass
