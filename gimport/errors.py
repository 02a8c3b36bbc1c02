"""Every error a user can see derives from GimportError.

Each carries the exit code the CLI returns and a message that says how to fix the problem.
The CLI (gimport.cli) is the only place that catches and prints them.
"""

from __future__ import annotations

# Exit codes, documented in `gimport --help` and README.md.
EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_SOURCE = 4
EXIT_GMAIL = 5
EXIT_INTERRUPTED = 130


class GimportError(Exception):
    """Base class: a problem the user can act on. str(err) is one line."""

    exit_code = EXIT_USAGE


class ConfigError(GimportError):
    """The config file or command line is wrong."""

    exit_code = EXIT_USAGE


class AuthError(GimportError):
    """No usable Gmail authorization: token missing, expired, revoked, wrong account."""

    exit_code = EXIT_AUTH


class SourceError(GimportError):
    """The old IMAP server cannot be reached, or refuses the login."""

    exit_code = EXIT_SOURCE


class GmailError(GimportError):
    """Gmail refuses to go on: unreachable, daily limit reached, account not usable."""

    exit_code = EXIT_GMAIL


class StateError(GimportError):
    """The state file cannot be opened or belongs to another account."""

    exit_code = EXIT_USAGE


class Interrupted(GimportError):
    """The user asked to stop (Ctrl-C / SIGTERM)."""

    exit_code = EXIT_INTERRUPTED
