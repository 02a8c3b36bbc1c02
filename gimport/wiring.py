"""The one place that turns settings into pieces (twine's Settings.create_repository).

Every command -- run, plan, verify, cleanup, status and every admin command -- gets its source, Gmail
destination, state, pacer and call path from here, so they cannot disagree about how a piece is
built. This module and the backends are the only ones that import the backends.
"""

from __future__ import annotations

import getpass
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gimport.calls import Caller, RetryPolicy
from gimport.config.settings import Settings, SourceSettings
from gimport.contract import DestinationBackend, MailSource, Pacer, Reporter, SourceBackend, State, StateBackend
from gimport.engine.migration import Migration
from gimport.engine.transfer import EngineOptions
from gimport.errors import ConfigError, GmailError, StateError
from gimport.files import lock_path, read_secret
from gimport.i18n import _
from gimport.pacing import rate as pacing

if TYPE_CHECKING:  # the backends load their libraries when first built, not when a command starts
    from gimport.backends.google.service_account import ServiceAccount
    from gimport.backends.state.disk import StateLock


def read_password(settings: Settings) -> str:
    """The source password: file, environment variable, or a prompt. Never a command-line argument.
    A local source (Maildir, mbox, ...) and an OAuth login ([source] token_file, checked here) need none: ""."""
    src = settings.source
    if src.local:
        return ""
    if src.oauth is not None:
        from gimport.backends.imap.oauth import SourceToken

        SourceToken.load(src.oauth.token_file)  # refuses a token file others can read (exit 2) before any work
        return ""
    if src.password_file:
        return read_secret(src.password_file, "[source] password_file")
    if src.password_env:
        password = os.environ.get(src.password_env)
        if not password:
            raise ConfigError(
                _("[source] password_env: the environment variable {password_env} is not set").format(
                    password_env=src.password_env
                )
            )
        return password
    if not sys.stdin.isatty():
        raise ConfigError(
            _("no password for the IMAP server"),
            hint=_("set [source] password_file or password_env (no terminal to ask on)"),
        )
    return getpass.getpass(_("IMAP password for {user}@{host}: ").format(user=src.user, host=src.host))


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(give_up_after=settings.gmail.give_up_after)


def _gmail_unreachable(text: str) -> GmailError:
    return GmailError(
        _("Gmail has not answered for too long ({text})").format(text=text),
        hint=_("check the network, then run the same command again: nothing is lost"),
    )


def pacer(settings: Settings, *shared: pacing.SharedBudget, stop: threading.Event | None = None) -> Pacer:
    """The account's own budget ([gmail] quota_units_per_minute), chained to shared ones (admin mode)."""
    own = pacing.RatePacer(
        settings.gmail.quota_units_per_minute,
        max_concurrent=settings.gmail.workers,  # the upper bound: the latency and the quota set the need
        sleep=stop.wait if stop is not None else time.sleep,
    )
    return pacing.ChainedPacer(own, *shared) if shared else own


def caller(settings: Settings, pacer: Pacer | None, stop: threading.Event | None = None) -> Caller:
    return Caller(pacer, retry_policy(settings), stop=stop or threading.Event(), unreachable=_gmail_unreachable)


def gmail(settings: Settings, calls: Caller, credentials: Any = None) -> DestinationBackend:
    """The Gmail destination: the user's token ([gmail] token_file) unless `credentials` are given (a
    service account's for one user)."""
    from gimport.backends.google.gmail import GmailClient

    if credentials is None:
        from gimport.backends.google.tokens import load_credentials

        credentials = load_credentials(settings.gmail.token_file)
    # a call that hangs must not outlast [gmail] give_up_after: its timeout is at most that
    timeout = min(120.0, float(settings.gmail.give_up_after))
    return GmailClient(credentials, caller=calls, api_url=settings.gmail.api_url, timeout=timeout)


def source(source_settings: SourceSettings, password: str) -> SourceBackend:
    """The mail source, read-only (not connected yet): the old IMAP server, or for [source] type =
    "maildir" | "mbox" | "thunderbird" | "takeout" the files at [source] path (password unused)."""
    if source_settings.local:
        from gimport.backends.local import local_source

        return local_source(source_settings)
    from gimport.backends.imap.watch import WatchingImapSource

    return WatchingImapSource(source_settings, password)


def state(path: Path, *, readonly: bool = False) -> StateBackend:
    from gimport.backends.state.store import StateStore

    return StateStore.open_readonly(path) if readonly else StateStore(path)


def state_if_exists(path: Path) -> StateBackend | None:
    """The state file read-only, or None when there is none yet (plan)."""
    return state(path, readonly=True) if Path(path).exists() else None


def run_lock(path: Path) -> StateLock:
    from gimport.backends.state.disk import StateLock

    return StateLock(lock_path(path))


def run_in_progress(state_path: Path) -> bool:
    from gimport.backends.state.disk import StateLock

    return StateLock.held(lock_path(state_path))


def refresh_token(settings: Settings) -> str:
    """Refresh the user's Gmail token now (saved, as every command does) and return its account: proves
    that the grant still works, not only the access token of the last hour. Raises AuthError (it no
    longer refreshes, a scope missing, another account than [gmail] user), ConfigError, GmailError."""
    import io

    from gimport.backends.google import tokens

    return tokens.token_status(settings.gmail, out=io.StringIO())


def gmail_scopes(exact_verify: bool = False) -> tuple[str, ...]:
    """The OAuth scopes gimport asks for (with `exact_verify`, also the metadata scope of verify --exact)."""
    from gimport.backends.google.scopes import scopes_for

    return scopes_for(exact_verify)


def service_account(key_file: Path) -> ServiceAccount:
    """The service account of a JSON key (admin mode): .authorize(email) gives one user's credentials."""
    from gimport.backends.google.service_account import ServiceAccount

    return ServiceAccount(key_file)


def revoke_token(token_file: Path) -> str:
    """Revoke the saved token and delete the file; returns what revoking said."""
    import io

    from gimport.backends.google import tokens

    out = io.StringIO()
    tokens.revoke(token_file, out=out)
    return out.getvalue().strip()


@dataclass
class Account:
    """The pieces for one mailbox: built together, so the engine's stop reaches every wait."""

    settings: Settings
    pacer: Pacer
    calls: Caller
    gmail: DestinationBackend
    stop: threading.Event = field(default_factory=threading.Event)

    def migration(
        self,
        *,
        source: MailSource,
        state: State,
        reporter: Reporter | None = None,
        options: EngineOptions | None = None,
    ) -> Migration:
        return Migration(
            settings=self.settings,
            source=source,
            gmail=self.gmail,
            state=state,
            pacer=self.pacer,
            reporter=reporter,
            options=options,
            stop=self.stop,
        )


def account(settings: Settings, *shared: pacing.SharedBudget, credentials: Any = None) -> Account:
    """Pacer, call path and Gmail destination for one account, sharing one stop event."""
    stop = threading.Event()
    own = pacer(settings, *shared, stop=stop)
    calls = caller(settings, own, stop)
    return Account(settings, own, calls, gmail(settings, calls, credentials), stop)


def check_lock(path: Path) -> StateLock:
    """Take the run lock of a state file, or refuse (StateError) while another run holds it."""
    lock = run_lock(path)
    try:
        acquired = lock.acquire()
    except OSError as exc:
        from gimport.backends.state.disk import lock_error

        raise lock_error(path, exc) from None
    if not acquired:
        raise StateError(
            _("{holder} is already running gimport with the state file {path}").format(holder=lock.holder(), path=path),
            hint=_("let it finish (or stop it) first"),
        )
    return lock
