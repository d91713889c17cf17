"""The tree stays clean for the project's linters and formatters (run by CI with the suite):
ruff (pyproject.toml), snakefmt --check on the rules, and Snakemake's own linter."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    proc = run(str(BIN / "ruff"), "check", "--output-format", "concise", ".")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]


def test_rules_are_snakefmt_formatted():
    proc = run(str(BIN / "snakefmt"), "--check", ".")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]


@pytest.mark.parametrize("configfile", [None, "tests/configs/cluster_lint.yaml"])
def test_snakemake_lint_is_clean(configfile):
    extra = ["--configfile", configfile] if configfile else []
    proc = run(sys.executable, "-m", "snakemake", "--lint", "--cores", "1", *extra)
    assert proc.returncode == 0 and "Lints for" not in proc.stdout, proc.stdout[-3000:] + proc.stderr[-1000:]
