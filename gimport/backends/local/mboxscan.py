"""Reading an mbox file as its writer meant it: where each message starts and ends, which of the mbox
variants the file is, and what each message's bytes are. Pure parsing over a binary stream; used by the
mbox, Thunderbird and Takeout sources.

The variants (see the README's table of which program writes which):
- mboxo and mboxrd: a message starts at a "From " line (the From_ line) and ends before the blank line
  that precedes the next one; body lines that would look like a From_ line are quoted with ">" ("From "
  -> ">From "; mboxrd also quotes ">From " -> ">>From "). Reading undoes one ">" on lines ">+From ",
  which is exact for mboxrd and for mboxo (whose own ">From " lines cannot be told apart anyway).
- mboxcl and mboxcl2: each message has a Content-Length header giving its body's length, and the next
  From_ line follows the body (after one blank line). mboxcl2 (Dovecot) quotes nothing; mboxcl quotes as
  mboxo. A message framed by its Content-Length is read as written (nothing unquoted).
Content-Length is honoured where it is consistent (the body it gives ends where the file does or where
the next From_ line starts); elsewhere, and in files without it, From_ lines frame the messages. A
"From " line after a blank line is a From_ line when it looks like one ("From sender date"): a body line
"From here on ..." after a blank line in a file that does not quote stays in its message.

The first message of a file that is a mail server's folder-data pseudo-message (UW-IMAP's and Dovecot's
"DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA", with an X-IMAP header) is not a message: left out.
What scan() saw is counted in a Variant, which names the variant and says what it could not tell.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from gimport.errors import FolderChanged
from gimport.i18n import _, ngettext

# header fields rewritten in place when a message's flags change: not part of its identity
VOLATILE = frozenset(
    b"status x-status x-keywords x-uid x-imap x-imapbase x-mozilla-status x-mozilla-status2 x-mozilla-keys"
    b" x-gmail-labels".split()
)
# header fields an mbox's IMAP server (UW-IMAP, Dovecot) writes for itself and never serves as part of
# the message: left out of what is imported (their flags are kept as flags)
SERVER_FIELDS = frozenset(b"status x-status x-keywords x-uid x-imap x-imapbase".split())
MAX_HEAD = 256 * 1024  # header bytes kept per message while scanning (for Date, Status, labels)
_SEPARATOR = re.compile(
    rb"From \S+ +(?:[A-Z][a-z]{2},? +)?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d{1,2}) +"
    rb"(\d{1,2}):(\d\d)(?::(\d\d))?(?: +([+-]\d{4}|[A-Z]{1,5}))? +(\d{4})(?: +([+-]\d{4}))?"
)
# other date orders writers use ("From x Tue, 01 Dec 2026 09:00:00 +0000"): a month, a time and a year
_LOOSE_SEPARATOR = re.compile(
    rb"From \S+ .*\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b.*\b\d{1,2}:\d\d\b.*\b(?:19|2\d)\d\d\b"
)
_MONTHS = {m: i for i, m in enumerate(b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_ESCAPED = re.compile(rb">+From ")
_UNESCAPE = re.compile(rb"(?m)^>(>*From )")
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d{1,15})[ \t]*\r?$")
_X_IMAP = re.compile(rb"(?im)^x-imap:")
_X_IMAP_ANY = re.compile(rb"(?im)^x-imap(?:base)?:")
_PSEUDO_SUBJECT = re.compile(rb"(?im)^subject: *DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA")
_BLANK = (b"\n", b"\r\n")


class NotMbox(ValueError):
    """The file does not start with a "From " line."""


@dataclass(frozen=True)
class Scanned:
    """One message found by scan(): bytes [start, end) of the file, the first line being the separator.
    `quoted`: its ">From " lines are undone when it is read (False: framed by its Content-Length)."""

    start: int
    end: int
    separator: bytes
    identity: bytes
    head: bytes  # the header block (at most MAX_HEAD bytes), unescaped
    quoted: bool = True

    @property
    def size(self) -> int:
        return self.end - self.start - len(self.separator)


@dataclass
class Variant:
    """What scan() found in one file: how its messages were framed and what their bodies hold."""

    by_length: int = 0  # messages framed by their Content-Length
    by_from: int = 0  # messages framed by From_ lines
    length_misfit: int = 0  # of those, with a Content-Length that did not fit the file
    quoted: int = 0  # body lines ">From " in messages framed by From_ lines
    quoted_deeper: int = 0  # of those, ">>From " and deeper (mboxrd: ">From " quoted; mboxo: as received)
    bare_in_length: int = 0  # body lines "From " in messages framed by Content-Length (mboxcl2)
    quoted_in_length: int = 0  # body lines ">From " there (mboxcl quotes; mboxcl2 keeps as received)
    not_separators: int = 0  # "From " lines after a blank line that do not look like a From_ line: kept
    pseudo: int = 0  # the mail server's folder-data message, left out
    server_data: bool = False  # the first message holds X-IMAP or X-IMAPbase: a server's own mbox

    @property
    def length_quotes(self) -> bool | None:
        """Whether the writer of the Content-Length-framed messages quoted "From " lines (mboxcl) or not
        (mboxcl2); None when the file does not tell. An mbox kept by an IMAP server that writes
        Content-Length is Dovecot's, which never quotes."""
        if self.bare_in_length or self.server_data or not self.quoted_in_length:
            return False
        return None

    @property
    def name(self) -> str:
        """mboxcl2, "mboxcl or mboxcl2", "mboxo or mboxrd", or mbox (no message). mboxo and mboxrd differ
        only in what ">>From " lines mean (see doubts), so they are not told apart."""
        if self.by_length:
            return "mboxcl or mboxcl2" if self.length_quotes is None else "mboxcl2"
        if self.by_from:
            return "mboxo or mboxrd"
        return "mbox"

    def doubts(self) -> list[str]:
        """What the file leaves open and how it was read, for a person (empty: nothing to doubt)."""
        out: list[str] = []
        if self.by_length and self.length_quotes is None:
            out.append(
                _(
                    "mboxcl or mboxcl2 cannot be told apart ({n} body lines start with '>From '): read as mboxcl2,"
                    " those lines kept as written"
                ).format(n=self.quoted_in_length)
            )
        if self.quoted_deeper:
            out.append(
                _(
                    "mboxo or mboxrd cannot be told apart ({n} body lines start with '>>From '): read as mboxrd,"
                    " one '>' removed"
                ).format(n=self.quoted_deeper)
            )
        if self.length_misfit:
            out.append(
                ngettext(
                    "{n} message has a Content-Length that does not fit the file: read by its From_ lines",
                    "{n} messages have a Content-Length that does not fit the file: read by their From_ lines",
                    self.length_misfit,
                ).format(n=self.length_misfit)
            )
        no_length = self.by_from - self.length_misfit
        if self.by_length and no_length:
            out.append(
                ngettext(
                    "{n} message has no Content-Length: read by its From_ lines",
                    "{n} messages have no Content-Length: read by their From_ lines",
                    no_length,
                ).format(n=no_length)
            )
        if self.not_separators:
            out.append(
                ngettext(
                    "{n} line starting with 'From ' after a blank line does not look like a From_ line: kept in"
                    " its message",
                    "{n} lines starting with 'From ' after a blank line do not look like a From_ line: kept in"
                    " their messages",
                    self.not_separators,
                ).format(n=self.not_separators)
            )
        return out


