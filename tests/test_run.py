"""`gimport run` end to end: real Dovecot, the Gmail emulator, the real client libraries.

Most tests call the CLI in-process; the kill tests run it as a separate process.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
import signal
import time

import pytest

from tests.helpers import record_pacers, run, run_process, wait_for
from tests.rig.corpus import make_message, sample_mailbox
from tests.rig.dovecot import SeedMessage
from tests.rig.gmail_emulator import Fault, GmailEmulator
from tests.rig.workspace import EMAIL, make_workspace

# Independent of gimport.mail.mapping: what the README promises for each folder of the sample mailbox.
EXPECTED_LABELS = {
    "INBOX": ["INBOX"],
    "Sent": ["SENT"],
    "Drafts": ["Drafts (imported)"],
    "Trash": ["TRASH"],
    "Junk": ["SPAM"],
    "Archive/2020": ["Archive (imported)/2020"],
    "Archive/2021": ["Archive (imported)/2021"],
    "Projects/gimport/Design": ["Projects/gimport/Design"],
    "仕事": ["仕事"],
    "仕事/報告書": ["仕事/報告書"],
    "送信済み": ["SENT"],
    "迷惑メール": ["SPAM"],
    "ゴミ箱": ["TRASH"],
    "下書き": ["下書き (imported)"],
    "個人/旅行 2024": ["個人/旅行 2024"],
}


@pytest.fixture
def mailbox(imap_user):
    box = sample_mailbox(n=150, seed=7)
    for folder, messages in box.items():
        imap_user.seed(folder, messages)
    return box


def label_names(emu, stored):
    labels = emu.user(EMAIL).labels
    return sorted(labels[i]["name"] if labels[i].get("type") == "user" else i for i in stored.label_ids)


def expected_for(folder, seed):
    flags = {f.lower() for f in seed.flags}
    names = list(EXPECTED_LABELS[folder])
    if "\\seen" not in flags:
        names.append("UNREAD")
    if "\\flagged" in flags:
        names.append("STARRED")
    return sorted(names)


def has_date(raw):
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    return head.startswith(b"date:") or b"\r\ndate:" in head


def distinct(box):
    """How many messages the mailbox holds: a message copied into several folders is one."""
    return len({seed.raw for seeds in box.values() for seed in seeds})


def expected_messages(box):
    """Each distinct message -> (a folder it is in, a copy, its labels as the README promises): those of every
    folder it is in; TRASH, SPAM and UNREAD only when every copy has them."""
    copies = collections.defaultdict(list)
    for folder, seeds in box.items():
        for seed in seeds:
            copies[seed.raw].append((folder, seed, set(expected_for(folder, seed))))
    out = {}
    for raw, found in copies.items():
        labels = set().union(*(names for _f, _s, names in found))
        labels -= {x for x in ("TRASH", "SPAM", "UNREAD") if not all(x in names for _f, _s, names in found)}
        out[raw] = (found[0][0], found[0][1], sorted(labels))
    return out


def assert_all_imported(emu, box):
    """Every seeded message is in Gmail exactly once (once for all the folders it is in), byte-exact, with
    the right labels."""
    stored = collections.defaultdict(list)
    for m in emu.user(EMAIL).messages:
        stored[m.raw].append(m)
    problems = []
    for raw, (folder, _seed, want) in expected_messages(box).items():
        candidates = stored.get(raw, [])
        if not candidates and not has_date(raw):
            # the one documented change: a Date header synthesised from INTERNALDATE
            for data, ms in stored.items():
                if data.endswith(raw) and data.startswith(b"Date: ") and len(data) - len(raw) < 60:
                    candidates = ms
        match = next((m for m in candidates if label_names(emu, m) == want), None)
        if match is None:
            problems.append((folder, raw[:60], want, [label_names(emu, m) for m in candidates]))
        else:
            candidates.remove(match)
            assert match.params.get("neverMarkSpam") == "true"
            assert match.params.get("internalDateSource") == "dateHeader"
            assert match.params.get("processForCalendar") == "false"
    assert not problems, problems[:5]


def test_full_migration_of_a_mixed_mailbox(ws, emulator, mailbox, imap_user, capsys):
    before = imap_user.snapshot()
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.err
    total = distinct(mailbox)
    assert len(emulator.user(EMAIL).messages) == total
    assert_all_imported(emulator, mailbox)
    assert imap_user.snapshot() == before  # flags, UIDs, contents: untouched
    assert "Everything selected is in Gmail." in out.out
    assert f"{total:,} message(s) imported" in out.out
    # labels were created nested, parents first (the emulator refuses a child before its parent)
    names = {lbl["name"] for lbl in emulator.user(EMAIL).labels.values() if lbl.get("type") == "user"}
    assert {"Archive (imported)", "Projects", "Projects/gimport", "仕事", "個人"} <= names
    log = ws.log.read_text("utf-8")
    assert log.count(" imported folder=") == total
    assert imap_user.password not in log


def test_no_usable_date_gets_one_from_internaldate(ws, emulator, imap_user, capsys):
    raw = make_message(subject="no date", body="x", sender="a@example.jp", to="b@example.jp", no_date=True)
    assert not has_date(raw)
    when = dt.datetime(2016, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    imap_user.seed("INBOX", [SeedMessage(raw, ("\\Seen",), when)])
    rc, _ = run(ws, capsys=capsys)
    assert rc == 0
    (stored,) = emulator.user(EMAIL).messages
    assert stored.raw.endswith(raw)
    assert stored.internal_date_ms == int(when.timestamp() * 1000)


def test_rerun_imports_nothing(ws, emulator, mailbox, capsys):
    assert run(ws, capsys=capsys)[0] == 0
    calls = emulator.user(EMAIL).import_calls
    rc, out = run(ws, capsys=capsys)
    assert rc == 0
    assert emulator.user(EMAIL).import_calls == calls
    assert "0 message(s) to import" in out.err
    assert "Nothing new to import into student@example.ac.jp" in out.out
    assert "Everything selected is in Gmail." in out.out


def test_dot_separator_server(tmp_path, imap_user_dot, emulator, monkeypatch, capsys):
    box = {"INBOX": sample_mailbox(n=40, seed=3)["INBOX"], "仕事/報告書": sample_mailbox(n=40, seed=3)["仕事/報告書"]}
    for folder, msgs in box.items():
        imap_user_dot.seed(folder, msgs)
    w = make_workspace(tmp_path, server=imap_user_dot.server, user=imap_user_dot.name, emulator=emulator, email=EMAIL)
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    assert run(w, capsys=capsys)[0] == 0
    assert_all_imported(emulator, box)


@pytest.mark.parametrize("security", ["starttls", "plain"])
def test_starttls_and_plain_connections(tmp_path, imap_user, emulator, monkeypatch, capsys, security):
    raw = make_message(subject="s", body="b", sender="a@example.jp", to="b@example.jp")
    imap_user.seed("INBOX", [SeedMessage(raw, ("\\Seen",))])
    w = make_workspace(
        tmp_path, server=imap_user.server, user=imap_user.name, emulator=emulator, email=EMAIL, tls=False
    )
    if security == "starttls":
        text = w.config.read_text().replace('security = "plain"', 'security = "starttls"')
        text = text.replace('host = "127.0.0.1"', f'host = "localhost"\nca_file = "{imap_user.server.ca_file}"')
        w.config.write_text(text)
    monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emulator.base_url)
    rc, out = run(w, capsys=capsys)
    assert rc == 0, out.err
    assert [m.raw for m in emulator.user(EMAIL).messages] == [raw]
    logins = [
        line for line in imap_user.server.log_path.read_text().splitlines() if f"Login: user=<{imap_user.name}>" in line
    ]
    assert logins, logins
    assert all((", TLS" in line) == (security == "starttls") for line in logins), logins


def test_existing_labels_are_reused_case_insensitively(ws, emulator, imap_user, capsys):
    from gimport.backends.google.gmail import GmailClient
    from gimport.backends.google.oauth import load_credentials

    # the user already has "Work" (other case) in Gmail
    GmailClient(load_credentials(ws.dir / "token.json"), api_url=emulator.base_url).create_label("Work")
    raw = make_message(subject="s", body="b", sender="a@example.jp", to="b@example.jp")
    imap_user.seed("work/Reports", [SeedMessage(raw, ("\\Seen",))])
    assert run(ws, capsys=capsys)[0] == 0
    labels = emulator.user(EMAIL).labels
    # the user labels a person sees (gimport's marker is a hidden one)
    names = sorted(
        lbl["name"]
        for lbl in labels.values()
        if lbl.get("type") == "user" and lbl.get("labelListVisibility") != "labelHide"
    )
    assert names == ["Work", "Work/Reports"]  # reused, and the child nests under the existing spelling
    (stored,) = emulator.user(EMAIL).messages
    assert [labels[i]["name"] for i in stored.label_ids] == ["Work/Reports"]


def test_faults_lose_nothing_and_duplicate_only_ambiguous_calls(ws, emulator, mailbox, capsys):
    emulator.faults.add(Fault("5xx_before", method="import", count=5, skip=3))
    emulator.faults.add(Fault("5xx_after", method="import", count=3, skip=10))
    emulator.faults.add(Fault("reset_after", method="import", count=3, skip=20))
    emulator.faults.add(Fault("429", method="import", count=10, skip=30))
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out
    total = distinct(mailbox)
    stored = emulator.user(EMAIL).messages
    # every message is there; extra copies only from the 6 calls answered after storing
    assert_all_imported(emulator, mailbox)
    assert total <= len(stored) <= total + 6
    assert "retried after an answer that may have come after Gmail stored" in out.out


def test_a_connection_closed_without_an_answer_is_retried_and_counted(ws, emulator, mailbox, capsys):
    # httplib2 would send such a request again by itself, uncounted; gimport retries it and counts it
    emulator.faults.add(Fault("close_after", method="import", count=3, skip=5))
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out
    total = distinct(mailbox)
    extra = len(emulator.user(EMAIL).messages) - total
    assert extra == 3  # stored, then the connection closed: each was sent again
    assert "3 call(s) were retried after an answer that may have come after Gmail stored" in out.out
    assert_all_imported(emulator, mailbox)


def test_faults_with_merge_on_leave_no_duplicates(tmp_path, imap_user, mailbox, monkeypatch, capsys):
    emu = GmailEmulator(merge_duplicates=True)
    emu.start()
    try:
        emu.add_user(EMAIL)
        emu.faults.add(Fault("5xx_after", method="import", count=4, skip=2))
        emu.faults.add(Fault("reset_after", method="import", count=4, skip=9))
        w = make_workspace(tmp_path, server=imap_user.server, user=imap_user.name, emulator=emu, email=EMAIL)
        monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
        assert run(w, capsys=capsys)[0] == 0
        user = emu.user(EMAIL)
        ids = [m.message_id for m in user.messages if m.message_id]
        assert len(ids) == len(set(ids))
        # the corpus has one message in two folders: one Gmail message with both folders' labels
        (twin,) = [m for m in user.messages if b"X-Corpus-Case: duplicate-id" in m.raw]
        names = {user.labels[i]["name"] for i in twin.label_ids if user.labels[i]["type"] == "user"}
        assert names == {"Archive (imported)/2021", "Projects/gimport/Design"}
    finally:
        emu.stop()


def test_rejected_message_is_recorded_and_retried_next_run(ws, emulator, mailbox, capsys):
    emulator.faults.add(Fault("400", method="import", count=1))
    rc, out = run(ws, capsys=capsys)
    assert rc == 1
    assert "rejected by Gmail" in out.out
    rc, out = run(ws, "status", capsys=capsys)
    assert rc == 1
    assert "rejected by Gmail" in out.out
    calls = emulator.user(EMAIL).import_calls
    rc, out = run(ws, capsys=capsys)
    assert rc == 0
    assert emulator.user(EMAIL).import_calls == calls + 1  # only the failed one is sent again
    assert_all_imported(emulator, mailbox)


def test_quota_is_respected(tmp_path, imap_user, monkeypatch, capsys):
    box = sample_mailbox(n=60, seed=11)
    for folder, msgs in box.items():
        imap_user.seed(folder, msgs)
    upm = 60_000  # 40 imports/s: fast enough for a test, slow enough to need pacing
    emu = GmailEmulator(quota_units_per_minute=upm, burst_seconds=1.0, merge_duplicates=False)
    emu.start()
    try:
        emu.add_user(EMAIL)
        w = make_workspace(
            tmp_path,
            server=imap_user.server,
            user=imap_user.name,
            emulator=emu,
            email=EMAIL,
            quota_units_per_minute=upm,
        )
        monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
        start = time.monotonic()
        assert run(w, capsys=capsys)[0] == 0
        elapsed = time.monotonic() - start
        total = distinct(box)
        assert len(emu.user(EMAIL).messages) == total
        # the pacer kept within the quota: (almost) no 429s, and it could not have gone faster than the quota
        assert emu.stats.rate_limited <= max(1, total // 100)
        assert elapsed >= (total * 25 - upm / 60) / (upm / 60) * 0.9
    finally:
        emu.stop()


def test_a_quota_set_too_high_is_found_out(tmp_path, imap_user, monkeypatch, capsys):
    # the user wrote 15000 units/min, but their project has 6000 (scaled up here x10 to keep it short):
    # Gmail's 429s slow the pacer down until it fits, instead of hammering on
    box = sample_mailbox(n=150, seed=5)
    for folder, msgs in box.items():
        imap_user.seed(folder, msgs)
    emu = GmailEmulator(quota_units_per_minute=60_000, burst_seconds=1.0, merge_duplicates=False)
    emu.start()
    try:
        emu.add_user(EMAIL)
        w = make_workspace(
            tmp_path, server=imap_user.server, user=imap_user.name, emulator=emu, email=EMAIL,
            quota_units_per_minute=150_000,
        )  # fmt: skip
        monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
        rc, out = run(w, capsys=capsys)
        assert rc == 0
        total = distinct(box)
        assert len(emu.user(EMAIL).messages) == total
        assert emu.stats.rate_limited <= total // 10  # it adapted: not one 429 per message
        assert "Gmail asked gimport to slow down" in out.out
    finally:
        emu.stop()


def test_too_many_concurrent_requests_lower_the_concurrency_not_the_rate(tmp_path, imap_user, monkeypatch, capsys):
    box = sample_mailbox(n=60, seed=7)
    for folder, msgs in box.items():
        imap_user.seed(folder, msgs)
    emu = GmailEmulator(max_concurrent=2, merge_duplicates=False)  # 8 workers, 2 calls at once allowed
    emu.start()
    pacers = record_pacers(monkeypatch)
    try:
        emu.add_user(EMAIL)
        emu.faults.add(Fault("slow", method="import", count=None, delay=0.03))  # calls overlap
        w = make_workspace(
            tmp_path, server=imap_user.server, user=imap_user.name, emulator=emu, email=EMAIL,
            quota_units_per_minute=600_000, workers=8,
        )  # fmt: skip
        monkeypatch.setenv("GIMPORT_GMAIL_API_URL", emu.base_url)
        assert run(w, capsys=capsys)[0] == 0
        total = distinct(box)
        assert len(emu.user(EMAIL).messages) == total
        refused = emu.stats.snapshot()["concurrency_limited"]
        (pacer,) = pacers
        assert refused >= 1
        assert pacer.concurrency.refusals == refused == pacer.rate_limited  # each one told
        assert pacer.concurrency.limit is not None
        assert pacer.concurrency.limit <= 6  # fewer at once
        assert pacer.rate_per_minute == pytest.approx(600_000 * 0.98)  # and the rate never cut
    finally:
        emu.stop()


def test_uidvalidity_change_does_not_reimport(ws, emulator, mailbox, imap_user, capsys):
    assert run(ws, capsys=capsys)[0] == 0
    calls = emulator.user(EMAIL).import_calls
    imap_user.reset_uidvalidity("仕事")
    rc, out = run(ws, capsys=capsys)
    assert rc == 0
    assert emulator.user(EMAIL).import_calls == calls
    assert "Everything selected is in Gmail." in out.out


def test_large_message_goes_by_resumable_upload(ws, emulator, imap_user, capsys):
    big = make_message(subject="big", body="x", sender="a@example.jp", to="b@example.jp", attachment_size=2_500_000)
    imap_user.seed("INBOX", [SeedMessage(big, ("\\Seen",))])
    emulator.faults.add(Fault("5xx_before", method="import", count=1, skip=1))  # the first chunk fails once
    assert run(ws, capsys=capsys)[0] == 0
    (stored,) = emulator.user(EMAIL).messages
    assert stored.raw == big
    assert stored.upload_path == "resumable"


def test_message_larger_than_one_chunk_resumes_across_chunks(ws, emulator, imap_user, capsys):
    from gimport.backends.google.gmail import CHUNK_SIZE

    big = make_message(
        subject="huge", body="x", sender="a@example.jp", to="b@example.jp", attachment_size=CHUNK_SIZE + 1_000_000
    )  # base64: ~1.4 chunks... over two chunks
    imap_user.seed("INBOX", [SeedMessage(big, ("\\Seen",))])
    emulator.faults.add(Fault("5xx_before", method="upload.chunk", count=1, skip=1))  # the second chunk fails once
    rc, out = run(ws, capsys=capsys)
    assert rc == 0, out.out
    (stored,) = emulator.user(EMAIL).messages
    assert stored.raw == big
    assert len(big) > CHUNK_SIZE
    assert emulator.stats.snapshot()["requests"].get("upload.chunk", 0) >= 3


def test_message_over_gmails_limit_is_skipped_without_fetching(ws, emulator, imap_user, capsys, monkeypatch):
    # Gmail's limit is 150 MB; scaled down here so the test needs no 150 MB message
    monkeypatch.setattr("gimport.backends.google.gmail.GmailClient.max_message_bytes", 50_000)
    big = make_message(subject="big", body="x", sender="a@example.jp", to="b@example.jp", attachment_size=60_000)
    small = make_message(subject="small", body="x", sender="a@example.jp", to="b@example.jp")
    imap_user.seed("INBOX", [SeedMessage(big, ("\\Seen",)), SeedMessage(small, ("\\Seen",))])
    rc, out = run(ws, capsys=capsys)
    assert rc == 1
    assert [m.raw for m in emulator.user(EMAIL).messages] == [small]
    assert "too large for Gmail" in out.out
    rc, out = run(ws, "status", capsys=capsys)
    assert "skipped: too large for Gmail" in out.out
    calls = emulator.user(EMAIL).import_calls
    assert run(ws, capsys=capsys)[0] == 1  # still reported, never sent
    assert emulator.user(EMAIL).import_calls == calls


def test_gmail_restarting_mid_run_loses_nothing(ws, emulator, mailbox, capsys):
    emulator.faults.add(Fault("slow", method="import", count=None, delay=0.01))
    import threading

    user = emulator.user(EMAIL)

    def restart():
        wait_for(lambda: user.import_calls >= 30)
        emulator.stop()  # connections refused for a moment, calls in flight cut off
        emulator.start()  # same port, same mailbox

    t = threading.Thread(target=restart)
    t.start()
    rc, out = run(ws, capsys=capsys)
    t.join()
    assert rc == 0, out.out
    assert_all_imported(emulator, mailbox)


def test_zero_length_message_is_skipped_and_reported(ws, emulator, imap_user, capsys):
    imap_user.seed("INBOX", [SeedMessage(b"", ("\\Seen",))])
    imap_user.seed("INBOX", [SeedMessage(make_message(subject="ok", body="b", sender="a@x.jp", to="b@x.jp"))])
    rc, out = run(ws, capsys=capsys)
    assert rc == 1
    assert len(emulator.user(EMAIL).messages) == 1
    assert "empty message" in out.out


def test_wrong_password_is_one_line_and_exit_4(ws, capsys):
    (ws.dir / "imap-password.txt").write_text("wrong\n")
    rc, out = run(ws, capsys=capsys)
    assert rc == 4
    last = out.err.strip().splitlines()[-1]
    assert last.startswith("gimport: ")
    assert "refused the login" in last
    assert "check [source] user" in last
    assert "Traceback" not in out.err


def test_missing_token_says_run_auth(ws, capsys):
    (ws.dir / "token.json").unlink()
    rc, out = run(ws, capsys=capsys)
    assert rc == 3
    assert "run 'gimport auth' first" in out.err


def test_wrong_gmail_account_is_refused(ws, emulator, mailbox, capsys):
    text = ws.config.read_text().replace(
        'token_file = "token.json"', 'token_file = "token.json"\nuser = "other@example.ac.jp"'
    )
    ws.config.write_text(text)
    rc, out = run(ws, capsys=capsys)
    assert rc == 3
    assert "other@example.ac.jp" in out.err
    assert emulator.user(EMAIL).messages == []


def test_status_needs_no_network(ws, emulator, mailbox, capsys):
    assert run(ws, capsys=capsys)[0] == 0
    emulator.stop()
    rc, out = run(ws, "status", capsys=capsys)
    assert rc == 0
    rows = sum(len(v) for v in mailbox.values())  # one per folder a message is in
    assert f"{rows}" in out.out.splitlines()[-4]
    assert EMAIL in out.out
    # the corpus's message in two folders: one Gmail id behind two rows
    assert "1 message(s) in Gmail stand for 2 of the imported ones above" in out.out


@pytest.mark.parametrize("kill_after", [1, 40, 110])
def test_sigkill_at_any_point_then_resume(ws, emulator, mailbox, kill_after):
    emulator.faults.add(Fault("slow", method="import", count=10_000, delay=0.01))
    proc = run_process(ws)
    user = emulator.user(EMAIL)
    wait_for(lambda: user.import_calls >= kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    before_resume = user.import_calls
    proc = run_process(ws)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    total = distinct(mailbox)
    stored = user.messages
    assert_all_imported(emulator, mailbox)  # 0 missing
    extra = len(stored) - total
    # never more than the calls in flight at the kill (reported), at most [gmail] workers (40 by default)
    told = re.search(rb"(\d+) import call\(s\) were in flight when an earlier run stopped", out)
    assert 0 <= extra <= (int(told.group(1)) if told else 0) <= 40, out.decode()
    assert before_resume >= kill_after


def test_ctrl_c_stops_cleanly_then_resumes(ws, emulator, mailbox):
    emulator.faults.add(Fault("slow", method="import", count=10_000, delay=0.02))
    proc = run_process(ws)
    user = emulator.user(EMAIL)
    wait_for(lambda: user.import_calls >= 20)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert b"Interrupted: run the same command again" in out
    assert b"Traceback" not in err
    proc = run_process(ws)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert_all_imported(emulator, mailbox)
    total = distinct(mailbox)
    assert len(user.messages) == total  # a clean stop sends nothing twice


def test_ctrl_c_during_a_long_server_given_wait_stops_promptly(ws, emulator, mailbox):
    # Gmail says "Retry after <2 minutes from now>": every worker waits; Ctrl-C must not wait with them
    emulator.faults.add(Fault("429", method="import", count=1, skip=5, delay=120))
    proc = run_process(ws)
    wait_for(lambda: emulator.stats.rate_limited >= 1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)  # a bound, far below the 120 s the server asked for
    assert proc.returncode == 130, err.decode()
    assert b"Interrupted: run the same command again" in out
    proc = run_process(ws)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert_all_imported(emulator, mailbox)


def test_a_second_run_on_the_same_state_is_refused(ws, emulator, mailbox, capsys):
    emulator.faults.add(Fault("slow", method="import", count=None, delay=0.02))
    first = run_process(ws)
    try:
        wait_for(lambda: emulator.user(EMAIL).import_calls >= 3)
        rc, out = run(ws, capsys=capsys)
        assert rc == 2
        assert f"pid {first.pid} on " in out.err
        assert "is already running gimport" in out.err
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert run(ws, capsys=capsys)[0] == 0  # the lock went with the process
    assert_all_imported(emulator, mailbox)


def test_state_and_log_files_are_private(ws, emulator, mailbox, capsys):
    assert run(ws, capsys=capsys)[0] == 0
    for path in (ws.state, ws.log, ws.dir / "token.json"):
        assert path.stat().st_mode & 0o077 == 0, path


def test_folder_vanishing_mid_run_is_reported(ws, emulator, mailbox, imap_user, capsys):
    emulator.faults.add(Fault("slow", method="import", count=10_000, delay=0.005))
    import threading

    user = emulator.user(EMAIL)

    def remove():
        wait_for(lambda: user.import_calls >= 5)
        imap_user.delete_folder("個人/旅行 2024")

    t = threading.Thread(target=remove)
    t.start()
    rc, out = run(ws, capsys=capsys)
    t.join()
    assert rc in (0, 1)  # 0 if the folder was already done when it vanished
    if rc == 1:
        assert "個人/旅行 2024" in out.out


def test_dropped_imap_connection_reconnects(ws, emulator, mailbox, imap_user, capsys):
    emulator.faults.add(Fault("slow", method="import", count=10_000, delay=0.005))
    import threading

    user = emulator.user(EMAIL)

    def kick():
        wait_for(lambda: user.import_calls >= 10)
        imap_user.server.kill_connections(imap_user.name)

    t = threading.Thread(target=kick)
    t.start()
    rc, out = run(ws, capsys=capsys)
    t.join()
    assert rc == 0, out.out
    assert_all_imported(emulator, mailbox)


def test_verbose_output_carries_no_secrets(ws, imap_user, emulator, mailbox, capsys):
    rc, out = run(ws, "--verbose", "run", capsys=capsys)
    assert rc == 0
    token = __import__("json").loads((ws.dir / "token.json").read_text())
    for secret in (imap_user.password, token["refresh_token"], token["client_secret"], token.get("token") or "-"):
        assert secret not in out.err
        assert secret not in out.out
        assert secret not in ws.log.read_text()
    assert "INFO gimport" in out.err or "DEBUG gimport" in out.err
