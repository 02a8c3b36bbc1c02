"""The end of a migration: `gimport verify` and `gimport cleanup`. Returns data; never prints.

verify compares, per selected folder, three things:
- the source now (exact): the messages the mapping and [filters] select, found with the engine's own
  selection (gimport.engine.select_messages) on a read-only IMAP session;
- the state file (exact): which of them are recorded imported (or a duplicate of an imported copy) for
  the folder's current UIDVALIDITY. Opened read-only: verify writes nothing anywhere;
- Gmail's label counts (labels.get messagesTotal; approximate for this purpose): a message in two folders
  is one Gmail message with two labels, the user may have used the label too, and system labels (INBOX,
  SENT, ...) hold other mail, so those are shown and never compared.
A message is *missing* when it is selected on the source now and not recorded imported/duplicate; the
check passes only when nothing is missing and every selected folder could be read.

cleanup reads the account's IMAP and forwarding settings, warns about forwarding that points at the old
server's domain, disables IMAP (settings.updateImap, the one setting gmail.settings.basic may change)
and reads it back; optionally revokes gimport's token and deletes the state file.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gimport.backends.google.gmail import LabelConflict, check_account, paced_call
from gimport.backends.imap import FolderGone
from gimport.backends.state import DONE_STATUSES, FAILED, PENDING, SENDING, SKIPPED, StateLock, StateStore, lock_path
from gimport.engine import NullReporter, Reporter, select_messages
from gimport.errors import ConfigError, GimportError, GmailError, StateError
from gimport.mapping import IMPORT, label_key, plan_folders
from gimport.pacer import Pacer
from gimport.settings import SYSTEM_LABEL_IDS, Settings, SourceSettings

RETRY_COMMAND = "gimport run"
IMAP_KEYS = ("enabled", "autoExpunge", "expungeBehavior", "maxFolderSize")
GMAIL_SETTINGS_PATH = "Gmail on the web > Settings (gear) > See all settings > Forwarding and POP/IMAP"
FILTERS_PATH = "Gmail on the web > Settings (gear) > See all settings > Filters and Blocked Addresses"
# second-level labels under a country code that are registries, not organisations (example.ac.jp)
_SECOND_LEVEL = frozenset("ac co or ne go ed gr lg ad com net org edu gov mil ltd plc sch nhs gen nom info biz".split())


# ------------------------------------------------------------------------------------------ Gmail calls


class _Gmail:
    """Paced Gmail calls with a few retries; every failure becomes a one-line GimportError."""

    def __init__(self, client: Any, pacer: Pacer, attempts: int = 4) -> None:
        self.client, self.pacer, self.attempts = client, pacer, attempts

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return paced_call(self.pacer, what, fn, attempts=self.attempts, rate_limited_attempts=self.attempts * 4)
        except LabelConflict as err:
            raise GmailError(f"Gmail refused {what}: {err}") from None


def _identify(settings: Settings, gmail: _Gmail, state: StateStore | None) -> str:
    """The token's account; refuses one that differs from [gmail] user or from the state file's."""
    address = gmail.call("settings.get", gmail.client.primary_address)
    check_account(address, settings.gmail.user)
    recorded = state.get_meta("gmail_account") if state is not None else None
    if recorded and recorded.lower() != address.lower():
        raise StateError(
            f"state file {state.path} records a migration into {recorded}, but the token is for {address}:"
            " use the matching token or config"
        )
    return address


# ------------------------------------------------------------------------------------------------ verify


@dataclass(frozen=True)
class MissingMessage:
    folder: str
    uid: int
    message_id: str | None  # from the state file, else read from the source (one header, PEEK)
    status: str  # failed | skipped | sending | pending | new
    reason: str
    retried_by_run: bool  # whether 'gimport run' will try it again


@dataclass(frozen=True)
class LabelCheck:
    label: str  # system label id or user label name
    system: bool
    gmail_total: int | None  # labels.get messagesTotal; None when Gmail has no such label
    recorded: int  # distinct Gmail messages the state file records under this label (selected folders)

    @property
    def verdict(self) -> str:
        """not compared | ok | fewer | absent | unused"""
        if self.system:
            return "not compared"
        if self.gmail_total is None:
            return "absent" if self.recorded else "unused"
        return "ok" if self.gmail_total >= self.recorded else "fewer"


@dataclass
class FolderCheck:
    folder: str
    labels: tuple[str, ...]
    uidvalidity: int | None = None
    recorded_uidvalidity: int | None = None  # what the last run saw
    on_source: int = 0  # messages in the folder now
    selected: int = 0  # of those, selected by [filters]
    recorded_imported: int = 0  # state file: imported or duplicate, this UIDVALIDITY (may include deleted ones)
    missing: int = 0  # selected and not recorded imported
    failed: int = 0  # of missing: last attempt failed
    skipped: int = 0  # of missing: cannot be imported as it is
    error: str | None = None  # the folder could not be read


@dataclass
class VerifyReport:
    source_account: str
    gmail_account: str
    state_path: Path
    folders: list[FolderCheck]
    labels: dict[str, LabelCheck]
    missing: list[MissingMessage]  # detailed, at most list_limit
    missing_total: int
    not_selected_now: list[tuple[str, int]] = field(default_factory=list)  # recorded folders not selected now

    @property
    def passed(self) -> bool:
        return self.missing_total == 0 and all(f.error is None for f in self.folders) and bool(self.folders)

    @property
    def retry_helps(self) -> bool:
        return any(f.missing - f.skipped for f in self.folders) or any(f.error for f in self.folders)


def _reason(rec, folder_uv: int, recorded_uv: int | None, folder_known: bool) -> tuple[str, str, bool]:
    """(status, reason, retried by run) for a selected message not recorded imported."""
    if rec is not None:
        if rec.status == FAILED:
            return FAILED, rec.last_error or "the last attempt failed", True
        if rec.status == SKIPPED:
            return SKIPPED, f"{rec.last_error or 'cannot be imported'} (gimport run does not retry it)", False
        if rec.status == SENDING:
            return SENDING, "was being sent when a run was interrupted; gimport run sends it again", True
        if rec.status == PENDING:
            return PENDING, "found by an earlier run that stopped before importing it", True
    if not folder_known:
        return "new", "the folder was not scanned by any run yet", True
    if recorded_uv is not None and recorded_uv != folder_uv:
        return (
            "new",
            f"the folder's UIDVALIDITY changed since the last run ({recorded_uv} -> {folder_uv});"
            " gimport run re-reads it and skips what it already imported",
            True,
        )
    return "new", "new on the source since the last run (or newly selected by [filters])", True


def verify(
    settings: Settings,
    *,
    source: Any,
    gmail: Any,
    state: StateStore,
    list_limit: int | None = None,
    reporter: Reporter | None = None,
    pacer: Pacer | None = None,
) -> VerifyReport:
    """Compare source, state file and Gmail; change nothing. `source` is a connected ImapSource (used
    read-only), `gmail` a GmailClient (labels.list, labels.get, sendAs.list), `state` ideally opened
    with StateStore.open_readonly. At most `list_limit` missing messages are detailed (None: all);
    all are counted. Raises AuthError, GmailError, SourceError, StateError."""
    reporter = reporter or NullReporter()
    api = _Gmail(gmail, pacer or Pacer(settings.gmail.quota_units_per_minute))
    account = source.account
    reporter.phase("checking the Gmail account")
    address = _identify(settings, api, state)
    reporter.phase("listing folders on the source")
    plans = [p for p in plan_folders(source.list_folders(), settings.labels) if p.action == IMPORT]
    plans.sort(key=lambda p: (p.path.upper() != "INBOX", p.path))
    recorded_folders = state.recorded_folders(account)
    checks: list[FolderCheck] = []
    missing: list[MissingMessage] = []
    missing_total = 0
    gmail_ids: dict[str, set[str]] = {}  # label -> Gmail ids recorded for the selected folders
    reporter.phase(f"comparing {len(plans)} folder(s) with the state file")
    for plan in plans:
        check = FolderCheck(plan.path, plan.labels, recorded_uidvalidity=recorded_folders.get(plan.path))
        checks.append(check)
        records: dict = {}

        def done(uidvalidity: int, path: str = plan.path, records: dict = records) -> set[int]:
            records.update(state.folder_messages(account, path, uidvalidity))
            return {uid for uid, r in records.items() if r.status in DONE_STATUSES}

        try:
            sel = select_messages(source, plan.folder.name, settings.filters, done)
        except FolderGone as exc:
            check.error = f"cannot open the folder on the server: {exc}"
            continue
        check.uidvalidity, check.on_source, check.selected = sel.uidvalidity, sel.found, sel.selected
        done_records = [r for r in records.values() if r.status in DONE_STATUSES]
        check.recorded_imported = len(done_records)
        ids = {r.gmail_id for r in done_records if r.gmail_id}
        for label in plan.labels:
            gmail_ids.setdefault(label_key(label) if label not in SYSTEM_LABEL_IDS else label, set()).update(ids)
        check.missing = len(sel.todo)
        missing_total += check.missing
        detailed = []
        for uid, _size in sel.todo:
            rec = records.get(uid)
            status, reason, retried = _reason(
                rec, sel.uidvalidity, check.recorded_uidvalidity, plan.path in recorded_folders
            )
            check.failed += status == FAILED
            check.skipped += status == SKIPPED
            if list_limit is None or len(missing) + len(detailed) < list_limit:
                detailed.append(
                    MissingMessage(plan.path, uid, rec.message_id if rec else None, status, reason, retried)
                )
        unknown = [m.uid for m in detailed if m.message_id is None]
        if unknown:
            found_ids = source.fetch_message_ids(unknown)
            detailed = [
                MissingMessage(m.folder, m.uid, found_ids.get(m.uid), m.status, m.reason, m.retried_by_run)
                if m.message_id is None
                else m
                for m in detailed
            ]
        missing.extend(detailed)

    selected_paths = {p.path for p in plans}
    not_selected = []
    for c in state.folder_counts(account):
        if c.folder not in selected_paths and (c.imported or c.duplicate):
            not_selected.append((c.folder, c.imported + c.duplicate))

    reporter.phase("reading label counts from Gmail")
    labels = _label_checks(api, plans, gmail_ids)
    return VerifyReport(
        source_account=account,
        gmail_account=address,
        state_path=state.path,
        folders=checks,
        labels=labels,
        missing=missing,
        missing_total=missing_total,
        not_selected_now=not_selected,
    )


def _label_checks(api: _Gmail, plans: list, gmail_ids: dict[str, set[str]]) -> dict[str, LabelCheck]:
    existing = api.call("labels.list", api.client.list_labels)
    by_key = {label_key(lbl["name"]): lbl["id"] for lbl in existing if lbl.get("type") != "system"}
    system_ids = {lbl["id"] for lbl in existing if lbl.get("type") == "system"}
    out: dict[str, LabelCheck] = {}
    for plan in plans:
        for label in plan.labels:
            if label in out:
                continue
            system = label in SYSTEM_LABEL_IDS
            key = label if system else label_key(label)
            label_id = (label if label in system_ids else None) if system else by_key.get(key)
            total = None
            if label_id is not None:
                info = api.call("labels.get", lambda i=label_id: api.client.get_label(i))
                total = int(info.get("messagesTotal", 0))
            out[label] = LabelCheck(label, system, total, len(gmail_ids.get(key, ())))
    return out


# ----------------------------------------------------------------------------------------------- cleanup


def old_domains(source: SourceSettings) -> tuple[str, ...]:
    """Mail domains of the old server: from [source] host (mail.example.ac.jp -> example.ac.jp, and the
    host itself) and from [source] user when it is an address. Empty without a usable [source]."""
    found: list[str] = []
    host = source.host.strip().lower().rstrip(".")
    try:
        ipaddress.ip_address(host.strip("[]"))
        host = ""
    except ValueError:
        pass
    if "." in host:
        labels = host.split(".")
        rest = labels[1:]
        registry = len(rest) == 2 and len(rest[1]) == 2 and rest[0] in _SECOND_LEVEL
        if len(rest) >= 2 and not registry:
            found.append(".".join(rest))
        found.append(host)
    user = source.user.strip().lower()
    if "@" in user:
        domain = user.rpartition("@")[2].rstrip(".")
        if "." in domain:
            found.append(domain)
    return tuple(dict.fromkeys(found))


def points_at(address: str, domains: tuple[str, ...]) -> bool:
    """Whether an e-mail address is on one of `domains` (or a subdomain of one)."""
    domain = address.strip().lower().rpartition("@")[2].rstrip(".>")
    return bool(domain) and any(domain == d or domain.endswith("." + d) for d in domains)


@dataclass(frozen=True)
class ForwardingWarning:
    where: str  # auto-forwarding | forwarding address | filter
    address: str
    detail: str
    advice: str


@dataclass
class GmailSettingsReport:
    account: str
    imap: dict[str, Any]
    auto_forwarding: dict[str, Any]
    forwarding_addresses: list[dict[str, Any]]
    forwarding_filters: list[dict[str, Any]]  # filters whose action forwards
    old_domains: tuple[str, ...]
    warnings: list[ForwardingWarning]

    @property
    def imap_enabled(self) -> bool:
        return bool(self.imap.get("enabled"))


def _criteria_text(criteria: dict[str, Any]) -> str:
    parts = [f"{k}: {v}" for k, v in criteria.items() if v not in (None, "", False)]
    return ", ".join(parts) or "every message"


def read_gmail_settings(settings: Settings, gmail: Any, *, pacer: Pacer | None = None) -> GmailSettingsReport:
    """IMAP and forwarding settings of the token's account, with warnings about forwarding to the old
    server's domain. Reads only (all allowed by gmail.settings.basic). Raises AuthError, GmailError."""
    api = _Gmail(gmail, pacer or Pacer(settings.gmail.quota_units_per_minute))
    account = _identify(settings, api, None)
    imap = api.call("settings.get", gmail.get_imap)
    auto = api.call("settings.get", gmail.get_auto_forwarding)
    addresses = api.call("settings.get", gmail.list_forwarding_addresses)
    filters = api.call("settings.get", gmail.list_filters)
    forwarding_filters = [f for f in filters if (f.get("action") or {}).get("forward")]
    domains = old_domains(settings.source)
    warnings: list[ForwardingWarning] = []
    if auto.get("enabled") and points_at(auto.get("emailAddress", ""), domains):
        warnings.append(
            ForwardingWarning(
                "auto-forwarding",
                auto["emailAddress"],
                f"on, disposition {auto.get('disposition', '?')}",
                "Gmail forwards every new message to the old server: if the old server forwards to Gmail, mail"
                " loops; once the old account is closed, those copies bounce. Turn it off in"
                f" {GMAIL_SETTINGS_PATH} > Forwarding: 'Disable forwarding' > Save Changes (gimport cannot: changing"
                " forwarding needs a wider permission than it asks for).",
            )
        )
    for a in addresses:
        email = a.get("forwardingEmail", "")
        if points_at(email, domains):
            warnings.append(
                ForwardingWarning(
                    "forwarding address",
                    email,
                    f"registered, verification {a.get('verificationStatus', '?')}",
                    f"remove it in {GMAIL_SETTINGS_PATH} > Forwarding (choose the address, 'Remove address') so"
                    " that nothing can be forwarded to the old server by mistake.",
                )
            )
    for f in forwarding_filters:
        target = f["action"]["forward"]
        if points_at(target, domains):
            warnings.append(
                ForwardingWarning(
                    "filter",
                    target,
                    f"filter {f.get('id', '?')}, {_criteria_text(f.get('criteria') or {})}",
                    f"delete or edit the filter in {FILTERS_PATH}: it forwards matching mail to the old server.",
                )
            )
    return GmailSettingsReport(account, imap, auto, addresses, forwarding_filters, domains, warnings)


