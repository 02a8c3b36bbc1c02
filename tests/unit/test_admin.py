"""Admin mode, the pure parts: the users file, sharding, per-user file names, the chained pacer, the service
account's error sorting, the [admin] config table."""

from __future__ import annotations

import collections
import json

import google.auth.exceptions
import pytest

from gimport.admin.paths import user_paths
from gimport.admin.report import UserRow, restore_complete
from gimport.admin.shards import parse_shard, resolve_shard, shard_of, sharded_report_path
from gimport.admin.users import read_users
from gimport.backends.google.service_account import DelegationError, ServiceAccount
from gimport.config.load import load_settings
from gimport.errors import AuthError, ConfigError
from gimport.pacing.rate import ChainedPacer, RatePacer
from tests.rig.admin_workspace import write_service_account

# ------------------------------------------------------------------------------------------------ sharding


def test_shard_of_is_pinned_and_ignores_case_and_spaces():
    # pinned: changing the hash would move users between shards mid-migration
    assert shard_of("alice@campus.example.ac.jp", 1_000_003) == 559834
    assert shard_of(" ALICE@Campus.example.ac.jp", 4) == shard_of("alice@campus.example.ac.jp", 4)


def test_shards_split_users_evenly_and_completely():
    users = [f"user{i}@example.edu" for i in range(4000)]
    counts = collections.Counter(shard_of(u, 4) for u in users)
    assert set(counts) == {0, 1, 2, 3}
    assert all(900 <= n <= 1100 for n in counts.values())
    shards = [parse_shard(f"{i}/4", "--shard") for i in range(4)]
    assert all(sum(s.takes(u) for s in shards) == 1 for u in users)


@pytest.mark.parametrize(
    ("arg", "env", "want"),
    [
        (None, {}, (0, 1)),
        ("2/5", {"JOB_COMPLETION_INDEX": "0", "GIMPORT_SHARD_COUNT": "3"}, (2, 5)),  # the flag wins
        (None, {"GIMPORT_SHARD": "1/3", "SLURM_ARRAY_TASK_ID": "0"}, (1, 3)),
        (None, {"JOB_COMPLETION_INDEX": "3", "GIMPORT_SHARD_COUNT": "4"}, (3, 4)),
        # sbatch --array=1-8: ids 1..8 are shards 0..7
        (None, {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8",
                "SLURM_ARRAY_TASK_COUNT": "8"}, (0, 8)),
        (None, {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "8",
                "SLURM_ARRAY_TASK_COUNT": "8"}, (7, 8)),
        # --array=0-12:4 -> 0, 4, 8, 12
        (None, {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "12",
                "SLURM_ARRAY_TASK_STEP": "4", "SLURM_ARRAY_TASK_COUNT": "4"}, (2, 4)),
    ],
)  # fmt: skip
def test_resolve_shard(arg, env, want):
    shard = resolve_shard(arg, env)
    assert (shard.index, shard.count) == want


@pytest.mark.parametrize(
    ("arg", "env", "message"),
    [
        ("4/4", {}, "the index must be 0..3"),
        ("1-4", {}, "is not a shard like 0/4"),
        (None, {"JOB_COMPLETION_INDEX": "2"}, "GIMPORT_SHARD_COUNT is not"),
        (None, {"JOB_COMPLETION_INDEX": "2", "GIMPORT_SHARD_COUNT": "two"}, "is not a whole number"),
        # --array=1,3,7: not a range
        (None, {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "7",
                "SLURM_ARRAY_TASK_COUNT": "3"}, "not a regular range"),
        (None, {"SLURM_ARRAY_TASK_ID": "3"}, "SLURM_ARRAY_TASK_COUNT"),
    ],
)  # fmt: skip
def test_resolve_shard_errors(arg, env, message):
    with pytest.raises(ConfigError, match=message):
        resolve_shard(arg, env)


