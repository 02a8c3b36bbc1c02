"""Mail on this computer's disk, read-only: Maildir, mbox, Thunderbird and Google Takeout sources that
offer gimport.contract.MailSource (see each module for its layout and what identifies a message).
Only this package reads those files; it never writes, renames, locks or touches one."""

from __future__ import annotations

from gimport.backends.local.common import LocalSource
from gimport.config.settings import SourceSettings
from gimport.i18n import _


def local_source(settings: SourceSettings) -> LocalSource:
    """The source for [source] type = maildir | mbox | thunderbird | takeout (not opened yet: connect()
    checks the path). Raises ConfigError for another type."""
    import sys

    from gimport.errors import ConfigError

    if sys.platform == "win32":
        raise ConfigError(_("local sources ([source] type = {kind!r}) need Linux or macOS").format(kind=settings.type))
    if settings.path is None:
        raise ConfigError(_("[source] path is required with type = {kind!r}").format(kind=settings.type))
    account = settings.account
    if settings.type == "maildir":
        from gimport.backends.local.maildir import MaildirSource

        return MaildirSource(settings.path, account)
    if settings.type == "mbox":
        from gimport.backends.local.mbox import MboxSource

        return MboxSource(settings.path, account)
    if settings.type == "thunderbird":
        from gimport.backends.local.thunderbird import ThunderbirdSource

        return ThunderbirdSource(settings.path, account)
    if settings.type == "takeout":
        from gimport.backends.local.takeout import TakeoutSource

        return TakeoutSource(settings.path, account, settings.labels)
    raise ConfigError(_("[source] type {kind!r} is not a local source type").format(kind=settings.type))
