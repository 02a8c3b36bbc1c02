"""The version is written once, in pyproject.toml, and read from the installed package's metadata."""

import tomllib
from pathlib import Path

import pytest

import gimport
from gimport.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_pyprojects():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    assert gimport.__version__ == declared


def test_gimport_version_prints_it(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gimport {gimport.__version__}"