SLURM_0_7 = {"SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "7", "SLURM_ARRAY_TASK_COUNT": "8"}


@pytest.mark.parametrize(
    ("arg", "env", "count", "want"),
    [
        # [admin] shard_count = 8: the Slurm task id is the shard, whatever the array submitted now looks like
        (None, {"SLURM_ARRAY_TASK_ID": "5", **SLURM_0_7}, 8, (5, 8)),
        # sbatch --array=5 (a resubmission of one task): still shard 5 of 8, not 0/1
        (None, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_MAX": "5",
                "SLURM_ARRAY_TASK_COUNT": "1"}, 8, (5, 8)),
        # sbatch --array=2,5 (two tasks requeued by hand): their own shards, N from the config
        (None, {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "2", "SLURM_ARRAY_TASK_MAX": "5",
                "SLURM_ARRAY_TASK_COUNT": "2"}, 8, (2, 8)),
        # GIMPORT_SHARD_COUNT fixes N the same way (and may agree with the config)
        (None, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "1", "GIMPORT_SHARD_COUNT": "8"}, None, (5, 8)),
        (None, {"SLURM_ARRAY_TASK_ID": "5", "GIMPORT_SHARD_COUNT": "8"}, 8, (5, 8)),
        # Kubernetes: the config is enough, GIMPORT_SHARD_COUNT is not needed; a retried index keeps its shard
        (None, {"JOB_COMPLETION_INDEX": "3"}, 4, (3, 4)),
        # GIMPORT_SHARD=I alone with a fixed N; I/N with the same N
        (None, {"GIMPORT_SHARD": "2"}, 4, (2, 4)),
        (None, {"GIMPORT_SHARD": "2/4", "SLURM_ARRAY_TASK_ID": "0"}, 4, (2, 4)),
        ("1/4", {}, 4, (1, 4)),
        # nothing names a shard: every user, as before
        (None, {}, 4, (0, 1)),
    ],
)  # fmt: skip
def test_resolve_shard_with_a_fixed_count(arg, env, count, want):
    shard = resolve_shard(arg, env, count=count)
    assert (shard.index, shard.count) == want


@pytest.mark.parametrize(
    ("arg", "env", "count", "message"),
    [
        ("1/3", {}, 4, "fixed at 4"),
        (None, {"GIMPORT_SHARD": "1/3"}, 4, "fixed at 4"),
        (None, {"GIMPORT_SHARD": "1"}, None, "is not a shard like 0/4"),
        (None, {"SLURM_ARRAY_TASK_ID": "8", **SLURM_0_7}, 8, "the shards themselves, 0..7"),
        (None, {"JOB_COMPLETION_INDEX": "4"}, 4, "the index must be 0..3"),
        (None, {"JOB_COMPLETION_INDEX": "1", "GIMPORT_SHARD_COUNT": "3"}, 4, "set them to the same number"),
        (None, {"GIMPORT_SHARD_COUNT": "0"}, None, "at least 1"),
        # without a fixed N, a one-task array other than task 0 is a resubmission: refused, not 0/1
        (None, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_MAX": "5",
                "SLURM_ARRAY_TASK_COUNT": "1"}, None, "shard_count"),
    ],
)  # fmt: skip
def test_resolve_shard_with_a_fixed_count_errors(arg, env, count, message):
    with pytest.raises(ConfigError, match=message):
        resolve_shard(arg, env, count=count)


def test_shard_count_in_the_config(tmp_path):
    assert load_settings(_config(tmp_path, "[admin]\nshard_count = 8\n"), admin=True).admin.shard_count == 8
    assert load_settings(_config(tmp_path, "[admin]\n"), admin=True).admin.shard_count is None
    with pytest.raises(ConfigError, match="shard_count must be at least 1"):
        load_settings(_config(tmp_path, "[admin]\nshard_count = 0\n"), admin=True)


def test_sharded_report_path(tmp_path):
    assert sharded_report_path(tmp_path / "r.csv", parse_shard("0/1", "x")) == tmp_path / "r.csv"
    assert sharded_report_path(tmp_path / "r.csv", parse_shard("2/8", "x")) == tmp_path / "r-shard-2-of-8.csv"


# ------------------------------------------------------------------------------------------ per-user files


def test_user_paths_are_distinct_and_safe(tmp_path):
    plain = user_paths(tmp_path, "Alice.Smith+x@Example.edu")
    assert plain.state == tmp_path / "alice.smith+x@example.edu.sqlite"
    assert plain.log.name == "alice.smith+x@example.edu.log"
    assert plain.lock == plain.state  # the run lock is a flock on the state file
    odd = [user_paths(tmp_path, a).state for a in ("a/b@x.jp", "a_b@x.jp", "../a@x.jp", "a'b@x.jp", 'a"b@x.jp')]
    assert len(set(odd)) == len(odd)
    assert all(p.parent == tmp_path for p in odd)


