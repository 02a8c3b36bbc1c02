"""A ready-to-run gimport workspace on the rig: config, password file and token for a Dovecot user and
the Gmail emulator. Used by the integration tests, scripts/demo and scripts/bench (not by the product)."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from gimport.backends.google.oauth import SCOPES, write_private

API_URL_ENV = "GIMPORT_GMAIL_API_URL"
EMAIL = "student@example.ac.jp"  # the Gmail account of the tests' workspaces


@dataclass(frozen=True)
class Workspace:
    dir: Path
    config: Path
    state: Path
    log: Path
    api_url: str

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env[API_URL_ENV] = self.api_url
        env.pop("REQUESTS_CA_BUNDLE", None)
        return env


def make_workspace(
    directory: Path,
    *,
    server,
    user: str,
    emulator,
    email: str,
    tls: bool = True,
    quota_units_per_minute: int | None = None,
    workers: int | None = None,
    extra_toml: str = "",
    scopes: tuple[str, ...] = SCOPES,
) -> Workspace:
    """Write gimport.toml (+ password file and token file, both 0600) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_private(directory / "imap-password.txt", server.password(user) + "\n")
    if email not in getattr(emulator, "users", {}):
        with contextlib.suppress(ValueError):  # exists already
            emulator.add_user(email)
    write_private(directory / "token.json", json.dumps(emulator.authorized_user_info(email, list(scopes))))
    write_private(directory / "credentials.json", json.dumps(emulator.client_config()))
    if tls:
        source = f'host = "localhost"\nport = {server.tls_port}\nsecurity = "ssl"\nca_file = "{server.ca_file}"\n'
    else:
        source = f'host = "127.0.0.1"\nport = {server.plain_port}\nsecurity = "plain"\n'
    # the emulator is unlimited unless told otherwise: let the pacer be too
    gmail = f"quota_units_per_minute = {quota_units_per_minute or 100_000_000}\n"
    if workers:
        gmail += f"workers = {workers}\n"
    text = (
        f'[source]\n{source}user = "{user}"\npassword_file = "imap-password.txt"\n\n'
        f'[gmail]\nclient_secrets = "credentials.json"\ntoken_file = "token.json"\n{gmail}\n'
        f'[state]\npath = "gimport-state.sqlite"\nlog_file = "gimport.log"\n\n{extra_toml}'
    )
    config = directory / "gimport.toml"
    config.write_text(text, encoding="utf-8")
    return Workspace(
        directory, config, directory / "gimport-state.sqlite", directory / "gimport.log", emulator.base_url
    )


def make_local_workspace(
    directory: Path,
    *,
    kind: str,
    path: Path,
    emulator,
    email: str = EMAIL,
    workers: int | None = None,
    extra_toml: str = "",
) -> Workspace:
    """gimport.toml (+ token) for a local source ([source] type = `kind`, path = `path`) -> `email`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if email not in getattr(emulator, "users", {}):
        with contextlib.suppress(ValueError):
            emulator.add_user(email)
    write_private(directory / "token.json", json.dumps(emulator.authorized_user_info(email, list(SCOPES))))
    write_private(directory / "credentials.json", json.dumps(emulator.client_config()))
    gmail = "quota_units_per_minute = 100000000\n" + (f"workers = {workers}\n" if workers else "")
    text = (
        f'[source]\ntype = "{kind}"\npath = {json.dumps(str(path))}\n\n'
        f'[gmail]\nclient_secrets = "credentials.json"\ntoken_file = "token.json"\n{gmail}\n'
        f'[state]\npath = "gimport-state.sqlite"\nlog_file = "gimport.log"\n\n{extra_toml}'
    )
    config = directory / "gimport.toml"
    config.write_text(text, encoding="utf-8")
    return Workspace(
        directory, config, directory / "gimport-state.sqlite", directory / "gimport.log", emulator.base_url
    )
