"""The old mail server over IMAP, read-only: the only package that imports imapclient. source.ImapSource is
the MailSource; session.ImapSession logs in and runs each operation under a deadline; parse holds the pure
parsing of the server's answers."""