class _Message:
    """One message being read: its identity (a hash of its lines as read, volatile headers left out) and
    the first MAX_HEAD bytes of its header."""

    def __init__(self, first: bool = False) -> None:
        self.h = hashlib.blake2b(digest_size=16)
        self.first = first
        self.in_head = True
        self.dropping = False
        self.head_quoted = False  # a header line ">From ": never framed by Content-Length (read unquoted)
        self.head: list[bytes] = []
        self.head_len = 0

    def feed(self, line: bytes) -> None:
        if line[:1] == b">" and _ESCAPED.match(line):
            line = line[1:]
            self.head_quoted = self.head_quoted or self.in_head
        if self.in_head:
            if line in _BLANK:
                self.in_head = False
            elif line[:1] not in (b" ", b"\t"):
                self.dropping = line.split(b":", 1)[0].strip().lower() in VOLATILE
            if self.head_len < MAX_HEAD:
                self.head.append(line)
                self.head_len += len(line)
            if self.dropping and self.in_head:
                return
        self.h.update(line)

    def content_length(self) -> int | None:
        if self.head_quoted:
            return None
        m = _CONTENT_LENGTH.search(b"".join(self.head))
        return int(m.group(1)) if m else None

    def is_pseudo(self) -> bool:
        """The mail server's folder-data message (only ever the first of a file)."""
        head = b"".join(self.head)
        return self.first and bool(_X_IMAP.search(head) or _PSEUDO_SUBJECT.search(head))

    def scanned(self, start: int, end: int, separator: bytes, quoted: bool) -> Scanned:
        return Scanned(start, end, separator, self.h.digest(), b"".join(self.head), quoted)


