"""Deterministic sample mail for tests, demos and benchmarks.

Everything here is pure Python and reproducible: the same arguments give the same bytes on every machine
(randomness only through ``random.Random(seed)``, no clock, no system MIME tables).

- ``make_message``: one RFC 5322 message as bytes with CRLF line endings, in UTF-8, ISO-2022-JP (7bit, the
  classic Japanese mail encoding) or Shift_JIS (8bit), optionally with a base64 attachment.
- ``sample_mailbox``: ~300 messages over 15 folders (English and Japanese names) with the odd cases a migration
  tool must survive; for integration tests.
- ``realistic_mailbox``: thousands of messages with a long-tailed size distribution; for benchmarks.

Both mailboxes are ``dict[logical folder path, list[SeedMessage]]`` ready for ``Dovecot.seed``; each folder's
list is in INTERNALDATE order, as a real mailbox's UIDs usually are.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import email.utils
import hashlib
import math
import random
import re
from collections.abc import Sequence

from tests.rig.dovecot import SeedMessage

DEFAULT_DATE = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
JST = dt.timezone(dt.timedelta(hours=9))

CHARSETS = ("utf-8", "iso-2022-jp", "shift_jis")
# charset argument -> (Python codec, MIME label, Content-Transfer-Encoding of a non-ASCII body)
_CODECS = {
    "utf-8": ("utf-8", "UTF-8", "base64"),
    "iso-2022-jp": ("iso2022_jp", "ISO-2022-JP", "7bit"),
    "shift_jis": ("shift_jis", "Shift_JIS", "8bit"),
}
_ATTACHMENT_TYPES = {
    "pdf": "application/pdf",
    "jpg": "image/jpeg",
    "png": "image/png",
    "zip": "application/zip",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


#: Default for ``make_message(message_id=...)``: derive a stable Message-ID from the message's fields.
AUTO = _Auto()


def make_message(
    *,
    subject: str,
    body: str,
    sender: str,
    to: str | Sequence[str],
    date: dt.datetime | str = DEFAULT_DATE,
    message_id: str | _Auto | None = AUTO,
    charset: str = "utf-8",
    attachment_size: int = 0,
    attachment_name: str = "attachment.bin",
    extra_headers: Sequence[tuple[str, str | bytes]] = (),
    no_date: bool = False,
    eight_bit: bool = False,
) -> bytes:
    """Build one message; returns its bytes with CRLF line endings.

    - ``sender``/``to``: ``"addr"`` or ``"Display Name <addr>"``; non-ASCII names become encoded-words.
    - ``date``: aware datetime (formatted per RFC 5322) or a literal header value; ``no_date`` omits Date.
    - ``message_id``: ``AUTO`` derives ``<hash@corpus.gimport.test>`` from the fields, ``None`` omits the
      header, a str is used as is (give the angle brackets).
    - ``charset``: ``"utf-8"`` (non-ASCII body in base64), ``"iso-2022-jp"`` (7bit body, ISO-2022-JP
      encoded-words) or ``"shift_jis"`` (8bit body, Shift_JIS encoded-words). An ASCII-only body is 7bit.
      Raises UnicodeEncodeError if the text does not fit the charset.
    - ``attachment_size`` > 0 makes a multipart/mixed message with that many deterministic pseudo-random bytes
      attached (base64) as ``attachment_name``.
    - ``extra_headers``: ``(name, value)`` pairs written verbatim after the standard headers (bytes values
      may carry anything, e.g. raw 8-bit).
    - ``eight_bit``: write non-ASCII Subject and display names as raw bytes (UTF-8; Shift_JIS for a Shift_JIS
      message) instead of encoded-words, as broken mailers do.
    - ``body`` may contain any character the charset can encode, NUL included; line ends are normalised.
    """
    if charset not in _CODECS:
        raise ValueError(f"charset must be one of {CHARSETS}, got {charset!r}")
    codec, label, body_cte = _CODECS[charset]
    raw_codec = "shift_jis" if charset == "shift_jis" else "utf-8"
    recipients = [to] if isinstance(to, str) else list(to)
    if not recipients:
        raise ValueError("at least one recipient")

    date_value = None
    if not no_date:
        date_value = email.utils.format_datetime(date) if isinstance(date, dt.datetime) else str(date)
    if message_id is AUTO:
        key = "\0".join([subject, body[:200], sender, *recipients, date_value or "", str(attachment_size)])
        message_id = f"<{hashlib.sha1(key.encode()).hexdigest()[:24]}@corpus.gimport.test>"

    def text(value: str, prefix_len: int) -> bytes:
        if value.isascii():
            return value.encode("ascii")
        if eight_bit:
            return value.encode(raw_codec)
        return _encoded_words(value, codec, label, first_budget=76 - prefix_len)

    def address(value: str, prefix_len: int) -> bytes:
        m = re.fullmatch(r"\s*(.*?)\s*<([^<>]+)>\s*", value)
        if not m:
            return value.strip().encode("ascii")
        name, addr = m.groups()
        if not name:
            return f"<{addr}>".encode("ascii")
        if name.isascii():
            if re.search(r'[()<>\[\]:;@\\,."]', name):
                name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
            return f"{name} <{addr}>".encode("ascii")
        return text(name, prefix_len) + f" <{addr}>".encode("ascii")

    headers: list[bytes] = []
    if date_value is not None:
        headers.append(b"Date: " + date_value.encode("ascii"))
    headers.append(b"From: " + address(sender, 6))
    headers.append(b"To: " + b",\r\n ".join(address(r, 4) for r in recipients))
    headers.append(b"Subject: " + text(subject, 9))
    if message_id is not None:
        headers.append(b"Message-ID: " + str(message_id).encode("ascii"))
    for name, value in extra_headers:
        headers.append(name.encode("ascii") + b": " + (value if isinstance(value, bytes) else value.encode()))
    headers.append(b"MIME-Version: 1.0")

    body_bytes, cte = _encode_body(body, codec, body_cte)
    text_headers = [f"Content-Type: text/plain; charset={label}".encode(), b"Content-Transfer-Encoding: " + cte]
    if attachment_size <= 0:
        return b"\r\n".join(headers + text_headers) + b"\r\n\r\n" + body_bytes

    seed = int.from_bytes(hashlib.sha256(b"%s\0%d" % (str(message_id).encode(), attachment_size)).digest()[:8])
    payload = random.Random(seed).randbytes(attachment_size)
    boundary = f"=_gimport_{seed:016x}".encode()
    ctype = _ATTACHMENT_TYPES.get(attachment_name.rpartition(".")[2].lower(), "application/octet-stream")
    if attachment_name.isascii():
        params = f'name="{attachment_name}"'.encode(), f'filename="{attachment_name}"'.encode()
    else:
        quoted = "".join(
            c if (c.isascii() and c.isalnum()) or c in "._-" else f"%{b:02X}"
            for c in attachment_name
            for b in c.encode()
        )
        params = b"name*=UTF-8''" + quoted.encode(), b"filename*=UTF-8''" + quoted.encode()
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    parts = [
        b"\r\n".join([*headers, b'Content-Type: multipart/mixed; boundary="' + boundary + b'"']),
        b"",
        b"This is a multi-part message in MIME format.",
        b"--" + boundary,
        b"\r\n".join(text_headers),
        b"",
        body_bytes,  # ends in CRLF, and the join adds the CRLF that belongs to the delimiter (RFC 2046)
        b"--" + boundary,
        f"Content-Type: {ctype}; ".encode() + params[0],
        b"Content-Transfer-Encoding: base64",
        b"Content-Disposition: attachment; " + params[1],
        b"",
        encoded.removesuffix(b"\r\n"),
        b"--" + boundary + b"--",
        b"",
    ]
    return b"\r\n".join(parts)


def _encoded_words(value: str, codec: str, label: str, first_budget: int = 66) -> bytes:
    """RFC 2047 B-encoded words, each <= 75 chars and each a complete character sequence (an ISO-2022-JP
    word starts and ends in ASCII); several words are folded onto continuation lines."""
    words: list[str] = []
    overhead = len(f"=?{label}?B??=")
    start = 0
    while start < len(value):
        budget = max(first_budget if not words else 75, overhead + 8)
        end = start + 1
        best = None
        while end <= len(value):
            chunk = value[start:end].encode(codec)
            if overhead + 4 * math.ceil(len(chunk) / 3) > budget:
                break
            best = end
            end += 1
        if best is None:  # one character that does not fit the budget: emit it alone
            best = start + 1
        chunk = value[start:best].encode(codec)
        words.append(f"=?{label}?B?{base64.b64encode(chunk).decode('ascii')}?=")
        start = best
    return "\r\n ".join(words).encode("ascii")


def _encode_body(body: str, codec: str, cte: str) -> tuple[bytes, bytes]:
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if body.isascii():
        return b"".join(line.encode("ascii") + b"\r\n" for line in lines), b"7bit"
    if cte == "base64":
        data = "".join(line + "\r\n" for line in lines).encode(codec)
        return base64.encodebytes(data).replace(b"\n", b"\r\n"), b"base64"
    # Line by line so that each ISO-2022-JP line returns to ASCII before its CRLF (RFC 1468).
    return b"".join(line.encode(codec) + b"\r\n" for line in lines), cte.encode()


# --------------------------------------------------------------------------- sample content

_EN_SUBJECTS = [
    "Quarterly report", "Lunch on Friday?", "Re: server migration plan", "Invoice {n}", "Meeting notes",
    "Your order has shipped", "Weekend plans", "Fwd: conference schedule", "Draft proposal", "Question about the API",
    "Build failed on main", "Photos from the trip", "Welcome to the list", "Password reset request",
]  # fmt: skip
_JA_SUBJECTS = [
    "会議の議事録", "来週の打ち合わせについて", "見積書の送付", "Re: 出張報告", "請求書のご案内", "新年のご挨拶",
    "週報", "旅行の写真", "資料のご確認のお願い", "システム移行の件", "お問い合わせありがとうございます",
    "【重要】パスワード変更のお知らせ", "月例報告書", "忘年会のご案内",
]  # fmt: skip
_EN_LINES = [
    "Hi, please find the details below.", "Let me know if you have any questions.",
    "The numbers for this quarter look better than expected.", "We moved the meeting to Thursday at 3 pm.",
    "I attached the latest version of the document.", "Thanks again for your help last week.",
    "The server will be down for maintenance on Sunday night.", "Could you review the proposal by Monday?",
    "See you at the station at nine.", "Best regards,", "Cheers,",
]  # fmt: skip
_JA_LINES = [
    "いつもお世話になっております。", "以下の通りご連絡いたします。", "ご確認のほどよろしくお願いいたします。",
    "来週の会議は木曜日の午後三時に変更になりました。", "資料を添付いたしましたのでご査収ください。",
    "先日はありがとうございました。", "日曜日の夜にサーバーの保守作業を行います。",
    "ご不明な点がございましたらお知らせください。", "駅で九時に待ち合わせましょう。", "以上、よろしくお願いします。",
]  # fmt: skip
_EN_PEOPLE = [
    "Alice Smith <alice@example.com>", "Bob Jones <bob@example.org>", "carol@example.net",
    "Dave O'Brien <dave@example.com>", "\"Lee, Chris\" <chris.lee@example.com>", "newsletter@lists.example.org",
]  # fmt: skip
_JA_PEOPLE = [
    "山田 太郎 <taro.yamada@example.jp>", "佐藤 花子 <hanako@example.co.jp>", "鈴木 一郎 <ichiro@example.ne.jp>",
    "高橋 美咲 <misaki@example.jp>", "田中 健 <ken.tanaka@example.co.jp>",
]  # fmt: skip
OWNER = "Test User <user@example.jp>"

#: The folders of ``sample_mailbox`` with their share of the messages.
SAMPLE_FOLDERS: dict[str, int] = {
    "INBOX": 30, "Sent": 10, "Drafts": 2, "Trash": 4, "Junk": 4, "Archive/2020": 8, "Archive/2021": 8,
    "Projects/gimport/Design": 4, "仕事": 6, "仕事/報告書": 5, "送信済み": 5, "迷惑メール": 3, "ゴミ箱": 3,
    "下書き": 2, "個人/旅行 2024": 6,
}  # fmt: skip
_SENT = {"Sent", "送信済み"}
_DRAFTS = {"Drafts", "下書き"}
_JUNK = {"Junk", "迷惑メール"}
_YEAR_RANGE = {"Archive/2020": (2020, 2020), "Archive/2021": (2021, 2021), "個人/旅行 2024": (2024, 2024)}


@dataclasses.dataclass(frozen=True)
class _Plan:
    index: int
    folder: str
    charset: str
    japanese: bool
    internaldate: dt.datetime


def _random_date(rng: random.Random, first_year: int, last_year: int) -> dt.datetime:
    start = dt.datetime(first_year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(last_year + 1, 1, 1, tzinfo=dt.UTC)
    return start + dt.timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def _pick_charset(rng: random.Random) -> tuple[str, bool]:
    """~25% ISO-2022-JP, ~10% Shift_JIS, ~25% Japanese in UTF-8, the rest English (ASCII) in UTF-8."""
    r = rng.random()
    if r < 0.25:
        return "iso-2022-jp", True
    if r < 0.35:
        return "shift_jis", True
    return "utf-8", r < 0.60


def _flags_for(rng: random.Random, folder: str) -> tuple[str, ...]:
    if folder in _DRAFTS:
        return ("\\Draft", "\\Seen")
    if folder in _SENT:
        return ("\\Seen",)
    flags = []
    if rng.random() < (0.5 if folder in _JUNK else 0.85):
        flags.append("\\Seen")
    if rng.random() < 0.08:
        flags.append("\\Flagged")
    if rng.random() < 0.12:
        flags.append("\\Answered")
    if rng.random() < 0.03:
        flags.append("$Forwarded")
    return tuple(flags)


def _plan(rng: random.Random, n: int, folders: dict[str, int], years: tuple[int, int]) -> list[_Plan]:
    if n < len(folders):
        raise ValueError(f"n must be at least {len(folders)} (one message per folder)")
    names = list(folders)
    chosen = names + rng.choices(names, weights=list(folders.values()), k=n - len(names))
    plans = []
    for i, folder in enumerate(chosen):
        charset, japanese = _pick_charset(rng)
        first, last = _YEAR_RANGE.get(folder, years)
        plans.append(_Plan(i, folder, charset, japanese, _random_date(rng, first, last)))
    return plans


def _compose(rng: random.Random, plan: _Plan, body_lines: int, **kw) -> bytes:
    """A message for ``plan``; ``kw`` overrides ``make_message`` arguments."""
    if plan.japanese:
        subject = f"[{plan.index:04d}] " + rng.choice(_JA_SUBJECTS)
        lines = [rng.choice(_JA_LINES) for _ in range(body_lines)]
        other = rng.choice(_JA_PEOPLE + _EN_PEOPLE[:2])
    else:
        subject = f"[{plan.index:04d}] " + rng.choice(_EN_SUBJECTS).format(n=rng.randrange(1000, 9999))
        lines = [rng.choice(_EN_LINES) for _ in range(body_lines)]
        other = rng.choice(_EN_PEOPLE)
    sender, to = (OWNER, other) if plan.folder in _SENT | _DRAFTS else (other, OWNER)
    # The Date header is when it was written: a little before it reached the mailbox (INTERNALDATE).
    written = plan.internaldate - dt.timedelta(seconds=rng.randrange(5, 600))
    args = dict(
        subject=subject,
        body="\n".join(lines) + "\n",
        sender=sender,
        to=to,
        date=written.astimezone(JST if plan.japanese else dt.UTC),
        charset=plan.charset,
    )
    args.update(kw)
    return make_message(**args)


def sample_mailbox(n: int = 300, seed: int = 0) -> dict[str, list[SeedMessage]]:
    """``n`` messages (n >= 15) over ``SAMPLE_FOLDERS``, every folder non-empty, INTERNALDATEs in 2015-2024.

    Flags: most \\Seen, some unseen, some \\Flagged / \\Answered / $Forwarded; everything in Sent/送信済み is
    \\Seen, in Drafts/下書き \\Draft \\Seen. Charsets: ~25% ISO-2022-JP, ~10% Shift_JIS, the rest UTF-8 (about
    half of it Japanese). Odd cases, marked by an ``X-Corpus-Case`` header (all present once n >= 27):

    - ``attachment``: six messages with 10-200 KB attachments;
    - ``no-date`` (no Date header); ``no-message-id`` (no Message-ID header);
    - ``eight-bit-header``: raw UTF-8 bytes in Subject (and in From when the sender's name is Japanese);
    - ``nul-byte``: a NUL byte in the body (Dovecot serves it as 0x80 in BODY[]);
    - ``duplicate-id``: one message, byte-identical, in ``Archive/2021`` (\\Seen) and in
      ``Projects/gimport/Design`` (\\Flagged \\Seen), with the same INTERNALDATE, as IMAP COPY leaves it.
    """
    rng = random.Random(seed)
    plans = _plan(rng, n, SAMPLE_FOLDERS, (2015, 2024))
    names = ["no-date", "no-message-id", "eight-bit-header", "nul-byte", "duplicate-id", "duplicate-copy"]
    names += ["attachment"] * 6
    # Never one of the first len(SAMPLE_FOLDERS) plans: those guarantee every folder a message.
    odd = sorted(rng.sample(range(len(SAMPLE_FOLDERS), n), k=min(len(names), n - len(SAMPLE_FOLDERS))))
    cases = dict(zip(odd, names, strict=False))
    if "duplicate-copy" not in cases.values():
        cases = {i: c for i, c in cases.items() if c != "duplicate-id"}
    out: dict[str, list[SeedMessage]] = {f: [] for f in SAMPLE_FOLDERS}
    duplicate: SeedMessage | None = None
    for plan in plans:
        case = cases.get(plan.index)
        if case == "duplicate-copy":
            assert duplicate is not None  # odd indices are sorted: the original comes first
            out["Projects/gimport/Design"].append(dataclasses.replace(duplicate, flags=("\\Flagged", "\\Seen")))
            continue
        kw: dict = {"extra_headers": [("X-Corpus-Case", case)]} if case else {}
        if case == "no-date":
            kw["no_date"] = True
        elif case == "no-message-id":
            kw["message_id"] = None
        elif case == "eight-bit-header":
            plan = dataclasses.replace(plan, charset="utf-8", japanese=True)
            kw["eight_bit"] = True
        elif case == "nul-byte":
            plan = dataclasses.replace(plan, charset="utf-8", japanese=False)
        elif case == "attachment":
            kw["attachment_size"] = rng.randrange(10_000, 200_001)
            kw["attachment_name"] = rng.choice(["report.pdf", "photo.jpg", "data.xlsx", "見積書.pdf"])
        if case == "duplicate-id":
            plan = dataclasses.replace(plan, folder="Archive/2021", internaldate=_random_date(rng, 2021, 2021))
        raw = _compose(rng, plan, rng.randrange(2, 12), **kw)
        if case == "nul-byte":
            head, sep, body = raw.partition(b"\r\n\r\n")
            raw = head + sep + body.replace(b".", b".\x00", 1)
        if case == "duplicate-id":
            duplicate = SeedMessage(raw, ("\\Seen",), plan.internaldate)
            out["Archive/2021"].append(duplicate)
            continue
        out[plan.folder].append(SeedMessage(raw, _flags_for(rng, plan.folder), plan.internaldate))
    for msgs in out.values():
        msgs.sort(key=lambda m: m.internaldate)
    return out


#: The folders of ``realistic_mailbox`` with their share of the messages.
REALISTIC_FOLDERS: dict[str, int] = {
    "INBOX": 35, "Sent": 15, "Archive/2019": 8, "Archive/2020": 8, "Archive/2021": 8, "仕事": 8,
    "仕事/報告書": 5, "Lists/python-dev": 8, "迷惑メール": 3, "Trash": 2,
}  # fmt: skip


def realistic_mailbox(n: int = 2000, avg_kb: float = 20, seed: int = 0) -> dict[str, list[SeedMessage]]:
    """``n`` messages (n >= 10) over ``REALISTIC_FOLDERS`` for benchmarks, INTERNALDATEs in 2019-2024.

    Sizes have a long tail: ~95% are 2-10 KB of text, ~5% carry a 100 KB-1 MB attachment; the attachment
    sizes are scaled so that the mean message size is about ``avg_kb`` KiB (within a few percent for
    8 <= avg_kb <= 50; outside that range the size bands stretch). Same charset and flag mix as
    ``sample_mailbox``, no odd cases.
    """
    rng = random.Random(seed)
    plans = _plan(rng, n, REALISTIC_FOLDERS, (2019, 2024))
    # Target sizes first, then text and attachments to match.
    small = [int(rng.triangular(2_000, 10_000, 4_000)) for _ in range(n)]
    big_idx = set(rng.sample(range(n), k=max(1, round(n * 0.05))))
    big_raw = {i: 100_000 * 10 ** rng.random() for i in big_idx}
    target = n * avg_kb * 1024
    base_total = sum(s for i, s in enumerate(small) if i not in big_idx)
    factor = _solve_factor(list(big_raw.values()), target - base_total)
    sizes = [
        small[i] if i not in big_idx else int(min(1_000_000 * factor[1], big_raw[i] * factor[0])) for i in range(n)
    ]

    en_pool = _line_pool(rng, _EN_LINES, 400)
    ja_pool = _line_pool(rng, _JA_LINES, 400)
    out: dict[str, list[SeedMessage]] = {f: [] for f in REALISTIC_FOLDERS}
    for plan, size in zip(plans, sizes, strict=True):
        attachment = (size - 3_000) * 3 // 4 if plan.index in big_idx else 0  # base64 grows it by 4/3
        text_bytes = 1_000 if attachment else max(200, size - 700)  # ~700 bytes of headers
        pool = ja_pool if plan.japanese else en_pool
        # Japanese text is ~3 bytes a character in UTF-8 before base64, ~2 in ISO-2022-JP/Shift_JIS.
        per_char = 1 if not plan.japanese else (4 if plan.charset == "utf-8" else 2)
        start = rng.randrange(len(pool) // 2)
        body = pool[start : start + text_bytes // per_char]
        body = body[: body.rfind("\n") + 1] or body
        raw = _compose(rng, plan, 0, body=body, attachment_size=attachment, attachment_name="file.pdf")
        out[plan.folder].append(SeedMessage(raw, _flags_for(rng, plan.folder), plan.internaldate))
    for msgs in out.values():
        msgs.sort(key=lambda m: m.internaldate)
    return out


def _line_pool(rng: random.Random, lines: list[str], count: int) -> str:
    return "\n".join(rng.choice(lines) for _ in range(count)) * 8 + "\n"


def _solve_factor(big: list[float], want: float) -> tuple[float, float]:
    """(scale, cap scale) so that sum(min(1 MB * cap, b * scale)) ~= want, by bisection on scale (cap 1.0)
    and, when even 1 MB each is not enough or 100 KB each is too much, by moving the cap or the scale beyond
    the nominal band."""
    if want <= 0:
        return 0.01, 1.0
    if want >= len(big) * 1_000_000:  # even all at 1 MB is too little: stretch the cap
        return want / len(big) / min(big), want / len(big) / 1_000_000
    lo, hi = 0.0, 1_000_000 / min(big)
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(min(1_000_000, b * mid) for b in big) < want:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2, 1.0
