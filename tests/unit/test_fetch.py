"""The fetch (gimport.engine.fetch) against a fake source: what it hands the workers, what it records on the
folder's result, and that its warnings keep their English for the log file."""

from __future__ import annotations

import datetime as dt
import importlib.util
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gimport import i18n
from gimport.contract import FetchedMessage
from gimport.engine.fetch import Fetcher, Item, ItemQueue
from gimport.engine.inflight import InFlightBytes
from gimport.engine.results import FolderResult
from gimport.engine.scan import FolderWork
from gimport.errors import FolderGone, GimportError
from gimport.i18n import english
from gimport.mail.mapping import IMPORT, Folder, FolderPlan

ROOT = Path(__file__).resolve().parent.parent.parent
UIDVALIDITY = 7


class FakeSource:
    """Serves the uids in `served`; raises FolderGone from the FETCH of `gone_at` (a uid)."""

    def __init__(self, served: set[int], gone_at: int | None = None) -> None:
        self.served, self.gone_at = served, gone_at
        self.fetches: list[list[int]] = []

    def examine(self, name: str) -> tuple[int, int]:
        return UIDVALIDITY, len(self.served)

    def fetch_bodies(self, uids: list[int], *, expected_bytes: int) -> Iterator[FetchedMessage]:
        self.fetches.append(list(uids))
        for uid in uids:
            if uid == self.gone_at:
                raise FolderGone("NO [NONEXISTENT] gone")
            if uid in self.served:
                yield FetchedMessage(uid, b"x" * 10, (), dt.datetime(2020, 1, 1, tzinfo=dt.UTC))


def _run(source: FakeSource, uids: list[int], alone: frozenset[int] = frozenset()) -> tuple[FolderWork, list, list]:
    result = FolderResult(FolderPlan(Folder("Work"), IMPORT, ("Work",)), uidvalidity=UIDVALIDITY)
    work = FolderWork(result, UIDVALIDITY, [(uid, 10) for uid in uids], {"Work": "Label_1"}, alone)
    result.handed_out(len(uids))
    stop = threading.Event()
    q: ItemQueue = queue.Queue()
    warnings: list[str] = []
    fatal: list[GimportError] = []
    fetcher = Fetcher(
        source=source,  # type: ignore[arg-type]  # the part of a MailSource the fetch uses
        rescan=lambda w, opened: None,
        batch=3,
        batch_bytes=1 << 20,
        budget=InFlightBytes(1 << 20, stop),
        q=q,
        stop=stop,
        warn=warnings.append,
        fatal=fatal.append,
    )
    fetcher.run([work], workers=1)
    items: list[Item | None] = []
    while not q.empty():
        items.append(q.get())
    assert items[-1] is None
    assert not fatal
    return work, [i for i in items if i is not None], warnings


def test_items_carry_their_folder_work_and_expunged_ones_are_recorded_gone() -> None:
    source = FakeSource(served={1, 2, 4, 5})
    work, items, warnings = _run(source, [1, 2, 3, 4, 5], alone=frozenset({4}))
    assert [i.message.uid for i in items] == [1, 2, 4, 5]
    assert all(i.work is work for i in items)  # the labels and the UIDVALIDITY once, with the folder's work
    assert source.fetches == [[1, 2, 3], [4], [5]]  # a message whose size claim is unusable goes alone
    assert work.result.remaining == 4  # uid 3 was expunged since the scan: not this run's to do any more
    assert work.result.todo == 4
    assert not warnings


@pytest.fixture
def japanese(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    spec = importlib.util.spec_from_file_location("gimport_i18n_tool", ROOT / "scripts" / "i18n.py")
    assert spec is not None
    assert spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.compile_all()  # the .mo is not in git
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "ja_JP.UTF-8")
    i18n.reset()
    yield
    i18n.reset()


@pytest.mark.usefixtures("japanese")
def test_a_folder_gone_during_the_fetch_is_warned_in_the_readers_language_and_logged_in_english() -> None:
    work, items, warnings = _run(FakeSource(served={1, 2}, gone_at=2), [1, 2])
    assert [i.message.uid for i in items] == [1]
    assert len(warnings) == 1
    assert "実行中にフォルダが変わりました" in warnings[0]  # shown to the person in Japanese
    # what Migration._warn writes to the log file: English only
    assert (
        english(warnings[0])
        == "Work: the folder changed during the run (NO [NONEXISTENT] gone): run again to pick it up"
    )
    assert work.result.error is not None
    assert english(work.result.error).startswith("the folder changed")