def state_files(state_path: Path) -> list[Path]:
    """The state file and its SQLite side files that exist now."""
    candidates = [
        state_path,
        state_path.with_name(state_path.name + "-wal"),
        state_path.with_name(state_path.name + "-shm"),
        lock_path(state_path),
    ]
    return [p for p in candidates if p.exists()]


@dataclass
class CleanupPlan:
    gmail: GmailSettingsReport
    disable_imap: bool
    revoke: bool
    token_file: Path
    forget: Path | None  # the state file --forget deletes (with its -wal/-shm side files); None: keep it
    verify: VerifyReport | None = None  # run when --revoke/--forget ask for it (not with --force)
    blocked: str | None = None  # why --revoke/--forget cannot go ahead (nothing is changed then)
    forced: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return self.disable_imap or self.revoke or self.forget is not None


def plan_cleanup(
    settings: Settings,
    gmail: Any,
    *,
    revoke: bool = False,
    forget: bool = False,
    force: bool = False,
    verify_now: Callable[[], VerifyReport] | None = None,
    pacer: Pacer | None = None,
) -> CleanupPlan:
    """What cleanup would change; reads only. --revoke and --forget need `verify_now()` to pass unless
    `force` (plan.blocked says why not). Raises AuthError, GmailError (and what verify_now raises)."""
    report = read_gmail_settings(settings, gmail, pacer=pacer)
    plan = CleanupPlan(
        gmail=report,
        disable_imap=report.imap_enabled,
        revoke=revoke,
        token_file=settings.gmail.token_file,
        forget=settings.state_path if forget and state_files(settings.state_path) else None,
        forced=force and (revoke or forget),
    )
    if forget and plan.forget is None:
        plan.notes.append(f"--forget: there is no state file at {settings.state_path}: nothing to delete")
    if plan.forget is not None and StateLock.held(lock_path(settings.state_path)):
        plan.blocked = f"--forget: a gimport run is using {settings.state_path} right now: let it finish first"
        return plan
    if revoke and not plan.token_file.exists():
        plan.notes.append(f"--revoke: there is no token file at {plan.token_file}: nothing to revoke")
    if (revoke or forget) and not force:
        if verify_now is None:
            raise ConfigError("--revoke/--forget need verify to pass first (or --force)")
        plan.verify = verify_now()
        if not plan.verify.passed:
            what = " and ".join(n for n, on in (("--revoke", revoke), ("--forget", forget)) if on)
            plan.blocked = (
                f"{what}: verify does not pass ({plan.verify.missing_total} selected message(s) not recorded"
                " in Gmail): run 'gimport verify' for the list, 'gimport run' to import them, or add --force"
            )
    return plan


