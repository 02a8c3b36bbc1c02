"""`gimport verify` and `gimport cleanup` end to end: real Dovecot, the Gmail emulator, the real client
libraries, through the CLI in-process."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys

import pytest

from gimport.backends.state.store import StateStore
from gimport.cli import main
from gimport.config.settings import SourceSettings
from gimport.errors import StateError
from gimport.operations.cleanup import old_domains, points_at
from tests.rig.corpus import make_message
from tests.rig.dovecot import SeedMessage
from tests.rig.gmail_emulator import Fault
from tests.rig.workspace import EMAIL

SECRET_SUBJECT = "Quarterly salary review"  # verify must never print message contents


def msg(n: int, *, subject: str = "hello", seen: bool = True) -> SeedMessage:
    raw = make_message(
        subject=f"{subject} {n}",
        body=f"body {n}",
        sender="a@example.jp",
        to="b@example.jp",
        message_id=f"<m{n}@test.invalid>",
    )
    return SeedMessage(raw, ("\\Seen",) if seen else ())


@pytest.fixture
def mailbox(imap_user):
    imap_user.seed("INBOX", [msg(1), msg(2), msg(3, seen=False)])
    imap_user.seed("Sent", [msg(4), msg(5)])
    imap_user.seed("Work/Reports", [msg(6), msg(7, subject=SECRET_SUBJECT), msg(8)])
    return imap_user


def cli(ws, *args, capsys):
    rc = main(["--config", str(ws.config), *args])
    out = capsys.readouterr()
    return rc, out


def one_line_error(out, text: str) -> str:
    """The error is the last line on stderr, one line, no traceback."""
    assert "Traceback" not in out.err
    last = out.err.strip().splitlines()[-1]
    assert last.startswith("gimport: "), out.err
    assert text in last, out.err
    return last


def state_fingerprint(ws):
    db = sqlite3.connect(f"file:{ws.state}?mode=ro", uri=True)
    try:
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    return hashlib.sha256(ws.state.read_bytes()).hexdigest(), dump


def writes(emu) -> dict:
    reqs = emu.stats.snapshot()["requests"]
    return {k: v for k, v in reqs.items() if k.split(".")[-1] in ("import", "insert", "create", "updateImap")}


def set_source_host(ws, host: str) -> None:
    text = ws.config.read_text()
    start = text.index('host = "')
    end = text.index('"', start + 8)
    ws.config.write_text(text[:start] + f'host = "{host}"' + text[end + 1 :])


# ------------------------------------------------------------------------------------------------ verify


def test_verify_passes_after_a_run_and_changes_nothing(ws, emulator, mailbox, capsys):
    assert cli(ws, "run", capsys=capsys)[0] == 0
    before_state, before_box, before_writes = state_fingerprint(ws), mailbox.snapshot(), writes(emulator)
    rc, out = cli(ws, "verify", capsys=capsys)
    assert rc == 0, out.out
    assert "VERIFIED: all 8 selected message(s) in 3 folder(s)" in out.out
    rows = {ln.split()[0]: ln.split() for ln in out.out.splitlines() if ln.startswith(("INBOX", "Sent", "Work"))}
    assert rows["INBOX"][2:6] == ["3", "3", "3", "0"]  # on source, selected, recorded, missing
    assert rows["Work/Reports"][2:7] == ["3", "3", "3", "0", "3"]  # ... and Gmail's count for the user label
    assert "(system label)" in " ".join(rows["INBOX"])  # counted, never compared
    assert "Exact:" in out.out
    assert "Approximate:" in out.out
    assert SECRET_SUBJECT not in out.out + out.err
    # nothing changed anywhere
    assert state_fingerprint(ws) == before_state
    assert mailbox.snapshot() == before_box
    assert writes(emulator) == before_writes

    rc, out = cli(ws, "verify", "--json", capsys=capsys)
    data = json.loads(out.out)
    assert rc == 0
    assert data["passed"] is True
    assert data["missing"] == []
    folders = {f["folder"]: f for f in data["folders"]}
    assert folders["Sent"]["gmail_labels"] == [
        {"label": "SENT", "system": True, "messages_total": 2, "recorded": 2, "verdict": "not compared"}
    ]
    (work,) = folders["Work/Reports"]["gmail_labels"]
    assert (work["messages_total"], work["recorded"], work["verdict"]) == (3, 3, "ok")


def test_verify_flags_a_gmail_label_count_below_what_was_recorded(ws, emulator, mailbox, capsys):
    assert cli(ws, "run", capsys=capsys)[0] == 0
    user = emulator.user(EMAIL)
    label_id = emulator.label_by_name(EMAIL, "Work/Reports")["id"]
    victim = next(m for m in user.messages if label_id in m.label_ids)
    victim.label_ids.remove(label_id)  # the user took the label off one message in Gmail
    rc, out = cli(ws, "verify", capsys=capsys)
    assert rc == 0  # label counts are approximate: a note, not a failure
    assert "2 FEWER than 3" in out.out
    assert "label 'Work/Reports': Gmail counts 2 message(s), fewer than the 3" in out.out


def test_verify_names_a_message_that_arrived_after_the_run(ws, emulator, mailbox, capsys):
    assert cli(ws, "run", capsys=capsys)[0] == 0
    mailbox.seed("Work/Reports", [msg(9, subject=SECRET_SUBJECT, seen=False)])
    before_box = mailbox.snapshot()
    rc, out = cli(ws, "verify", capsys=capsys)
    assert rc == 1
    assert "Work/Reports  UID 4  <m9@test.invalid>  new: new on the source since the last run" in out.out
    assert "NOT VERIFIED: 1 selected message(s) are not recorded as imported." in out.out
    assert "gimport run" in out.out
    assert SECRET_SUBJECT not in out.out + out.err
    assert mailbox.snapshot() == before_box  # reading the Message-ID did not mark it \Seen
    rc, out = cli(ws, "verify", "--json", capsys=capsys)
    data = json.loads(out.out)
    assert (rc, data["passed"], data["missing_total"]) == (1, False, 1)
    assert data["missing"] == [
        {
            "folder": "Work/Reports",
            "uid": 4,
            "message_id": "<m9@test.invalid>",
            "status": "new",
            "reason": "new on the source since the last run (or newly selected by [filters])",
            "retried_by_run": True,
        }
    ]
    assert data["retry_command"] == "gimport run"
    # the advertised command fixes it
    assert cli(ws, "run", capsys=capsys)[0] == 0
    assert cli(ws, "verify", capsys=capsys)[0] == 0


def test_verify_lists_a_failed_message_with_its_reason(ws, emulator, mailbox, capsys):
    emulator.faults.add(Fault("400", method="import", match=b"<m5@test.invalid>"))
    assert cli(ws, "run", capsys=capsys)[0] == 1
    rc, out = cli(ws, "verify", capsys=capsys)
    assert rc == 1
    (line,) = [ln for ln in out.out.splitlines() if "<m5@test.invalid>" in ln]
    assert line.startswith("  Sent  UID 2  <m5@test.invalid>  failed: rejected by Gmail: import: HTTP 400")
    sent = next(ln for ln in out.out.splitlines() if ln.startswith("Sent "))
    assert sent.split()[2:6] == ["2", "2", "1", "1"]
    assert "To import what is missing (failed ones are retried): gimport run" in out.out


def test_verify_respects_filters(ws, emulator, mailbox, capsys):
    text = ws.config.read_text() + '\n[labels]\nexclude = ["Sent"]\n'
    ws.config.write_text(text)
    assert cli(ws, "run", capsys=capsys)[0] == 0
    mailbox.seed("Sent", [msg(10)])  # not selected: must not count as missing
    rc, out = cli(ws, "verify", "--json", capsys=capsys)
    data = json.loads(out.out)
    assert rc == 0
    assert data["passed"]
    assert {f["folder"] for f in data["folders"]} == {"INBOX", "Work/Reports"}


def test_verify_without_state_file_is_one_line(ws, mailbox, capsys):
    rc, out = cli(ws, "verify", capsys=capsys)
    assert rc == 2
    assert "no state file" in one_line_error(out, "nothing has been run yet")
    assert not ws.state.exists()


def test_verify_revoked_token_is_one_line_exit_3(ws, emulator, mailbox, capsys):
    assert cli(ws, "run", capsys=capsys)[0] == 0
    emulator.revoke_refresh_tokens()
    emulator.expire_access_tokens()
    rc, out = cli(ws, "verify", capsys=capsys)
    assert rc == 3
    one_line_error(out, "run 'gimport auth' again")


def test_verify_unreachable_gmail_is_one_line_exit_5(ws, emulator, mailbox, capsys):
    assert cli(ws, "run", capsys=capsys)[0] == 0
    emulator.expire_access_tokens()
    emulator.stop()
    rc, out = cli(ws, "verify", capsys=capsys)
    assert rc == 5
    one_line_error(out, "cannot get an answer from Gmail")


def test_verify_unreachable_imap_is_one_line_exit_4(ws, emulator, mailbox, capsys):
    assert cli(ws, "run", capsys=capsys)[0] == 0
    port = mailbox.server.tls_port
    ws.config.write_text(ws.config.read_text().replace(f"port = {port}", "port = 1"))
    rc, out = cli(ws, "verify", capsys=capsys)
    assert rc == 4
    one_line_error(out, "cannot connect to the IMAP server")


# ----------------------------------------------------------------------------------------------- cleanup


def test_cleanup_dry_run_changes_nothing(ws, emulator, capsys):
    rc, out = cli(ws, "cleanup", "--dry-run", capsys=capsys)
    assert rc == 0
    assert "IMAP access: enabled" in out.out
    assert "Would change:\n  - disable IMAP access to student@example.ac.jp" in out.out
    assert "Dry run: nothing was changed." in out.out
    assert emulator.user(EMAIL).imap["enabled"] is True
    assert writes(emulator) == {}


def test_cleanup_disables_imap_and_reads_it_back(ws, emulator, capsys):
    before = dict(emulator.user(EMAIL).imap)
    rc, out = cli(ws, "cleanup", "--yes", capsys=capsys)
    assert rc == 0, out.out
    assert "IMAP access: disabled (read back from Gmail)." in out.out
    assert emulator.user(EMAIL).imap == {**before, "enabled": False}  # the other IMAP settings kept
    rc, out = cli(ws, "cleanup", capsys=capsys)  # again: nothing to do, nothing to confirm
    assert rc == 0
    assert "Nothing to change: IMAP access is already disabled." in out.out


def test_cleanup_locked_imap_is_reported_truthfully(ws, emulator, capsys):
    emulator.user(EMAIL).imap_locked_enabled = True
    rc, out = cli(ws, "cleanup", "--yes", capsys=capsys)
    assert rc == 1
    assert "Gmail still reports it ENABLED" in out.out
    assert "Forwarding and POP/IMAP > IMAP access: 'Disable IMAP'" in out.out
    assert "disabled (read back" not in out.out


def test_cleanup_refuses_without_terminal_or_yes(ws, emulator, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _FakeStdin("", tty=False))
    rc, out = cli(ws, "cleanup", capsys=capsys)
    assert rc == 2
    one_line_error(out, "no terminal to confirm on; pass --yes")
    assert "IMAP access: enabled" in out.out  # it showed what it would do first
    assert emulator.user(EMAIL).imap["enabled"] is True


class _FakeStdin:
    def __init__(self, answer: str, tty: bool = True) -> None:
        self.answer, self.tty = answer, tty

    def isatty(self) -> bool:
        return self.tty

    def readline(self) -> str:
        return self.answer


def test_cleanup_asks_on_a_terminal(ws, emulator, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _FakeStdin("n\n"))
    rc, out = cli(ws, "cleanup", capsys=capsys)
    assert rc == 1
    assert "Nothing was changed." in out.out
    assert emulator.user(EMAIL).imap["enabled"] is True
    monkeypatch.setattr(sys, "stdin", _FakeStdin("y\n"))
    rc, out = cli(ws, "cleanup", capsys=capsys)
    assert rc == 0
    assert "Make these changes? [y/N]" in out.out
    assert emulator.user(EMAIL).imap["enabled"] is False


def test_cleanup_warns_about_forwarding_to_the_old_domain(ws, emulator, capsys):
    set_source_host(ws, "mail.example.ac.jp")
    user = emulator.user(EMAIL)
    user.forwarding_addresses[:] = [
        {"forwardingEmail": "taro@example.ac.jp", "verificationStatus": "accepted"},
        {"forwardingEmail": "me@elsewhere.org", "verificationStatus": "accepted"},
    ]
    user.auto_forwarding = {"enabled": True, "emailAddress": "taro@example.ac.jp", "disposition": "leaveInInbox"}
    user.filters[:] = [
        {"id": "f1", "criteria": {"from": "boss@example.jp"}, "action": {"forward": "taro@cc.example.ac.jp"}},
        {"id": "f2", "criteria": {"to": "list@example.jp"}, "action": {"forward": "friend@other.com"}},
        {"id": "f3", "criteria": {"from": "x@example.jp"}, "action": {"addLabelIds": ["STARRED"]}},
    ]
    rc, out = cli(ws, "cleanup", "--yes", capsys=capsys)
    assert rc == 1  # IMAP is off, but the user has something left to do
    warnings = [ln for ln in out.out.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith("warning: auto-forwarding to taro@example.ac.jp")
    assert "Disable forwarding" in warnings[0]
    assert warnings[1].startswith("warning: forwarding address to taro@example.ac.jp")
    assert "Remove address" in warnings[1]
    assert warnings[2].startswith("warning: filter to taro@cc.example.ac.jp")
    assert "from: boss@example.jp" in warnings[2]
    assert not any("elsewhere.org" in w or "other.com" in w for w in warnings)
    assert "Old server's mail domain(s): example.ac.jp, mail.example.ac.jp" in out.out
    assert "IMAP access: disabled (read back from Gmail)." in out.out
    assert "Still to do by you: 3 forwarding setting(s)" in out.out


def test_old_domains():
    def src(host, user="taro"):
        return SourceSettings(host=host, user=user)

    assert old_domains(src("mail.example.ac.jp")) == ("example.ac.jp", "mail.example.ac.jp")
    assert old_domains(src("example.ac.jp")) == ("example.ac.jp",)
    assert old_domains(src("imap.example.com")) == ("example.com", "imap.example.com")
    assert old_domains(src("127.0.0.1", "taro@st.example.ac.jp")) == ("st.example.ac.jp",)
    assert old_domains(src("localhost")) == ()
    assert points_at("Taro@CC.Example.ac.jp", ("example.ac.jp",))
    assert not points_at("taro@notexample.ac.jp", ("example.ac.jp",))


def test_revoke_and_forget_wait_for_verify(ws, emulator, mailbox, capsys):
    assert cli(ws, "run", capsys=capsys)[0] == 0
    mailbox.seed("INBOX", [msg(11)])
    token = ws.dir / "token.json"
    rc, out = cli(ws, "cleanup", "--yes", "--revoke", "--forget", capsys=capsys)
    assert rc == 1
    assert "Verify: does NOT pass (1 selected message(s) missing)." in out.out
    assert "Refused: --revoke and --forget: verify does not pass" in out.out
    assert token.exists()
    assert ws.state.exists()
    assert emulator.user(EMAIL).imap["enabled"] is True

    assert cli(ws, "run", capsys=capsys)[0] == 0
    rc, out = cli(ws, "cleanup", "--yes", "--revoke", "--forget", capsys=capsys)
    assert rc == 0, out.out
    assert "Verify: passes" in out.out
    assert "Revoked gimport's access to Gmail" in out.out
    assert not token.exists()
    assert not [p for p in ws.dir.iterdir() if p.name.startswith("gimport-state.sqlite")]
    assert emulator.user(EMAIL).imap["enabled"] is False
    rc, out = cli(ws, "verify", capsys=capsys)
    assert rc == 2
    assert "no state file" in out.err


def test_force_revokes_without_verify(ws, emulator, capsys):
    info = json.loads((ws.dir / "token.json").read_text())
    rc, out = cli(ws, "cleanup", "--yes", "--revoke", "--force", capsys=capsys)
    assert rc == 0, out.out
    assert "--force: not checking that verify passes first." in out.out
    assert not (ws.dir / "token.json").exists()
    # the grant is really gone at the server: the old refresh token no longer works
    (ws.dir / "token.json").write_text(json.dumps(info))
    (ws.dir / "token.json").chmod(0o600)  # a token file others can read is refused before it is tried
    rc, out = cli(ws, "cleanup", "--dry-run", capsys=capsys)
    assert rc == 3
    one_line_error(out, "run 'gimport auth' again")


def test_cleanup_revoked_token_and_unreachable_gmail_are_one_line(ws, emulator, capsys):
    emulator.revoke_refresh_tokens()
    rc, out = cli(ws, "cleanup", "--dry-run", capsys=capsys)
    assert rc == 3
    one_line_error(out, "Gmail authorization is no longer valid")
    emulator.stop()
    rc, out = cli(ws, "cleanup", "--yes", capsys=capsys)
    assert rc == 5
    one_line_error(out, "cannot get an answer from Gmail")


def test_failed_revoke_keeps_the_state_and_reports_what_was_done(ws, emulator, capsys):
    StateStore(ws.state).close()
    emulator.faults.add(Fault("5xx_before", method="oauth.revoke"))
    rc, out = cli(ws, "cleanup", "--yes", "--revoke", "--forget", "--force", capsys=capsys)
    assert rc == 5
    assert "IMAP access: disabled (read back from Gmail)." in out.out
    one_line_error(out, "revoking at")
    assert (ws.dir / "token.json").exists()
    assert ws.state.exists()


def test_readonly_state_refuses_writes(tmp_path):
    path = tmp_path / "s.sqlite"
    StateStore(path).close()
    before = path.read_bytes()
    st = StateStore.open_readonly(path)
    try:
        with pytest.raises(StateError, match="readonly database"):
            st.set_meta("gmail_account", "x@example.jp")
        assert st.get_meta("gmail_account") is None
    finally:
        st.close()
    assert path.read_bytes() == before
    with pytest.raises(StateError, match="no state file"):
        StateStore.open_readonly(tmp_path / "missing.sqlite")
