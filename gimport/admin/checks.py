"""`gimport admin verify` and `admin cleanup`: the single-user gimport.operations.verify / gimport.operations.cleanup applied to
every user of a shard, through the one fan-out pool. The rules of what counts as verified, what a cleanup
line says and which outcome is a success live here; the CLI only renders UserCheck rows."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from gimport import wiring
from gimport.admin.fanout import fan_out
from gimport.admin.paths import user_paths
from gimport.admin.shards import Shard
from gimport.admin.shares import daily_budget, project_pacer
from gimport.admin.users import SourceLogin, UserEntry, user_settings
from gimport.config.settings import Settings
from gimport.errors import ConfigError, GimportError
from gimport.i18n import N_, _
from gimport.operations.cleanup import ForwardingWarning, apply_cleanup, plan_cleanup
from gimport.operations.verify import verify

log = logging.getLogger("gimport.admin")

# the outcomes stay English in code (compared, counted); shown with _(outcome) (gimport.render.admin)
VERIFIED, NOT_VERIFIED, NOT_STARTED, FAILED = N_("verified"), N_("NOT VERIFIED"), N_("not started"), N_("failed")
WOULD_CHANGE, NOTHING_TO_DO, BLOCKED = N_("would change"), N_("nothing to do"), N_("blocked")
DONE, NEEDS_ATTENTION = N_("done"), N_("needs attention")


@dataclass
class UserCheck:
    """The outcome of `gimport admin verify` / `cleanup` for one user."""

    gmail: str
    source_user: str
    outcome: str  # verified | NOT VERIFIED | not started | failed ; cleanup: done | would change | ...
    detail: str = ""
    report: Any = None  # gimport.operations.verify.VerifyReport / gimport.operations.cleanup.CleanupPlan
    bug: bool = False  # failed by an unexpected error (a bug in gimport: the command exits 70)


def for_each_user(users: list[UserEntry], parallel: int, fn: Any, *, stop: threading.Event) -> list[UserCheck]:
    """fn(user) -> UserCheck for every user, `parallel` at a time, in the users' order. A user fn raises for
    becomes a 'failed' check. Once `stop` is set, users not started yet are left out."""

    def failed(entry: UserEntry, err: Exception) -> UserCheck:
        if not isinstance(err, GimportError):
            log.error("%s: unexpected error", entry.gmail, exc_info=err)
            return UserCheck(
                entry.gmail, entry.source_user, FAILED, _("unexpected error: {error}").format(error=repr(err)), bug=True
            )
        return UserCheck(entry.gmail, entry.source_user, FAILED, str(err))

    results = fan_out(users, parallel, lambda _, entry: fn(entry), stop=stop, on_error=failed, name="admin-check")
    return [results[i] for i in sorted(results)]


def service_account(settings: Settings) -> Any:
    """The service account of [admin] service_account_file. Raises ConfigError when none is configured."""
    if settings.admin.service_account_file is None:
        raise ConfigError(
            _(
                "[admin] service_account_file is required: the JSON key of a service account with domain-wide"
                " delegation (docs/admin.md, section 1)"
            )
        )
    return wiring.service_account(settings.admin.service_account_file)


class PerUser:
    """What verify/cleanup need for each user of a shard: the service account, the source logins and one
    project pacer shared by every user (the shard's share of [admin] project_units_per_minute)."""

    def __init__(self, settings: Settings, shard: Shard, sa: Any = None) -> None:
        self.settings = settings
        self.sa = sa if sa is not None else service_account(settings)
        self.logins = SourceLogin(settings.admin, app_only=settings.source.oauth is not None)
        self.project = project_pacer(settings, shard)
        self.daily = daily_budget(settings, shard, persist=False)

    def account(self, entry: UserEntry, *, exact: bool = False) -> tuple[Settings, str, wiring.Account]:
        """(the user's settings, the source password, the wiring's Account) for one user. With `exact` the
        token also carries the metadata scope (admin verify --exact: the delegation grant must list it)."""
        login, password = self.logins.for_user(entry)
        us = user_settings(self.settings, entry, login)
        creds = self.sa.authorize(entry.gmail, scopes=wiring.gmail_scopes(exact))
        return us, password, wiring.account(us, self.project, self.daily, credentials=creds)

    def verify_report(
        self, entry: UserEntry, list_limit: int | None, *, exact: bool = False, strict: bool = False
    ) -> Any:
        """gimport.operations.verify.verify for one user (read-only everywhere); `exact` and `strict` are verify's
        --exact and --strict-labels. Returns a VerifyReport."""
        us, password, acct = self.account(entry, exact=exact)
        state = wiring.state(user_paths(self.settings.admin.state_dir, entry.gmail).state, readonly=True)
        source = wiring.source(us.source, password)
        try:
            self.logins.connect(source, entry)
            return verify(
                us,
                source=source,
                gmail=acct.gmail,
                state=state,
                list_limit=list_limit,
                exact=exact,
                strict_labels=strict,
            )
        finally:
            source.close()
            state.close()

    def verify_check(self, entry: UserEntry, *, exact: bool = False, strict: bool = False) -> UserCheck:
        """One user's verify line: verified only when every selected message is recorded and in Gmail
        (with `exact`: each one proven there by its Gmail id)."""
        if not user_paths(self.settings.admin.state_dir, entry.gmail).state.exists():
            return UserCheck(entry.gmail, entry.source_user, NOT_STARTED, _("no state file: run 'gimport admin run'"))
        rep = self.verify_report(entry, 3, exact=exact, strict=strict)
        selected = sum(f.selected for f in rep.folders)
        if rep.passed:
            detail: str = _("{selected:,} selected, all recorded").format(selected=selected)
            if rep.exact is not None:
                detail += _(", each proven in Gmail ({units:,} units)").format(units=rep.exact.units)
            if rep.accepted:
                detail += _("; {n:,} accepted as not in Gmail").format(n=len(rep.accepted))
            return UserCheck(entry.gmail, entry.source_user, VERIFIED, detail, rep)
        detail = _("{missing:,} of {selected:,} selected message(s) missing").format(
            missing=rep.missing_total, selected=selected
        )
        if rep.exact is not None and not rep.exact.passed:
            failing = [g for g in rep.exact.gaps if g.fails]
            detail += _("; {n:,} not as recorded in Gmail, e.g. {key} {problem}").format(
                n=len(failing), key=failing[0].key, problem=failing[0].problem
            )
        if rep.missing:
            m = rep.missing[0]
            detail += _("; e.g. {folder} UID {uid}: {status}: {reason}").format(
                folder=m.folder, uid=m.uid, status=m.status, reason=m.reason
            )
        errors = [f"{f.folder}: {f.error}" for f in rep.folders if f.error]
        if errors:
            detail += f"; {errors[0]}"
        return UserCheck(entry.gmail, entry.source_user, NOT_VERIFIED, detail, rep)


def verify_users(
    settings: Settings,
    users: list[UserEntry],
    shard: Shard,
    *,
    stop: threading.Event,
    exact: bool = False,
    strict: bool = False,
) -> list[UserCheck]:
    """`admin verify` (`exact`, `strict`: --exact, --strict-labels): a verify line per user (read-only
    everywhere)."""
    tools = PerUser(settings, shard)

    def check(entry: UserEntry) -> UserCheck:
        return tools.verify_check(entry, exact=exact, strict=strict)

    return for_each_user(users, settings.admin.parallel_users, check, stop=stop)


def any_bug(checks: list[UserCheck]) -> bool:
    """Whether a user's check failed by an unexpected error (a bug in gimport)."""
    return any(c.bug for c in checks)


def all_verified(checks: list[UserCheck]) -> bool:
    return bool(checks) and all(c.outcome == VERIFIED for c in checks)


def cleanup_line(plan: Any) -> tuple[str, str]:
    """(outcome, detail) of one user's cleanup plan: blocked / would change / nothing to do."""
    if plan.blocked:
        return BLOCKED, plan.blocked
    parts = [_("IMAP on: disable it") if plan.disable_imap else _("IMAP already off")]
    if plan.forget is not None:
        parts.append(_("delete the state file {name}").format(name=plan.forget.name))
    for w in plan.gmail.warnings:
        parts.append(
            _("WARNING {where} to {address} (change it in Gmail's settings)").format(where=w.where, address=w.address)
        )
    return (WOULD_CHANGE if plan.has_changes else NOTHING_TO_DO), "; ".join(parts)


def _warnings(check: UserCheck) -> list[ForwardingWarning]:
    """The forwarding warnings of a user's cleanup plan (none when the plan could not be made)."""
    plan = check.report
    return list(plan.gmail.warnings) if plan is not None and hasattr(plan, "gmail") else []


class Cleanup:
    """`admin cleanup` in two steps: plan() reads every user's Gmail settings; apply() changes those that
    would change (after the CLI's confirmation), charged to the same budgets as the plan step."""

    def __init__(self, settings: Settings, users: list[UserEntry], shard: Shard, *, forget: bool, force: bool) -> None:
        self.settings, self.users = settings, users
        self.forget, self.force = forget, force
        self.tools = PerUser(settings, shard)
        self.stop = threading.Event()
        self._gmails: dict[str, Any] = {}
        self.plans: list[UserCheck] = []

    def _plan_one(self, entry: UserEntry) -> UserCheck:
        us, _, acct = self.tools.account(entry)
        self._gmails[entry.gmail] = acct.gmail
        plan = plan_cleanup(
            us,
            acct.gmail,
            forget=self.forget,
            force=self.force,
            verify_now=lambda: self.tools.verify_report(entry, 0),
            run_in_progress=wiring.run_in_progress,
        )
        outcome, detail = cleanup_line(plan)
        return UserCheck(entry.gmail, entry.source_user, outcome, detail, plan)

    def plan(self) -> list[UserCheck]:
        self.plans = for_each_user(self.users, self.settings.admin.parallel_users, self._plan_one, stop=self.stop)
        return self.plans

    @property
    def todo(self) -> list[UserCheck]:
        return [c for c in self.plans if c.outcome == WOULD_CHANGE]

    def plan_ok(self) -> bool:
        """Success without changes: every user has nothing to do and no forwarding warning."""
        return bool(self.plans) and all(c.outcome == NOTHING_TO_DO and not _warnings(c) for c in self.plans)

    def _apply_one(self, entry: UserEntry, check: UserCheck) -> UserCheck:
        plan = check.report
        result = apply_cleanup(plan, self._gmails[entry.gmail], revoke_token=wiring.revoke_token)
        if result.error is not None:
            return UserCheck(entry.gmail, entry.source_user, FAILED, str(result.error))
        detail: str = (
            _("IMAP disabled") if result.imap_disabled else _("IMAP still ON after the update (check the account)")
        )
        if result.deleted:
            detail += _("; deleted {names}").format(names=", ".join(p.name for p in result.deleted))
        warnings = plan.gmail.warnings
        if warnings:
            detail += _("; {n} forwarding warning(s) left to fix in Gmail").format(n=len(warnings))
        ok = result.imap_disabled and not warnings
        return UserCheck(entry.gmail, entry.source_user, DONE if ok else NEEDS_ATTENTION, detail)

    def apply(self) -> list[UserCheck]:
        """Apply the plans of self.todo. Returns a line per user changed (or that failed)."""
        by_gmail = {c.gmail: c for c in self.todo}
        users = [u for u in self.users if u.gmail in by_gmail]
        return for_each_user(
            users,
            self.settings.admin.parallel_users,
            lambda entry: self._apply_one(entry, by_gmail[entry.gmail]),
            stop=self.stop,
        )

    def applied_ok(self, done: list[UserCheck]) -> bool:
        """Success after apply: every changed user done, every untouched one fine as it was."""
        todo = self.todo
        untouched = all(c.outcome == NOTHING_TO_DO and not _warnings(c) for c in self.plans if c not in todo)
        return untouched and all(c.outcome == DONE for c in done)
