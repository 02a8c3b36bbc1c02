"""`gimport run --follow`: from the command line's options to gimport.engine.follow.Follow, and what the
reporter and the summary add about it. Used by gimport.cli.migration's `run`."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import TYPE_CHECKING

from gimport.errors import ConfigError, GimportError
from gimport.i18n import _, english

if TYPE_CHECKING:  # the engine loads when the command runs
    from gimport.config.settings import Settings
    from gimport.contract import State
    from gimport.engine.follow import Follow, FollowOptions
    from gimport.engine.migration import Migration
    from gimport.render.bar import Translate
    from gimport.render.progress import TqdmReporter

MIN_POLL = 1.0  # seconds: a shorter poll would scan without a pause


def follow_options(args: argparse.Namespace) -> FollowOptions | None:
    """The follow's options from `run`'s arguments; None without --follow. Raises ConfigError for a --poll
    under MIN_POLL or a --until that is no time, is past, or comes without --follow."""
    from gimport.engine.follow import FollowOptions, parse_until

    if not args.follow:
        if args.until is not None:
            raise ConfigError(_("--until goes with --follow"))
        return None
    if args.poll < MIN_POLL:
        raise ConfigError(_("--poll must be at least {n:g} seconds").format(n=MIN_POLL))
    until = None
    if args.until is not None:
        now = dt.datetime.now().astimezone()
        try:
            at = parse_until(args.until, now)
        except ValueError:
            raise ConfigError(
                _("--until {text!r}: not a time (HH:MM, or an ISO date and time such as 2026-03-31T18:00)").format(
                    text=args.until
                )
            ) from None
        if at <= now:
            raise ConfigError(_("--until {text!r} is in the past").format(text=args.until))
        until = at.timestamp()
    return FollowOptions(poll=args.poll, until=until)


def following(migration: Migration, state: State, options: FollowOptions, reporter: TqdmReporter) -> Follow:
    """The Follow of `migration`, its figures in the reporter's --stats lines."""
    from gimport.engine.follow import Follow
    from gimport.render.follow import follow_line

    follow = Follow(migration, state, options)

    def status(tr: Translate) -> str | None:
        # `tr` is `_` for the terminal (the messages are translated already) or `english` for the log
        pick = english if tr is english else str
        return follow_line(follow.record(), running=True, tr=pick) if follow.following else None

    reporter.extra_status = status
    return follow


def follow_end(state: State) -> str:
    """The closing line of a follow, from its record in the (still open) state."""
    from gimport.engine.follow import FOLLOW_KEY
    from gimport.render.follow import follow_line, read_record

    record = read_record(state.get_meta(FOLLOW_KEY))
    return _("gimport: {line}").format(line=follow_line(record, running=False)) if record else ""


def follow_status(state: State, *, running: bool, width: int | None) -> str:
    """What `gimport status` says about a follow (this one, or the last one), "" when there was none."""
    from gimport.engine.follow import FOLLOW_KEY
    from gimport.render.follow import follow_details, read_record
    from gimport.render.text import wrap

    record = read_record(state.get_meta(FOLLOW_KEY))
    return wrap(follow_details(record, running=running), width) if record else ""


def cutover_notes(settings: Settings) -> list[str]:
    """cleanup's warnings before IMAP goes off (gimport.operations.cutover): a follow still running, mail
    that reached the old server after the last import. [] without a state file; a source that cannot be
    asked is said so, never an error."""
    from gimport import wiring
    from gimport.engine.follow import FOLLOW_KEY
    from gimport.operations.cutover import cutover_warnings, last_import, newest_on_source
    from gimport.render.follow import read_record

    if not settings.state_path.exists():
        return []
    state = wiring.state(settings.state_path, readonly=True)
    try:
        follow = read_record(state.get_meta(FOLLOW_KEY))
        last = last_import(state, settings.source.account)
    finally:
        state.close()
    unasked: list[str] = []

    def newest() -> tuple[dt.datetime, str] | None:
        if not settings.source.local and settings.source.host == "-":
            return None  # no [source] in this config: nothing to ask
        try:
            with wiring.source(settings.source, wiring.read_password(settings)) as source:
                return newest_on_source(source, settings)
        except GimportError as err:
            unasked.append(
                _("warning: could not ask the old server whether mail came after the last import: {error}").format(
                    error=err
                )
            )
            return None

    running = wiring.run_in_progress(settings.state_path)
    return cutover_warnings(follow=follow, running=running, newest=newest, last=last) + unasked
