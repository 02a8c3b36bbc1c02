"""Sharding: which users this process takes. A user belongs to exactly one shard: by a stable hash of the
Gmail address, or by the [admin] shard_map file when there is one (`gimport admin plan --write-shards`).
The shard itself comes from --shard I/N, GIMPORT_SHARD, a Kubernetes Indexed Job or a Slurm job array."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from gimport.errors import ConfigError
from gimport.i18n import _


class _HasGmail(Protocol):
    @property
    def gmail(self) -> str: ...  # read-only, so that a frozen dataclass (UserEntry) has one too


T = TypeVar("T", bound=_HasGmail)

SHARD_ENV = "GIMPORT_SHARD"  # "I/N"
SHARD_COUNT_ENV = "GIMPORT_SHARD_COUNT"  # with JOB_COMPLETION_INDEX (Kubernetes exports no count)


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1
    origin: str = "no sharding"
    # from [admin] shard_map: lower-cased address -> index; users it does not name go by the hash
    assignment: Mapping[str, int] | None = field(default=None, compare=False, repr=False)

    def takes(self, gmail: str) -> bool:
        if self.assignment is not None:
            index = self.assignment.get(gmail.strip().lower())
            if index is not None:
                return index == self.index
        return shard_of(gmail, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(gmail: str, count: int) -> int:
    """The shard (0..count-1) of a Gmail address: sha256 of the lower-cased address, modulo count. Stable
    across runs, machines and Python versions."""
    digest = hashlib.sha256(gmail.strip().lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str, origin: str, count: int | None = None) -> Shard:
    """A Shard from "I/N" (or "I" alone when `count` is given). With `count` (the fixed shard count, [admin]
    shard_count or GIMPORT_SHARD_COUNT) an N that differs is an error. Raises ConfigError."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:/\s*(\d+)\s*)?", text)
    if not m or (m.group(2) is None and count is None):
        raise ConfigError(
            _("{origin}: {text} is not a shard like 0/4 (index/count, the index counted from 0)").format(
                origin=origin, text=repr(text)
            )
        )
    index = int(m.group(1))
    given = int(m.group(2)) if m.group(2) is not None else count
    assert given is not None  # "I" alone was refused above unless `count` is given
    if count is not None and given != count:
        raise ConfigError(
            _(
                "{origin}: shard {index}/{given}, but the shard count is fixed at {count} ([admin] shard_count or"
                " {env}): use {index}/{count}, or change the shard count everywhere at once"
            ).format(origin=origin, index=index, given=given, count=count, env=SHARD_COUNT_ENV)
        )
    if given < 1 or index >= given:
        raise ConfigError(
            _("{origin}: shard {index}/{given}: the index must be 0..{last}").format(
                origin=origin, index=index, given=given, last=max(given - 1, 0)
            )
        )
    return Shard(index, given, origin)


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not re.fullmatch(r"-?\d+", value):
        raise ConfigError(
            _("the environment variable {name}={value} is not a whole number").format(name=name, value=repr(value))
        )
    return int(value)


def _fixed_count(env: Mapping[str, str], configured: int | None) -> int | None:
    """The shard count fixed by [admin] shard_count and/or GIMPORT_SHARD_COUNT (they must agree), or None."""
    from_env = _env_int(env, SHARD_COUNT_ENV)
    if from_env is not None and from_env < 1:
        raise ConfigError(
            _("{env}={value}: the shard count must be at least 1").format(env=SHARD_COUNT_ENV, value=from_env)
        )
    if configured and from_env is not None and from_env != configured:
        raise ConfigError(
            _(
                "[admin] shard_count is {configured} but {env} is {value}: set them to the same number"
                " (or only one of them)"
            ).format(configured=configured, env=SHARD_COUNT_ENV, value=from_env)
        )
    return configured or from_env


