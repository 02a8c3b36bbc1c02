# Sourced by scripts/demo and scripts/bench: make sure .venv exists and has gimport installed.
# Needs Dovecot (Debian's dovecot-imapd) for the throwaway IMAP server; installs it as root when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${GIMPORT_VENV:-.venv}"
if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "needs Dovecot: run 'sudo apt-get install dovecot-imapd' first" >&2
        exit 2
    fi
    echo "installing dovecot-imapd with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd openssl >/dev/null
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "creating the virtualenv $venv" >&2
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import gimport" 2>/dev/null; then
    echo "installing gimport into $venv" >&2
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e .
PY="$venv/bin/python"
