"""`gimport cleanup`: finish the job. Returns data; never prints (gimport.render.finish).

cleanup reads the account's IMAP and forwarding settings, warns about forwarding that points at the old
server's domain, disables IMAP (settings.updateImap, the one setting gmail.settings.basic may change)
and reads it back; optionally revokes gimport's token and deletes the state file. Every destructive
step is behind one check: a plan is made first (read-only), and only a confirmed plan is applied.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gimport.config.settings import Settings, SourceSettings
from gimport.contract import MailboxSettings
from gimport.engine.identity import identify
from gimport.errors import ConfigError, GimportError
from gimport.i18n import N_, _
from gimport.operations.verify import VerifyReport

IMAP_KEYS = ("enabled", "autoExpunge", "expungeBehavior", "maxFolderSize")
GMAIL_SETTINGS_PATH = N_("Gmail on the web > Settings (gear) > See all settings > Forwarding and POP/IMAP")
FILTERS_PATH = N_("Gmail on the web > Settings (gear) > See all settings > Filters and Blocked Addresses")
# second-level labels under a country code that are registries, not organisations (example.ac.jp)
_SECOND_LEVEL = frozenset("ac co or ne go ed gr lg ad com net org edu gov mil ltd plc sch nhs gen nom info biz".split())


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
    return ", ".join(parts) or _("every message")


def read_gmail_settings(settings: Settings, gmail: MailboxSettings) -> GmailSettingsReport:
    """IMAP and forwarding settings of the token's account, with warnings about forwarding to the old
    server's domain. Reads only (all allowed by gmail.settings.basic). Raises AuthError, GmailError."""
    account = identify(gmail, settings.gmail.user)
    imap = gmail.get_imap()
    auto = gmail.get_auto_forwarding()
    addresses = gmail.list_forwarding_addresses()
    filters = gmail.list_filters()
    forwarding_filters = [f for f in filters if (f.get("action") or {}).get("forward")]
    domains = old_domains(settings.source)
    warnings: list[ForwardingWarning] = []
    if auto.get("enabled") and points_at(auto.get("emailAddress", ""), domains):
        warnings.append(
            ForwardingWarning(
                _("auto-forwarding"),
                auto["emailAddress"],
                _("on, disposition {disposition}").format(disposition=auto.get("disposition", "?")),
                _(
                    "Gmail forwards every new message to the old server: if the old server forwards to Gmail, mail"
                    " loops; once the old account is closed, those copies bounce. Turn it off in {settings} >"
                    " Forwarding: 'Disable forwarding' > Save Changes (gimport cannot: changing forwarding needs a"
                    " wider permission than it asks for)."
                ).format(settings=_(GMAIL_SETTINGS_PATH)),
            )
        )
    for a in addresses:
        email = a.get("forwardingEmail", "")
        if points_at(email, domains):
            warnings.append(
                ForwardingWarning(
                    _("forwarding address"),
                    email,
                    _("registered, verification {status}").format(status=a.get("verificationStatus", "?")),
                    _(
                        "remove it in {settings} > Forwarding (choose the address, 'Remove address') so that nothing"
                        " can be forwarded to the old server by mistake."
                    ).format(settings=_(GMAIL_SETTINGS_PATH)),
                )
            )
    for f in forwarding_filters:
        target = f["action"]["forward"]
        if points_at(target, domains):
            warnings.append(
                ForwardingWarning(
                    _("filter"),
                    target,
                    _("filter {id}, {criteria}").format(
                        id=f.get("id", "?"), criteria=_criteria_text(f.get("criteria") or {})
                    ),
                    _("delete or edit the filter in {filters}: it forwards matching mail to the old server.").format(
                        filters=_(FILTERS_PATH)
                    ),
                )
            )
    return GmailSettingsReport(account, imap, auto, addresses, forwarding_filters, domains, warnings)


def state_files(state_path: Path) -> list[Path]:
    """The state file and its SQLite side files that exist now."""
    candidates = [
        state_path,
        state_path.with_name(state_path.name + "-wal"),
        state_path.with_name(state_path.name + "-shm"),
        state_path.with_name(state_path.name + ".lock"),  # the lock file of gimport before the flock on the state
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
    gmail: MailboxSettings,
    *,
    revoke: bool = False,
    forget: bool = False,
    force: bool = False,
    verify_now: Callable[[], VerifyReport] | None = None,
    run_in_progress: Callable[[Path], bool] | None = None,
) -> CleanupPlan:
    """What cleanup would change; reads only. --revoke and --forget need `verify_now()` to pass unless
    `force` (plan.blocked says why not). Raises AuthError, GmailError (and what verify_now raises)."""
    report = read_gmail_settings(settings, gmail)
    plan = CleanupPlan(
        gmail=report,
        disable_imap=report.imap_enabled,
        revoke=revoke,
        token_file=settings.gmail.token_file,
        forget=settings.state_path if forget and state_files(settings.state_path) else None,
        forced=force and (revoke or forget),
    )
    if forget and plan.forget is None:
        plan.notes.append(
            _("--forget: there is no state file at {path}: nothing to delete").format(path=settings.state_path)
        )
    if plan.forget is not None and run_in_progress is not None and run_in_progress(settings.state_path):
        plan.blocked = _("--forget: a gimport run is using {path} right now: let it finish first").format(
            path=settings.state_path
        )
        return plan
    if revoke and not plan.token_file.exists():
        plan.notes.append(
            _("--revoke: there is no token file at {path}: nothing to revoke").format(path=plan.token_file)
        )
    if (revoke or forget) and not force:
        if verify_now is None:
            raise ConfigError(_("--revoke/--forget need verify to pass first (or --force)"))
        plan.verify = verify_now()
        if not plan.verify.passed:
            what = " and ".join(n for n, on in (("--revoke", revoke), ("--forget", forget)) if on)
            plan.blocked = _(
                "{what}: verify does not pass ({n} selected message(s) not recorded in Gmail): run 'gimport verify'"
                " for the list, 'gimport run' to import them, or add --force"
            ).format(what=what, n=plan.verify.missing_total)
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


def apply_cleanup(
    plan: CleanupPlan, gmail: MailboxSettings, *, revoke_token: Callable[[Path], str] | None = None
) -> CleanupResult:
    """Carry out a plan the user confirmed: disable IMAP (and read it back), revoke the token, delete the
    state files, in that order. Stops at the first step that fails: the error is in result.error and the
    steps before it stay done (the state file is kept when revoking failed)."""
    if plan.blocked:
        raise ConfigError(plan.blocked)
    result = CleanupResult(imap_before=dict(plan.gmail.imap))
    try:
        if plan.disable_imap:
            body = {k: plan.gmail.imap[k] for k in IMAP_KEYS if k in plan.gmail.imap}
            body["enabled"] = False  # updateImap replaces the whole setting: keep the rest as it is
            gmail.update_imap(body)
            result.imap_after = gmail.get_imap()
        if plan.revoke:
            if revoke_token is None:
                raise ConfigError(_("--revoke: no way to revoke the token was given"))
            result.revoke_text = revoke_token(plan.token_file)
        # listed now, not when planning: reading the state (verify) may have created the side files
        for path in state_files(plan.forget) if plan.forget else []:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigError(
                    _("cannot delete {path}: {strerror}").format(path=path, strerror=exc.strerror)
                ) from None
            result.deleted.append(path)
    except GimportError as err:
        result.error = err
    return result