@dataclass
class CleanupResult:
    imap_before: dict[str, Any]
    imap_after: dict[str, Any] | None = None  # read back after the update
    revoke_text: str | None = None  # what revoking said
    deleted: list[Path] = field(default_factory=list)
    error: GimportError | None = None  # a later step failed; the steps before it were done

    @property
    def imap_disabled(self) -> bool:
        return not (self.imap_after if self.imap_after is not None else self.imap_before).get("enabled")


def apply_cleanup(plan: CleanupPlan, gmail: Any, *, pacer: Pacer | None = None) -> CleanupResult:
    """Carry out a plan the user confirmed: disable IMAP (and read it back), revoke the token, delete the
    state files, in that order. Stops at the first step that fails: the error is in result.error and the
    steps before it stay done (the state file is kept when revoking failed)."""
    from gimport.backends.google import oauth as auth

    if plan.blocked:
        raise ConfigError(plan.blocked)
    api = _Gmail(gmail, pacer or Pacer(None))
    result = CleanupResult(imap_before=dict(plan.gmail.imap))
    try:
        if plan.disable_imap:
            body = {k: plan.gmail.imap[k] for k in IMAP_KEYS if k in plan.gmail.imap}
            body["enabled"] = False  # updateImap replaces the whole setting: keep the rest as it is
            api.call("settings.update", lambda: gmail.update_imap(body))
            result.imap_after = api.call("settings.get", gmail.get_imap)
        if plan.revoke:
            out = io.StringIO()
            auth.revoke(plan.token_file, out=out)
            result.revoke_text = out.getvalue().strip()
        # listed now, not when planning: reading the state (verify) may have created the side files
        for path in state_files(plan.forget) if plan.forget else []:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigError(f"cannot delete {path}: {exc.strerror}") from None
            result.deleted.append(path)
    except GimportError as err:
        result.error = err
    return result