# ------------------------------------------------------------------------------------------ the users file


def _users(tmp_path, text, **kw):
    path = tmp_path / "users.csv"
    path.write_text(text, encoding="utf-8")
    return read_users(path, master_available=kw.pop("master", False), **kw)


def test_users_file_forms(tmp_path):
    (tmp_path / "pw").mkdir()
    (tmp_path / "pw" / "carol.txt").write_text("secret\n")
    users = _users(
        tmp_path,
        "\ufeffSource_User , Gmail_Address,password,password_file\n"
        'alice,alice@x.jp," spaces kept ",\n'
        "# bob is on leave\n"
        "carol,carol@x.jp,,pw/carol.txt\n"
        "dave,dave@x.jp,,\n",
        master=True,
    )
    assert [(u.source_user, u.gmail, u.login_method) for u in users] == [
        ("alice", "alice@x.jp", "password"),
        ("carol", "carol@x.jp", "password_file"),
        ("dave", "dave@x.jp", "master user"),
    ]
    assert users[0].password == " spaces kept "
    assert users[1].password_file == tmp_path / "pw" / "carol.txt"
    assert [u.line for u in users] == [2, 4, 5]
    assert "spaces" not in repr(users[0])  # never in a traceback or a log


def test_users_file_line_numbers_count_physical_lines(tmp_path):
    text = 'source_user,gmail_address,password\n"# a note\nover two lines",,\nbob,bad,pw\n'
    with pytest.raises(ConfigError, match=r"line 4 \(bob\): gmail_address 'bad'"):
        _users(tmp_path, text)


def test_users_file_reports_how_many_more_problems(tmp_path):
    text = "source_user,gmail_address,password\n,a@x.jp,p\nb,b,p\nc,c@x.jp,p\n"
    with pytest.raises(ConfigError, match=r"line 2: source_user is empty \(and 1 more problem"):
        _users(tmp_path, text)


def test_users_file_status_does_not_need_passwords(tmp_path):
    users = _users(tmp_path, "source_user,gmail_address,password_file\na,a@x.jp,missing.txt\n", check_logins=False)
    assert users[0].gmail == "a@x.jp"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("source_user,gmail_address\n", "lists no users"),
        ("user,gmail_address\n", "unknown column 'user'"),
        ("source_user,password\n", "lacks 'gmail_address'"),
        ("source_user,gmail_address,gmail_address\n", "appears twice"),
        ("source_user,gmail_address,password\na,a@x.jp,p\na,b@x.jp,p\n", "source user 'a' is also on line 2"),
        ("source_user,gmail_address,password,password_file\na,a@x.jp,p,f\n", "not both"),
    ],
)
def test_users_file_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        _users(tmp_path, text)


# --------------------------------------------------------------------------------------- the chained pacer


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_chained_pacer_respects_the_tighter_budget_and_slows_only_its_own():
    """A pacer bursts no more than one call (it allowed half a second)."""
    clock = FakeClock()
    kw = {"clock": clock, "sleep": clock.sleep, "rand": lambda: 0.5, "headroom": 1.0}
    project = RatePacer(60 * 100, **kw)  # 100 units/s for everybody
    alice = ChainedPacer(RatePacer(60 * 1000, **kw), project)
    bob = ChainedPacer(RatePacer(60 * 1000, **kw), project)
    start = clock.now
    for _ in range(40):
        alice.acquire(25)
        bob.acquire(25)
    # 2000 units through a 100 units/s budget, the first call without waiting
    assert clock.now - start == pytest.approx((2000 - 25) / 100, rel=0.01)
    alice.note_rate_limited(5.0)
    assert alice.rate_limited == 1
    assert bob.rate_limited == 0
    assert project.rate_limited == 0
    assert alice.rate_per_minute < 60 * 1000
    assert project.rate_per_minute == 60 * 100
    cut_short = []
    alice.acquire(25, sleep=cut_short.append)  # the engine's stop-aware sleep reaches every budget
    assert cut_short
    assert cut_short[0] >= 4.9


# ----------------------------------------------------------------------------------- the service account


