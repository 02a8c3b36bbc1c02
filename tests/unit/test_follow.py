"""The follow's loop (gimport.engine.follow) with a scripted migration and clocks: which pass comes when
(IDLE news: INBOX; the poll, a jump of the wall clock: every folder), retries of transient failures through
the call path, the end at --until after a last pass of every folder, and a stop."""

from __future__ import annotations

import datetime as dt

import pytest

from gimport.engine.follow import Follow, FollowOptions, parse_until, transient
from gimport.engine.results import RunSummary
from gimport.errors import AuthError, FolderGone, GmailError, LoginRefused, SourceError

JST = dt.timezone(dt.timedelta(hours=9))


def test_until_as_a_time_of_day_is_the_next_one():
    now = dt.datetime(2026, 3, 30, 17, 0, tzinfo=JST)
    assert parse_until("18:00", now) == dt.datetime(2026, 3, 30, 18, 0, tzinfo=JST)
    assert parse_until("09:30", now) == dt.datetime(2026, 3, 31, 9, 30, tzinfo=JST)


def test_until_as_an_iso_time_takes_the_local_zone_when_it_names_none():
    now = dt.datetime(2026, 3, 30, 17, 0, tzinfo=JST)
    assert parse_until("2026-03-31T18:00", now) == dt.datetime(2026, 3, 31, 18, 0, tzinfo=JST)
    utc = parse_until("2026-03-31T09:00+00:00", now)
    assert utc == dt.datetime(2026, 3, 31, 18, 0, tzinfo=JST)


@pytest.mark.parametrize("text", ["tomorrow", "25:00", "18h", ""])
def test_until_that_is_no_time_is_refused(text):
    with pytest.raises(ValueError, match=r"isoformat|hour must be"):
        parse_until(text, dt.datetime(2026, 3, 30, 17, 0, tzinfo=JST))


def test_only_errors_a_wait_can_mend_are_transient():
    assert transient(SourceError("gone"))
    assert transient(GmailError("not answering"))
    assert not transient(LoginRefused("no"))
    assert not transient(AuthError("revoked"))


class Clocks:
    def __init__(self):
        self.mono, self.wall = 1000.0, 1_800_000_000.0

    def advance(self, mono, wall=None):
        self.mono += mono
        self.wall += mono if wall is None else wall


class Source:
    """A Watcher whose IDLE waits follow a script of (monotonic s, wall s, news); then it asks the follow to stop."""

    def __init__(self, clocks, script):
        self.clocks, self.script, self.follow = clocks, list(script), None
        self.waits = []

    def can_idle(self):
        return True

    def idle(self, folder, seconds):
        self.waits.append(seconds)
        if not self.script:
            self.follow.request_stop()
            return False
        mono, wall, news = self.script.pop(0)
        if isinstance(news, Exception):
            raise news
        self.clocks.advance(min(mono, seconds), wall)
        return news

    def interrupt(self):
        pass


class Reporter:
    def __init__(self):
        self.warnings = []

    def warning(self, text):
        self.warnings.append(text)


class Unwatchable:
    """A source whose folder the server will not watch."""

    def __init__(self, clocks):
        self.clocks, self.follow, self.waits = clocks, None, []

    def can_idle(self):
        return True

    def idle(self, folder, seconds):
        raise FolderGone("INBOX: NO")


class Migration:
    def __init__(self, source, failures=()):
        self.source, self.reporter = source, Reporter()
        self.importing = {"INBOX": None, "Work": None}
        self.passes, self.failures, self.resumed = [], list(failures), 0
        self.summary = RunSummary("a", "g")

    def _summary(self, what):
        self.passes.append(what)
        self.summary = RunSummary("a", "g")
        if self.failures:
            self.summary.fatal = self.failures.pop(0)
        return self.summary

    def run(self):
        return self._summary("first")

    def run_again(self, folder=None):
        return self._summary(folder or "all")

    def request_stop(self):
        self.summary.interrupted = True

    def resume(self):
        self.resumed += 1


class State:
    def __init__(self):
        self.meta = {}

    def set_meta(self, key, value):
        self.meta[key] = value


def follow_of(script, *, poll=300.0, until=None, failures=()):
    clocks = Clocks()
    source = Source(clocks, script)
    migration = Migration(source, failures)
    sleeps = []
    follow = Follow(
        migration,
        State(),
        FollowOptions(poll=poll, until=None if until is None else clocks.wall + until),
        clock=lambda: clocks.mono,
        wall=lambda: clocks.wall,
        sleep=lambda seconds: (sleeps.append(seconds), clocks.advance(seconds)),
    )
    source.follow = follow
    return follow, migration, source, sleeps


def test_news_from_idle_scans_inbox_and_the_poll_scans_every_folder():
    follow, migration, source, _ = follow_of([(5, None, True), (60, None, False), (60, None, False)], poll=100)
    summary = follow.run()
    assert migration.passes == ["first", "INBOX", "all"]
    assert summary.interrupted
    assert max(source.waits) <= 60  # one slice at most: a jump of the clock is noticed within it


def test_a_jump_of_the_wall_clock_scans_every_folder_at_once():
    # a suspend: the monotonic clock moved 10 s, the wall clock an hour
    follow, migration, _, _ = follow_of([(10, 3600, False)])
    follow.run()
    assert migration.passes == ["first", "all"]


def test_a_pass_the_server_failed_is_tried_again_after_the_call_paths_backoff():
    follow, migration, _, sleeps = follow_of(
        [(5, None, True)], failures=[None, SourceError("gone"), SourceError("gone")]
    )
    shown = migration.reporter
    summary = follow.run()
    assert migration.passes == ["first", "INBOX", "INBOX", "INBOX"]
    assert migration.resumed == 2
    assert sleeps == [1.0, 2.0]  # the call path's backoff, growing
    assert shown.warnings == ["gone"]  # said once (the log has each)
    assert summary.interrupted


def test_a_wait_the_server_failed_is_tried_again():
    follow, migration, _source, sleeps = follow_of([(0, None, SourceError("gone")), (5, None, True)])
    follow.run()
    assert migration.passes == ["first", "INBOX"]
    assert sleeps == [1.0]


def test_an_error_no_wait_mends_ends_the_follow():
    follow, migration, _, _ = follow_of([(5, None, True)], failures=[None, AuthError("revoked")])
    summary = follow.run()
    assert migration.passes == ["first", "INBOX"]
    assert isinstance(summary.fatal, AuthError)
    assert not summary.interrupted


def test_until_ends_after_a_last_pass_of_every_folder():
    follow, migration, source, _ = follow_of([(60, None, False)] * 10, until=150)
    summary = follow.run()
    assert migration.passes == ["first", "all"]
    assert not summary.interrupted
    assert sum(source.waits) == 150  # the waits end at --until, not after it
    assert '"ended": ' in follow.state.meta["follow"]


def test_a_folder_the_server_will_not_watch_leaves_the_poll():
    follow, migration, _, sleeps = follow_of([], poll=100, until=250)
    migration.source = Unwatchable(None)
    summary = follow.run()
    assert not follow.record()["idle"]
    assert migration.passes == ["first", "all", "all", "all"]  # every 100 s, and the last one at --until
    assert sum(sleeps) == 250
    assert not summary.interrupted
