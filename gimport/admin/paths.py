"""Where one user's files live in admin mode: the state file, its log and its run lock under [admin]
state_dir. Pure: it names paths and creates nothing."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from gimport.files import lock_path


@dataclass(frozen=True)
class UserPaths:
    state: Path
    log: Path
    lock: Path


def user_paths(state_dir: Path, gmail: str) -> UserPaths:
    """Where one user's files live: <state_dir>/<address>.sqlite, .log and .sqlite.lock. The name is the
    lower-cased address when it is plain; otherwise a cleaned one plus a short hash, so two addresses can
    never share a file."""
    name = gmail.strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9._+@-]*", name) or ".." in name:
        clean = re.sub(r"[^a-z0-9._+@-]", "_", name).strip(".") or "user"
        name = f"{clean}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"
    base = Path(state_dir) / name
    state = base.with_name(name + ".sqlite")
    # the same lock as a plain `gimport run` on that state file takes
    return UserPaths(state, base.with_name(name + ".log"), lock_path(state))
