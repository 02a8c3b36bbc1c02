"""gimport: move a mailbox from an old IMAP server into Gmail through the Gmail API."""

__version__ = "0.1.0"