def test_service_account_key_file_checks(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        ServiceAccount(tmp_path / "missing.json")
    desktop = tmp_path / "credentials.json"
    desktop.write_text(json.dumps({"installed": {"client_id": "x"}}))
    with pytest.raises(ConfigError, match="is an OAuth client, not a service-account key"):
        ServiceAccount(desktop)
    key = tmp_path / "sa.json"
    info = write_service_account(key, "http://127.0.0.1:9/token")
    sa = ServiceAccount(key)
    creds = sa.credentials_for("alice@x.jp")
    from gimport.backends.google.oauth import SCOPES

    assert tuple(creds.scopes) == SCOPES
    assert creds._subject == "alice@x.jp"
    assert creds._token_uri == "http://127.0.0.1:9/token"
    assert sa.client_id == info["client_id"]


@pytest.mark.parametrize(
    ("details", "kind"),
    [
        ("unauthorized_client: Client is unauthorized to retrieve access tokens using this method", DelegationError),
        ("invalid_scope: Invalid OAuth scope or ID token audience provided.", DelegationError),
        ("invalid_grant: Invalid JWT Signature.", DelegationError),
        ("invalid_grant: Invalid email or User ID", AuthError),
    ],
)
def test_token_refusals_are_sorted_by_whom_they_concern(tmp_path, details, kind):
    write_service_account(tmp_path / "sa.json", "http://127.0.0.1:9/token")
    sa = ServiceAccount(tmp_path / "sa.json")
    err = sa._refused("alice@x.jp", google.auth.exceptions.RefreshError(details, {}))
    assert type(err) is kind
    if kind is DelegationError:
        assert sa.client_id in str(err)
        assert "gmail.insert" in str(err)
        assert "Domain-wide delegation" in str(err)
    else:
        assert "alice@x.jp" in str(err)


# --------------------------------------------------------------------------------------------- [admin]


def _config(tmp_path, text):
    path = tmp_path / "gimport.toml"
    path.write_text('[source]\nhost = "imap.example.edu"\n' + text)
    return path


def test_admin_config_defaults_and_paths(tmp_path):
    s = load_settings(_config(tmp_path, '[admin]\nservice_account_file = "keys/sa.json"\n'), admin=True)
    assert s.admin.service_account_file == tmp_path / "keys" / "sa.json"
    assert s.admin.state_dir == tmp_path / "gimport-admin-state"
    assert (s.admin.parallel_users, s.admin.project_units_per_minute) == (4, 1_200_000)
    assert s.source.user == "-"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[admin]\nmaster_user = "root"\n', "go together"),
        ('[admin]\nmaster_login = "{master}"\n', "must contain {user}"),
        ('[admin]\nmaster_login = "{user}{oops}"\n', "must contain {user}"),
        ("[admin]\nparallel_users = 0\n", "at least 1"),
        ("[admin]\nthreads = 4\n", "unknown key 'threads'"),
    ],
)
def test_admin_config_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(_config(tmp_path, text), admin=True)


def test_admin_mode_refuses_a_single_user_source(tmp_path):
    path = tmp_path / "gimport.toml"
    path.write_text('[source]\nhost = "h"\nuser = "alice"\n')
    with pytest.raises(ConfigError, match=r"\[source\] user is not used by 'gimport admin'"):
        load_settings(path, admin=True)
    assert load_settings(path).source.user == "alice"  # gimport run is unchanged


def test_user_row_ok():
    assert UserRow("a@x.jp", "a", "complete").ok
    assert not UserRow("a@x.jp", "a", "incomplete").ok


# ------------------------------------------------------------------------------- the run, without servers


def test_a_delegation_refusal_stops_every_user(tmp_path):
    from gimport.admin.run import AdminRun
    from gimport.admin.users import UserEntry

    settings = load_settings(_config(tmp_path, "[admin]\nparallel_users = 2\n"), admin=True)
    users = [UserEntry(i + 2, f"u{i}", f"u{i}@x.jp", password="pw") for i in range(6)]
    asked = []

    def authorize(email):
        asked.append(email)
        raise DelegationError("Google refuses to let the service account act for users")

    summary = AdminRun(settings, users, authorize=authorize).run()
    assert isinstance(summary.fatal, DelegationError)
    assert summary.fatal.exit_code == 3
    # the users already started when the first refusal came, and the two others asked whether the grant
    # works for anybody
    assert len(set(asked)) <= 4
    outcomes = collections.Counter(r.outcome for r in summary.rows)
    assert outcomes["failed"] <= 2
    assert outcomes["not run"] >= 4
    assert outcomes["failed"] + outcomes["interrupted"] + outcomes["not run"] == 6
    assert len(summary.rows) == 6
    assert not summary.complete


