"""The typed, immutable settings of gimport: one frozen dataclass per table of gimport.toml with each key's
default, and the constants other modules share (Gmail's system label ids, the host of a local source).

Pure data, no I/O. gimport.config.load.load_settings is the one place that reads the config file into these
(and owns the checks and the bounds of every key).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CONFIG = "gimport.toml"
DEFAULT_QUOTA = 6000  # units/min/user for Cloud projects created since May 2026 (15000 for older ones)
DEFAULT_PROJECT_QUOTA = 1_200_000  # units/min for the whole Cloud project (admin mode)
# units per quota day for the whole project: Gmail's threshold above which charges are to apply (admin mode)
DEFAULT_PROJECT_DAILY = 80_000_000
SYSTEM_LABEL_IDS = frozenset(
    {
        "INBOX",
        "SPAM",
        "TRASH",
        "UNREAD",
        "STARRED",
        "IMPORTANT",
        "SENT",
        "CATEGORY_PERSONAL",
        "CATEGORY_SOCIAL",
        "CATEGORY_PROMOTIONS",
        "CATEGORY_UPDATES",
        "CATEGORY_FORUMS",
    }
)

LOCAL_HOST = "local"  # the "host" of a local source: its account is "<user>@local" (see SourceSettings.account)


@dataclass(frozen=True)
class SourceOAuth:
    """How the source's OAuth token is obtained and kept ([source] auth = "xoauth2" | "oauthbearer").

    `token_file` holds the authorized-user JSON that a login reads and a refresh rewrites; the rest is what
    `gimport auth --source` needs to sign in: for Microsoft the app's `client_id` and the `authority`
    (https://login.microsoftonline.com/<tenant>), for Google the OAuth client file `client_secrets`, and
    the `scopes` the IMAP server wants (empty for a plain imap provider: a token made elsewhere)."""

    token_file: Path
    provider: str = "imap"  # imap | microsoft | google
    scopes: tuple[str, ...] = ()
    client_id: str | None = None
    authority: str | None = None
    client_secrets: Path | None = None
    # `gimport admin` only: the application's own credentials, one grant for every mailbox (no token_file):
    # Microsoft 365 app-only (client_id + tenant + this secret), or a Google service account's key
    client_secret_file: Path | None = None
    service_account_file: Path | None = None

    @property
    def app_only(self) -> bool:
        return self.client_secret_file is not None or self.service_account_file is not None


@dataclass(frozen=True)
class SourceSettings:
    """[source]: the old IMAP server (type "imap"), or mail on this computer's disk (the local types).

    For a local type, `host` is LOCAL_HOST and `user` the type's name (admin mode: the users file's
    source_user), so the account naming the source in the state file does not change when the files
    move; `path` is where the mail is. `labels` is the [labels] table, which a Takeout source needs to
    know which label a message with several is read under (see gimport.backends.local.takeout)."""

    host: str
    user: str
    port: int = 993
    security: str = "ssl"  # ssl | starttls | plain
    password_file: Path | None = None
    password_env: str | None = None
    ca_file: Path | None = None
    timeout: float = 60.0
    login: str | None = None  # the name sent to LOGIN when it differs from `user` (admin mode: master users)
    type: str = "imap"  # imap | maildir | mbox | thunderbird | takeout
    path: Path | None = None  # local types: the Maildir, mbox file or folder, Thunderbird folder, Takeout export
    labels: LabelSettings | None = field(default=None, repr=False)
    auth: str = "password"  # password | xoauth2 | oauthbearer
    oauth: SourceOAuth | None = None  # with auth = "xoauth2" | "oauthbearer"

    @property
    def local(self) -> bool:
        return self.type != "imap"

    @property
    def account(self) -> str:
        """How the state file names this source: "user@host" ("maildir@local" for a local source)."""
        return f"{self.user}@{self.host}"


@dataclass(frozen=True)
class GmailSettings:
    client_secrets: Path
    token_file: Path
    user: str | None = None  # expected account; run refuses any other
    quota_units_per_minute: int = DEFAULT_QUOTA
    workers: int = 40  # the upper bound on import calls in flight (the need follows rate x latency)
    api_url: str | None = None  # from GIMPORT_GMAIL_API_URL only
    give_up_after: float = 600.0  # seconds with no answer from Gmail before a run stops (exit 5)


@dataclass(frozen=True)
class LabelSettings:
    prefix: str = ""
    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    visibility: str = "labelShow"
    map: dict[str, tuple[str, ...]] = field(default_factory=dict)
    keywords: dict[str, str] = field(default_factory=dict)  # [labels.keywords]: keyword -> label, "" for none


@dataclass(frozen=True)
class FilterSettings:
    since: dt.date | None = None
    before: dt.date | None = None
    max_size_mb: float | None = None
    include_deleted: bool = False  # import messages flagged \\Deleted (with TRASH) instead of leaving them out


@dataclass(frozen=True)
class ImportSettings:
    """[import]: what gimport may change in a message on its way."""

    # a Date Gmail may not read is rewritten to the strict form (the original kept as X-Original-Date)
    fix_dates: bool = True


@dataclass(frozen=True)
class AdminSettings:
    """[admin]: `gimport admin` (many mailboxes with a service account); see docs/admin.md."""

    state_dir: Path
    report_file: Path
    service_account_file: Path | None = None
    users_file: Path | None = None
    parallel_users: int = 4
    project_units_per_minute: int = DEFAULT_PROJECT_QUOTA
    memory_budget_mb: int = 512  # megabytes (MiB) of fetched messages waiting for import, all users together
    processes: int = 0  # worker processes of `admin run` (gimport.admin.processes); 0: one per 25 users at a time
    master_user: str | None = None
    master_password_file: Path | None = None
    master_login: str = "{user}*{master}"  # Dovecot's default auth_master_user_separator is "*"
    # N shards, fixed: the index alone comes from the job (Slurm array task id, Kubernetes completion index),
    # so resubmitting or retrying one index keeps its users. None: N comes from the job, as before.
    shard_count: int | None = None
    # the whole project's units per Google quota day (midnight US Pacific), shared by every shard; 0: no limit
    project_units_per_day: int = DEFAULT_PROJECT_DAILY
    # a file written by `gimport admin plan --write-shards N`: the users of each shard index (else by hash)
    shard_map: Path | None = None


@dataclass(frozen=True)
class Settings:
    config_path: Path
    source: SourceSettings
    gmail: GmailSettings
    state_path: Path
    log_file: Path
    labels: LabelSettings = field(default_factory=LabelSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    importing: ImportSettings = field(default_factory=ImportSettings)  # [import]
    admin: AdminSettings = field(
        default_factory=lambda: AdminSettings(Path("gimport-admin-state"), Path("gimport-admin-report.csv"))
    )