class _Scanner:
    """scan()'s state: one pass over the stream, line by line; a body framed by Content-Length is read
    after a look at where it ends (seek), so the stream must be seekable when `content_length` is on."""

    def __init__(self, fh: IO[bytes], content_length: bool, variant: Variant) -> None:
        self.fh, self.content_length, self.v = fh, content_length, variant
        self.pos = 0
        self.start = -1
        self.separator = b""
        self.message = _Message()
        self.by_length = False  # the message being read was framed by its Content-Length
        self.misfit = False  # it has a Content-Length that does not fit

    def messages(self) -> Iterator[Scanned]:
        prev_blank = True
        pending = b""  # a blank line not yet fed: it belongs to the separator if a From_ line follows
        for line in self.fh:
            blank = line in _BLANK
            if line[:5] == b"From " and self._separates(line, prev_blank):
                yield from self._close(self.pos - len(pending))
                self.message = _Message(first=self.start < 0)
                self.start, self.separator, pending = self.pos, line, b""
                self.by_length = self.misfit = False
            elif self.start < 0:
                if not blank:
                    raise NotMbox(
                        _("not an mbox file: byte {pos} is not in a message (no 'From ' line before it)").format(
                            pos=self.pos
                        )
                    )
            elif blank and not pending and self.message.in_head and self.content_length and self._framed(line):
                pass  # the body was read by its Content-Length
            else:
                if pending:
                    self.message.feed(pending)
                    pending = b""
                if blank:
                    pending = line
                else:
                    self._count(line)
                    self.message.feed(line)
            prev_blank = blank
            self.pos += len(line)
        yield from self._close(self.pos - len(pending))

    def _separates(self, line: bytes, prev_blank: bool) -> bool:
        if self.start < 0 or self.by_length:  # the first line of the file, or right after a framed body
            return True
        if _SEPARATOR.match(line):
            return True
        if prev_blank and _LOOSE_SEPARATOR.match(line):
            return True
        if prev_blank:
            self.v.not_separators += 1
        return False

    def _count(self, line: bytes) -> None:
        if self.message.in_head or line[:1] != b">" or not _ESCAPED.match(line):
            return
        self.v.quoted += 1
        if line[:2] == b">>":
            self.v.quoted_deeper += 1

    def _framed(self, blank: bytes) -> bool:
        """At the blank line ending a header: when its Content-Length fits, read the body it gives (as
        written) and say True; else False and nothing read."""
        n = self.message.content_length()
        if n is None:
            return False
        body = self.pos + len(blank)
        fh = self.fh
        fh.seek(body + n - 1 if n else body)
        tail = fh.read(8)
        fh.seek(body)
        if n:
            if not tail:
                self.misfit = True  # beyond the end of the file
                return False
            tail = tail[1:]
        if not (tail in (b"", *_BLANK) or tail.startswith((b"From ", b"\nFrom ", b"\r\nFrom "))):
            self.misfit = True
            return False
        self.message.feed(blank)
        self._read_body(n)
        self.pos = body + n - len(blank)  # the loop adds the blank line's length
        self.by_length = True
        return True

    def _read_body(self, n: int) -> None:
        at_line_start, left = True, n
        while left > 0:
            chunk = self.fh.readline(min(left, 1 << 20))
            if not chunk:
                break
            if at_line_start:
                if chunk[:5] == b"From ":
                    self.v.bare_in_length += 1
                elif chunk[:1] == b">" and _ESCAPED.match(chunk):
                    self.v.quoted_in_length += 1
            self.message.h.update(chunk)
            left -= len(chunk)
            at_line_start = chunk[-1:] == b"\n"

    def _close(self, end: int) -> Iterator[Scanned]:
        if self.start < 0:
            return
        if self.message.first and _X_IMAP_ANY.search(b"".join(self.message.head)):
            self.v.server_data = True
        if self.message.is_pseudo():
            self.v.pseudo += 1
            return
        if self.by_length:
            self.v.by_length += 1
        else:
            self.v.by_from += 1
            self.v.length_misfit += self.misfit
        yield self.message.scanned(self.start, end, self.separator, not self.by_length)


