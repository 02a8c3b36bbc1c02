"""Mail on disk for the local-source tests: Maildir++, mbox, Thunderbird profiles and Google Takeout
exports written the way those programs write them (test rig only; independent of gimport's readers:
names are encoded with imapclient's modified UTF-7, escaping is done here)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imapclient import imap_utf7

from tests.rig.corpus import make_message

SEPARATOR = b"From MAILER-DAEMON Tue Dec  1 09:00:00 2026"


def lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def message(n: int, subject: str = "", *, body: str = "", **kw) -> bytes:
    """A small LF message, unique by `n` unless `subject`/`body` make it collide on purpose."""
    kw.setdefault("sender", "Taro Yamada <taro@old.example.ac.jp>")
    kw.setdefault("to", "hanako@example.ac.jp")
    kw.setdefault("date", dt.datetime(2020, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n))
    return lf(make_message(subject=subject or f"message {n}", body=body or f"body of message {n}\n", **kw))


# ------------------------------------------------------------------------------------------------ mbox


def escape(raw: bytes, variant: str = "mboxrd") -> bytes:
    """mboxrd: one more ">" before every ">*From "; mboxo: ">" before "From " only."""
    if variant == "mboxrd":
        return re.sub(rb"(?m)^(>*From )", rb">\1", raw)
    return re.sub(rb"(?m)^From ", b">From ", raw)


def mbox_entry(raw: bytes, *, separator: bytes = SEPARATOR, variant: str = "mboxrd", headers: bytes = b"") -> bytes:
    """One message as an mbox writer appends it: separator, (extra headers first), escaped body, blank line."""
    assert raw.endswith(b"\n")
    return separator + b"\n" + headers + escape(raw, variant) + b"\n"


def write_mbox(path: Path, messages: Iterable[bytes], **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(mbox_entry(m, **kw) for m in messages))
    return path


# --------------------------------------------------------------------------------------------- Maildir


@dataclass
class MaildirMessage:
    raw: bytes
    flags: str = ""  # Maildir info letters, e.g. "FS"; None-like "" in new/ when `new`
    mtime: dt.datetime = dt.datetime(2019, 4, 1, 12, 0, tzinfo=dt.UTC)
    new: bool = False
    name: str = field(default="")


def maildir_folder_path(root: Path, folder: str) -> Path:
    """INBOX -> root; "A/B" -> root/.A.B with each level in modified UTF-7."""
    if folder == "INBOX":
        return root
    return root / ("." + ".".join(imap_utf7.encode(p).decode("ascii") for p in folder.split("/")))


def write_maildir(root: Path, folders: dict[str, Sequence[MaildirMessage]]) -> dict[str, list[Path]]:
    """A Maildir++ tree (root = INBOX). Returns the files written per folder."""
    written: dict[str, list[Path]] = {}
    for folder, messages in folders.items():
        d = maildir_folder_path(root, folder)
        for sub in ("cur", "new", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        if folder != "INBOX":
            (d / "maildirfolder").touch()
        for i, m in enumerate(messages):
            unique = m.name or f"{1600000000 + i}.M{i}P{os.getpid()}.{hashlib.md5(m.raw).hexdigest()[:6]}"
            name = unique if m.new else f"{unique},S={len(m.raw)}:2,{''.join(sorted(m.flags))}"
            path = d / ("new" if m.new else "cur") / name
            path.write_bytes(m.raw)
            t = m.mtime.timestamp()
            os.utime(path, (t, t))
            written.setdefault(folder, []).append(path)
    return written


# ----------------------------------------------------------------------------------------- Thunderbird


def mozilla_headers(status: int, keys: str = "") -> bytes:
    """What Thunderbird writes at the top of each message it stores."""
    return f"X-Mozilla-Status: {status:04x}\nX-Mozilla-Status2: 00000000\nX-Mozilla-Keys: {keys:<80}\n".encode()


def thunderbird_entry(raw: bytes, status: int, keys: str = "") -> bytes:
    return mbox_entry(raw, separator=b"From - Tue Dec 01 09:00:00 2026", headers=mozilla_headers(status, keys))


# --------------------------------------------------------------------------------------------- Takeout


def takeout_entry(raw: bytes, labels: Sequence[str], thread: int = 1) -> bytes:
    """A message as Takeout writes it: X-GM-THRID and X-Gmail-Labels (UTF-8) in front."""
    value = ",".join(f'"{lbl}"' if "," in lbl else lbl for lbl in labels)
    head = f"X-GM-THRID: {1700000000000000000 + thread}\nX-Gmail-Labels: {value}\n".encode()
    return mbox_entry(
        raw, separator=f"From {1700000000000000000 + thread}@xxx Tue Dec 01 09:00:00 +0000 2026".encode(), headers=head
    )


def takeout_zip(path: Path, mbox: bytes, member: str = "Takeout/Mail/All mail Including Spam and Trash.mbox") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Takeout/archive_browser.html", "<html></html>")
        zf.writestr(member, mbox)
    return path


def takeout_tgz(path: Path, mbox: bytes, member: str = "Takeout/Mail/All mail Including Spam and Trash.mbox") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in (("Takeout/archive_browser.html", b"<html></html>"), (member, mbox)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


# ----------------------------------------------------------------------------------- read-only evidence


def tree_snapshot(root: Path) -> dict[str, tuple]:
    """Every file and directory under `root`: (sha256, size, mode, mtime_ns) (atime left out)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            out[str(p.relative_to(root))] = (digest, st.st_size, st.st_mode, st.st_mtime_ns)
    st = root.lstat()
    out["."] = ("", st.st_size, st.st_mode, st.st_mtime_ns)
    return out


def big_mbox(path: Path, total_bytes: int, message_bytes: int = 256 * 1024) -> int:
    """An mbox of about `total_bytes`, written in large blocks: messages of `message_bytes` with a base64
    attachment (76-character lines, as mail programs write them), each unique. Returns the message count."""
    line = (b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3"[:76]) + b"\n"
    body = line * (message_bytes // len(line))
    n = 0
    written = 0
    with open(path, "wb", buffering=8 << 20) as fh:
        while written < total_bytes:
            head = (
                f"From big@example.ac.jp Tue Dec  1 09:00:00 2026\nDate: Tue, 01 Dec 2026 09:00:00 +0900\n"
                f"From: big@example.ac.jp\nTo: student@example.ac.jp\nSubject: big {n}\n"
                f"Message-ID: <big-{n}@example.ac.jp>\nMIME-Version: 1.0\n"
                f'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: application/octet-stream\n'
                f"Content-Transfer-Encoding: base64\n\n"
            ).encode()
            chunk = head + body + b"--b--\n\n"
            fh.write(chunk)
            written += len(chunk)
            n += 1
    return n