def resolve_shard(arg: str | None, env: Mapping[str, str] | None = None, count: int | None = None) -> Shard:
    """This process's shard. `count` is [admin] shard_count (None or 0: not set).

    The shard count N is fixed by `count` or GIMPORT_SHARD_COUNT (both: they must agree). The shard is, in
    this order: --shard I/N (checked against `count` only: it overrides the environment); GIMPORT_SHARD=I/N (or I with a fixed N); a Kubernetes Indexed Job
    (JOB_COMPLETION_INDEX / the fixed N); a Slurm job array — with a fixed N the index is SLURM_ARRAY_TASK_ID
    itself, so a resubmitted subset (sbatch --array=5) keeps shard 5 of N; without one N is derived from the
    array (SLURM_ARRAY_TASK_COUNT, _MIN, _MAX, _STEP), and a one-task array other than task 0 (which looks like
    a resubmission) is refused; else 0/1 (every user, the whole project budget; also with a fixed N). An
    explicit N that differs from the fixed one is an error. Raises ConfigError."""
    env = os.environ if env is None else env
    if arg:  # the command line overrides the environment, not the config
        return parse_shard(arg, "--shard", count or None)
    fixed = _fixed_count(env, count)
    if env.get(SHARD_ENV, "").strip():
        return parse_shard(env[SHARD_ENV], SHARD_ENV, fixed)
    k8s_index = _env_int(env, "JOB_COMPLETION_INDEX")
    if k8s_index is not None:
        if fixed is None:
            raise ConfigError(
                _(
                    "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but {env} is not: set it in"
                    " the Job's env to the same number as spec.completions (Kubernetes does not export it), or set"
                    " [admin] shard_count"
                ).format(env=SHARD_COUNT_ENV)
            )
        return parse_shard(
            f"{k8s_index}/{fixed}",
            _("Kubernetes Indexed Job, index {index} of {count}").format(index=k8s_index, count=fixed),
        )
    task = _env_int(env, "SLURM_ARRAY_TASK_ID")
    if task is not None and fixed is not None:
        if not 0 <= task < fixed:
            raise ConfigError(
                _(
                    "Slurm array task {task}, but the shard count is {count}: with [admin] shard_count the array"
                    " indices are the shards themselves, 0..{last} (sbatch --array=0-{last})"
                ).format(task=task, count=fixed, last=fixed - 1)
            )
        return parse_shard(f"{task}/{fixed}", _("Slurm array task {task} of {count}").format(task=task, count=fixed))
    if task is not None:
        count_env = _env_int(env, "SLURM_ARRAY_TASK_COUNT")
        low = _env_int(env, "SLURM_ARRAY_TASK_MIN")
        step = _env_int(env, "SLURM_ARRAY_TASK_STEP") or 1
        high = _env_int(env, "SLURM_ARRAY_TASK_MAX")
        if count_env is None or low is None:
            raise ConfigError(
                _(
                    "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT/SLURM_ARRAY_TASK_MIN are not: pass --shard I/N"
                )
            )
        if count_env == 1 and task != 0:
            raise ConfigError(
                _(
                    "Slurm array task {task} is the only task of its array: a resubmission of one task"
                    " (sbatch --array={task}) would otherwise become shard 0/1 and take every user. Set [admin]"
                    " shard_count (or {env}) to the number of shards of the original array"
                ).format(task=task, env=SHARD_COUNT_ENV)
            )
        regular = (task - low) % step == 0 and (high is None or (high - low) // step + 1 == count_env)
        if not regular or step < 1:
            raise ConfigError(
                _(
                    "the Slurm array (tasks {low}..{high}, step {step}, {count} tasks) is not a regular range such"
                    " as --array=0-7 or --array=1-16:3: set [admin] shard_count, or pass --shard I/N yourself"
                ).format(low=low, high=high, step=step, count=count_env)
            )
        return parse_shard(f"{(task - low) // step}/{count_env}", _("Slurm job array (SLURM_ARRAY_TASK_*)"))
    if fixed is not None and fixed > 1:
        # a login node or a debug pod: every user, which is not "no sharding" on a campus of N shards
        return Shard(0, 1, _("every user: no shard given, of {count} shards").format(count=fixed))
    return Shard()


def shard_for(arg: str | None, count: int | None, *, from_env: bool = True, shard_map: Path | None = None) -> Shard:
    """This process's shard for a command: resolve_shard, or (from_env=False: `admin status`, which reads
    files only) an explicit --shard alone, never the job environment, else every user.

    With a shard map ([admin] shard_map) its N fixes the shard count like [admin] shard_count (both: they
    must agree), and the map decides the users of each index. Raises ConfigError."""
    assignment = load_shard_map(shard_map) if shard_map is not None else None
    if assignment is not None:
        if count and count != assignment.count:
            raise ConfigError(
                _(
                    "[admin] shard_count is {count} but [admin] shard_map {shard_map} was written for"
                    " {written} shards: write it again with 'gimport admin plan --write-shards {count}',"
                    " or set the same number in both"
                ).format(count=count, shard_map=shard_map, written=assignment.count)
            )
        count = assignment.count
    if from_env:
        shard = resolve_shard(arg, count=count)
    else:
        shard = resolve_shard(arg, {}, count=count) if arg else Shard()
    if assignment is None or (shard.count == 1 and assignment.count != 1):
        return shard  # no map, or no sharding at all: every user, whatever the map says
    if shard.count != assignment.count:  # pragma: no cover - parse_shard already refuses another N
        raise ConfigError(
            _("shard {shard}, but [admin] shard_map {shard_map} has {count} shards").format(
                shard=shard, shard_map=shard_map, count=assignment.count
            )
        )
    return dataclasses.replace(shard, assignment=assignment.users)


# ------------------------------------------------------------------------------------------- the shard map

SHARD_MAP_FORMAT = "gimport-shard-map 1"


@dataclass(frozen=True)
class ShardMap:
    count: int
    users: dict[str, int]  # lower-cased Gmail address -> shard index
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # lower-cased address -> (messages, bytes)


def size_weights(sizes: Mapping[str, tuple[int, int]]) -> dict[str, float]:
    """One weight per user from (messages, bytes): each as a share of the campus's total, added, so a shard
    of many small messages and one of a few large ones both count (IMAP and Gmail work per message, the
    network and the CPU per byte)."""
    messages = sum(m for m, _b in sizes.values()) or 1
    size = sum(b for _m, b in sizes.values()) or 1
    return {g: m / messages + b / size for g, (m, b) in sizes.items()}


def balance(weights: Mapping[str, float], count: int) -> list[list[str]]:
    """Users split into `count` shards by weight, largest first, each to the lightest shard so far (ties: the
    lower index; longest-processing-time first): the shards finish close together. Deterministic."""
    if count < 1:
        raise ConfigError(_("--write-shards {n}: the number of shards must be at least 1").format(n=count))
    shards: list[list[str]] = [[] for _ in range(count)]
    loads = [0.0] * count
    for gmail in sorted(weights, key=lambda g: (-weights[g], g.lower())):
        i = min(range(count), key=lambda k: (loads[k], k))
        shards[i].append(gmail)
        loads[i] += weights[gmail]
    return shards


def write_shard_map(path: Path, sizes: Mapping[str, tuple[int, int]], count: int) -> list[list[str]]:
    """Write a shard map for `count` shards to `path` (atomically), balanced by each user's (messages, bytes)
    to import; the sizes are kept in it, so a re-shard balances again without reading the old server.
    Returns the shards' users. Raises ConfigError when the file cannot be written."""
    shards = balance(size_weights(sizes), count)
    doc = {
        "format": SHARD_MAP_FORMAT,
        "shard_count": count,
        "written": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "balanced_by": "messages and bytes to import (each as a share of the total), largest first",
        "shards": [
            {
                "index": i,
                "messages": sum(sizes[g][0] for g in users),
                "bytes": sum(sizes[g][1] for g in users),
                "users": users,
                "sizes": {g: list(sizes[g]) for g in users},
            }
            for i, users in enumerate(shards)
        ],
    }
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(
            _("cannot write the shard map {path}: {reason} ([admin] shard_map)").format(path=path, reason=exc.strerror)
        ) from None
    return shards


def load_shard_map(path: Path) -> ShardMap:
    """Read a shard map written by write_shard_map. Raises ConfigError naming the file and what is wrong."""
    where = _("[admin] shard_map {path}").format(path=path)
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            _("{where} not found: write it with 'gimport admin plan --write-shards N'").format(where=where)
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(_("{where} cannot be read: {error}").format(where=where, error=exc)) from None
    if not isinstance(doc, dict) or doc.get("format") != SHARD_MAP_FORMAT:
        raise ConfigError(
            _("{where} is not a shard map written by 'gimport admin plan --write-shards N'").format(where=where)
        )
    count = doc.get("shard_count")
    shards = doc.get("shards")
    if not isinstance(count, int) or count < 1 or not isinstance(shards, list):
        raise ConfigError(_("{where}: shard_count and shards are missing or wrong").format(where=where))
    users: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for entry in shards:
        index = entry.get("index") if isinstance(entry, dict) else None
        if not isinstance(index, int) or not 0 <= index < count or not isinstance(entry.get("users"), list):
            raise ConfigError(
                _("{where}: a shard entry is not {{index 0..{last}, users [...]}}").format(where=where, last=count - 1)
            )
        for gmail in entry["users"]:
            key = str(gmail).strip().lower()
            if key in users:
                raise ConfigError(
                    _("{where}: {gmail} is in shards {first} and {index}").format(
                        where=where, gmail=gmail, first=users[key], index=index
                    )
                )
            users[key] = index
        for gmail, size in (entry.get("sizes") or {}).items():
            if isinstance(size, list) and len(size) == 2 and all(isinstance(n, int) for n in size):
                sizes[str(gmail).strip().lower()] = (size[0], size[1])
    return ShardMap(count, users, sizes)


def users_of(shard: Shard, users: list[T]) -> list[T]:
    """The users (anything with a .gmail) this shard takes, in the users file's order."""
    return [u for u in users if shard.takes(u.gmail)]


def sharded_report_path(path: Path, shard: Shard) -> Path:
    """report.csv -> report-shard-2-of-8.csv when sharded, so that shards sharing a volume keep their own."""
    if shard.count == 1:
        return path
    return path.with_name(f"{path.stem}-shard-{shard.index}-of-{shard.count}{path.suffix}")