def scan(fh: IO[bytes], *, content_length: bool = False, variant: Variant | None = None) -> Iterator[Scanned]:
    """The messages of an mbox stream, in order, reading it once line by line. `content_length`: honour
    consistent Content-Length headers (the stream must be seekable). `variant` is filled in as it goes.
    Raises NotMbox when the first line that is not blank is not a "From " line."""
    return _Scanner(fh, content_length, variant if variant is not None else Variant()).messages()


def identity_of(content: bytes) -> bytes:
    """The identity scan() computes, from a message's bytes as read (separator line not included)."""
    h = hashlib.blake2b(digest_size=16)
    i, n, dropping = 0, len(content), False
    while i < n:
        j = content.find(b"\n", i)
        j = n if j < 0 else j + 1
        line = content[i:j]
        if line in _BLANK:
            break
        if line[:1] not in (b" ", b"\t"):
            dropping = line.split(b":", 1)[0].strip().lower() in VOLATILE
        if not dropping:
            h.update(line)
        i = j
    h.update(content[i:])
    return h.digest()


def read_message(fh: IO[bytes], start: int, end: int, identity: bytes, where: str, *, quoted: bool = True) -> bytes:
    """The message at [start, end), separator line removed, ">From " lines undone when `quoted`;
    FolderChanged when the bytes there are not that message any more (rewritten since it was scanned)."""
    fh.seek(start)
    data = fh.read(end - start)
    nl = data.find(b"\n")
    if not data.startswith(b"From ") or nl < 0:
        raise FolderChanged(_("{where}: the file changed since it was read (run again)").format(where=where))
    content = data[nl + 1 :]
    del data  # a large message is held once, not twice
    if quoted and _UNESCAPE.search(content):
        content = _UNESCAPE.sub(rb"\1", content)
    if identity_of(content) != identity:
        raise FolderChanged(_("{where}: the file changed since it was read (run again)").format(where=where))
    return content


def separator_date(line: bytes) -> dt.datetime | None:
    """The date of a "From sender Tue Dec  1 09:00:00 2026" line (UTC unless it names an offset)."""
    m = _SEPARATOR.match(line)
    if not m:
        return None
    mon, day, hh, mm, ss, tz1, year, tz2 = m.groups()
    offset = next((z for z in (tz1, tz2) if z and z[:1] in b"+-"), None)
    tz = dt.UTC
    if offset:
        sign = -1 if offset[:1] == b"-" else 1
        tz = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    try:
        return dt.datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss or 0), tzinfo=tz)
    except ValueError:
        return None
