"""The scripts in scripts/ still start: each imports what it uses from gimport and the rig (a renamed function
breaks them silently otherwise: nothing else runs them in the suite) and answers --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.parametrize("name", ["bench.py", "bench_hostile.py", "demo.py", "demo_local.py", "i18n.py"])
def test_the_script_starts(name):
    proc = subprocess.run([sys.executable, str(SCRIPTS / name), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()
