"""One hierarchy of errors, typed by what the caller must do (OfflineIMAP's severities, borg's exit codes).

Levels, from the smallest loss to the largest; each loop catches exactly the levels it can survive:

- RetryableError (retry): try the same call again later; carries the wait the server asked for and
  whether the call may already have taken effect (`ambiguous`). The one call path (gimport.calls)
  retries these; when it gives up, the caller decides what is lost.
- MessageError (skip this message): this message cannot be handled as it is; record it and go on.
- FolderError (rescan or skip this folder): the folder is gone, or its UIDs now mean other messages.
- AccountError (stop this account): authorization, the old server, Gmail refusing the account, the
  state file of this account. Admin mode goes on with the other users.
- FatalError (stop everything): a config error, a service account that can impersonate nobody.
- Interrupted: the user or the orchestrator asked to stop.

Every error carries its exit code and its fix-it text on the class: `str(err)` is one line, the
detail given at the raise site followed by the class's hint (unless the raise site gave its own).
Backends translate their libraries' exceptions into these at their boundary; nothing decides
behaviour or an exit code from message text. The CLI is the only place that prints them.
"""

from __future__ import annotations

from gimport.i18n import _, english

# Exit codes, documented in each command's --help and in README.md.
EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_SOURCE = 4
EXIT_GMAIL = 5
EXIT_BUG = 70  # an unexpected error (a bug in gimport): BSD's EX_SOFTWARE
EXIT_INTERRUPTED = 130

RETRY = "retry"
MESSAGE = "message"
FOLDER = "folder"
ACCOUNT = "account"
EVERYTHING = "everything"


class GimportError(Exception):
    """Base class. The hint (class default, or given at the raise site) says what to do next."""

    exit_code = EXIT_USAGE
    level = EVERYTHING

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        """`hint`: None for the class's fix-it text, "" for none, else this text."""
        super().__init__(message)
        self.detail = message
        self._hint = hint

    def __str__(self) -> str:
        """The one line a person reads, in their language."""
        hint = self.default_hint() if self._hint is None else self._hint
        if hint and hint not in self.detail:
            # TRANSLATORS: an error's detail, then what to do about it
            return _("{detail}: {hint}").format(detail=self.detail, hint=hint) if self.detail else hint
        return self.detail

    def english(self) -> str:
        """The same line in English, for log files and the state file."""
        detail = english(self.detail)
        hint = english(self.default_hint() if self._hint is None else self._hint)
        if hint and hint not in detail:
            return f"{detail}: {hint}" if detail else hint
        return detail

    def default_hint(self) -> str:
        """The class's fix-it text, translated when it is read (the language may be chosen later)."""
        return ""


# ----------------------------------------------------------------------------------------------- retry


class RetryableError(GimportError):
    """Try again later. `wait`: what the server asked for; `rate_limited`: a "slow down" answer;
    `concurrent`: "too many concurrent requests" (fewer calls at once, not a lower rate); `ambiguous`:
    the server may have done the work anyway; `unreachable`: nothing is there to answer (connection
    refused, unknown host); `no_answer`: no answer came (unreachable, reset, timed out)."""

    level = RETRY
    exit_code = EXIT_GMAIL

    def __init__(
        self,
        message: str,
        *,
        wait: float | None = None,
        rate_limited: bool = False,
        concurrent: bool = False,
        ambiguous: bool = False,
        unreachable: bool = False,
        no_answer: bool = False,
    ) -> None:
        super().__init__(message, hint="")
        self.wait, self.rate_limited, self.concurrent = wait, rate_limited, concurrent
        self.ambiguous, self.unreachable = ambiguous, unreachable
        self.no_answer = no_answer or unreachable


# --------------------------------------------------------------------------------------------- message


class MessageError(GimportError):
    """This message cannot be handled as it is; retrying the same bytes will not help."""

    level = MESSAGE
    exit_code = EXIT_SOME_FAILED


class MessageRejected(MessageError):
    """Gmail refuses this message (or this request) as it is."""


class Conflict(MessageError):
    """What was to be created exists already (a label of that name, case-insensitively)."""


# ---------------------------------------------------------------------------------------------- folder


class FolderError(GimportError):
    """One folder cannot be used now; the others can."""

    level = FOLDER
    exit_code = EXIT_SOME_FAILED


class FolderGone(FolderError):
    """The folder no longer exists (or cannot be opened) on the server."""


class FolderChanged(FolderError):
    """The folder's UIDVALIDITY changed: its UIDs now mean other messages (rescan it)."""


# --------------------------------------------------------------------------------------------- account


class AccountError(GimportError):
    """This account cannot be migrated now; in admin mode the other users go on."""

    level = ACCOUNT


class AuthError(AccountError):
    """No usable Gmail authorization: token missing, expired, revoked, wrong account."""

    exit_code = EXIT_AUTH

    def default_hint(self) -> str:
        return _("run 'gimport auth' again")


class SourceError(AccountError):
    """The old IMAP server cannot be reached, or refuses the login."""

    exit_code = EXIT_SOURCE


class LoginRefused(SourceError):
    """The server answered the login with NO: wrong user name or password."""


class GmailError(AccountError):
    """Gmail refuses to go on: unreachable, daily limit reached, account not usable."""

    exit_code = EXIT_GMAIL


class GmailRefused(GmailError):
    """Gmail answered a call with a refusal that is not about quota, authorization or one message."""


class StateError(AccountError):
    """The state file cannot be opened or belongs to another account."""

    exit_code = EXIT_USAGE


# ------------------------------------------------------------------------------------------ everything


class FatalError(GimportError):
    """Nothing can go on: stop every account."""

    level = EVERYTHING


class ConfigError(FatalError):
    """The config file or command line is wrong."""

    exit_code = EXIT_USAGE


class DelegationError(FatalError):
    """A service account that can impersonate nobody (no domain-wide delegation, wrong scopes). `details`:
    Google's answer alone (the message adds the fix for the grant)."""

    exit_code = EXIT_AUTH
    details = ""


class SourceGrantError(DelegationError):
    """The application's own credentials for the old server are refused (campus app-only access: the Microsoft
    365 app, the source's service account): one credential for every mailbox, so it is about everyone, whatever
    the Gmail side's delegation does."""


class Interrupted(GimportError):
    """The user asked to stop (Ctrl-C / SIGTERM). `last_error`: the error a call was waiting to retry when
    the stop came (gimport.calls.StopRequested sets it), else None."""

    level = EVERYTHING
    exit_code = EXIT_INTERRUPTED
    last_error: RetryableError | None = None


class Unexpected(GimportError):
    """A bug in gimport (an exception no backend translated): its own exit code, never mistaken for a
    usage or account error."""

    level = ACCOUNT
    exit_code = EXIT_BUG

    @classmethod
    def of(cls, exc: BaseException) -> Unexpected:
        """The bug that `exc` (an exception nothing translated) reveals, as the person reads it."""
        return cls(_("unexpected error: {error!r}").format(error=exc))

    def default_hint(self) -> str:
        return _("this is a bug in gimport; the log file has the details")


def stops_everything(err: BaseException) -> bool:
    """Whether `err` must stop every account (admin mode), not only the one it happened to."""
    return isinstance(err, GimportError) and err.level == EVERYTHING