def test_a_refusal_is_about_everyone_only_when_the_tokens_of_others_are_refused_too():
    from gimport.admin.delegation import DelegationJudge, for_one_user

    granted_for = {"b@x.jp"}
    asked = []

    def authorize(email):
        asked.append(email)
        if email not in granted_for:
            raise DelegationError("refused")
        return object()

    judge = DelegationJudge(authorize, ["a@other.jp", "b@x.jp", "c@x.jp"])
    assert not judge.about_everyone("a@other.jp")  # b's token was issued: a alone
    assert asked == ["b@x.jp"]
    assert not judge.about_everyone("c@x.jp")  # decided once; no more probes
    assert asked == ["b@x.jp"]

    granted_for.clear()
    judge = DelegationJudge(authorize, ["a@x.jp", "b@x.jp", "c@x.jp", "d@x.jp"])
    assert judge.about_everyone("a@x.jp")
    assert asked[1:] == ["b@x.jp", "c@x.jp"]  # two others asked, both refused
    judge = DelegationJudge(authorize, ["a@x.jp"])
    assert judge.about_everyone("a@x.jp")  # nobody else to ask: as before, the run stops

    judge = DelegationJudge(authorize, ["a@x.jp", "b@x.jp"])
    judge.granted()
    assert not judge.about_everyone("a@x.jp")

    err = DelegationError("long text")
    err.details = "unauthorized_client: Client is unauthorized"
    text = str(for_one_user("a@other.jp", err))
    assert "a@other.jp" in text
    assert "unauthorized_client" in text
    assert "users file" in text


def test_a_shard_whose_only_user_is_refused_asks_the_other_shards_users(tmp_path):
    from gimport.admin.run import AdminRun
    from gimport.admin.users import UserEntry

    settings = load_settings(_config(tmp_path, "[admin]\nparallel_users = 2\n"), admin=True)
    stray = UserEntry(2, "x", "x@other.jp", password="pw")
    asked = []

    def authorize(email):
        asked.append(email)
        if email == stray.gmail:
            raise DelegationError("Google refuses to let the service account act for users")
        return object()

    run = AdminRun(settings, [stray], authorize=authorize, everybody=[stray.gmail, "a@x.jp", "b@x.jp"])
    summary = run.run()
    assert summary.fatal is None  # a@x.jp's token was issued: the refusal is about x@other.jp alone
    assert asked == ["x@other.jp", "a@x.jp"]
    (row,) = summary.rows
    assert row.outcome == "failed"
    assert "users file" in row.error


def test_a_stop_keeps_the_outcome_of_users_an_earlier_run_left_complete(tmp_path):
    from gimport import wiring
    from gimport.admin.paths import user_paths
    from gimport.admin.report import META_FINISHED, META_OUTCOME, read_row
    from gimport.admin.run import AdminRun
    from gimport.admin.users import UserEntry

    settings = load_settings(_config(tmp_path, "[admin]\nparallel_users = 1\n"), admin=True)
    settings.admin.state_dir.mkdir(parents=True)
    done, never = UserEntry(2, "d", "d@x.jp", password="pw"), UserEntry(3, "n", "n@x.jp", password="pw")
    state = wiring.state(user_paths(settings.admin.state_dir, done.gmail).state)
    state.set_meta(META_OUTCOME, "complete")
    state.set_meta(META_FINISHED, "1700000000")
    try:
        # a run stopped before it started anybody: the complete user stays complete in its report
        run = AdminRun(settings, [done, never], authorize=lambda e: object())
        run.request_stop()
        summary = run.run()
        assert [r.outcome for r in summary.rows] == ["complete", "not run"]
        # a run that started the user and was stopped before it found anything: its state is put back
        previous = {k: state.get_meta(k) or "" for k in ("admin.outcome", "admin.finished")}
        state.set_meta(META_OUTCOME, "interrupted")
        assert restore_complete(state, done.gmail, done.source_user, previous)
        assert state.get_meta(META_OUTCOME) == "complete"
        assert state.get_meta(META_FINISHED) == "1700000000"
        state.set_meta(META_OUTCOME, "failed")
        assert not restore_complete(
            state, done.gmail, done.source_user, {**previous, "admin.outcome": "failed"}
        )  # not complete before
    finally:
        state.close()
    assert read_row(settings.admin.state_dir, done.gmail).outcome == "failed"
