"""A ready-to-run `gimport admin` workspace on the rig: a fake service-account key whose token_uri is the Gmail
emulator's, a users file, per-user password files and a config. Used by tests/test_admin.py and scripts/bench
(not by the product)."""

from __future__ import annotations

import csv
import functools
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from gimport.backends.google.oauth import write_private


@functools.cache
def _private_key_pem() -> str:
    """A fresh RSA key (one per process: generating one takes ~0.1 s). The emulator does not check the
    signature, but google-auth signs the assertion with it, so it must be a real key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def write_service_account(path: Path, token_uri: str) -> dict:
    """Write a service-account key file in the Cloud console's format, pointing at `token_uri`."""
    info = {
        "type": "service_account",
        "project_id": "gimport-test",
        "private_key_id": secrets.token_hex(20),
        "private_key": _private_key_pem(),
        "client_email": "gimport-admin@gimport-test.iam.gserviceaccount.com",
        "client_id": "1" + "".join(secrets.choice("0123456789") for _ in range(20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }
    write_private(Path(path), json.dumps(info, indent=2))
    return info


@dataclass(frozen=True)
class Person:
    """One line of the users file."""

    source_user: str
    gmail: str
    password: str | None = None  # written to a per-user password file unless inline
    inline: bool = False  # put the password in the CSV itself
    master: bool = False  # no password: log in as the master user


@dataclass(frozen=True)
class AdminWorkspace:
    dir: Path
    config: Path
    users_csv: Path
    state_dir: Path
    report: Path
    log: Path


def make_admin_workspace(
    directory: Path,
    *,
    server,
    emulator_url: str,
    people: list[Person],
    quota_units_per_minute: int = 100_000_000,
    workers: int = 4,
    parallel_users: int = 4,
    project_units_per_minute: int | None = None,
    master: tuple[str, str] | None = None,
    tls: bool = True,
    extra_admin: str = "",
) -> AdminWorkspace:
    """Write gimport.toml, users.csv, sa.json and password files into `directory`."""
    directory = Path(directory)
    (directory / "passwords").mkdir(parents=True, exist_ok=True)
    write_service_account(directory / "sa.json", emulator_url.rstrip("/") + "/token")
    rows = []
    for p in people:
        password, password_file = "", ""
        if p.inline:
            password = p.password or ""
        elif not p.master:
            password_file = f"passwords/{p.source_user}.txt"
            write_private(directory / password_file, (p.password or "") + "\n")
        rows.append([p.source_user, p.gmail, password, password_file])
    with open(directory / "users.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["source_user", "gmail_address", "password", "password_file"])
        w.writerows(rows)
    (directory / "users.csv").chmod(0o600)
    if tls:
        source = f'host = "localhost"\nport = {server.tls_port}\nsecurity = "ssl"\nca_file = "{server.ca_file}"\n'
    else:
        source = f'host = "127.0.0.1"\nport = {server.plain_port}\nsecurity = "plain"\n'
    admin = (
        'service_account_file = "sa.json"\nusers_file = "users.csv"\nstate_dir = "state"\nreport_file = "report.csv"\n'
        f"parallel_users = {parallel_users}\n"
    )
    if project_units_per_minute:
        admin += f"project_units_per_minute = {project_units_per_minute}\n"
    if master:
        write_private(directory / "master-password.txt", master[1] + "\n")
        admin += f'master_user = "{master[0]}"\nmaster_password_file = "master-password.txt"\n'
    text = (
        f"[source]\n{source}\n"
        f"[gmail]\nquota_units_per_minute = {quota_units_per_minute}\nworkers = {workers}\n\n"
        f'[state]\nlog_file = "admin.log"\n\n'
        f"[admin]\n{admin}{extra_admin}"
    )
    config = directory / "gimport.toml"
    config.write_text(text, encoding="utf-8")
    return AdminWorkspace(
        directory,
        config,
        directory / "users.csv",
        directory / "state",
        directory / "report.csv",
        directory / "admin.log",
    )
