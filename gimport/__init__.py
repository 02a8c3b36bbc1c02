"""gimport: move a mailbox from an old IMAP server into Gmail through the Gmail API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gimport")  # written once, in pyproject.toml; installed as the package's metadata
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
