"""The test tiers (conftest.py): `pytest -m quick` holds no end-to-end test, every SLURM test is an
end-to-end test, and the end-of-session host check runs only after the whole e2e tier."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import E2E_NARROWED, ROOT, runs_the_whole_e2e_tier


def test_the_quick_tier_holds_no_e2e_test_and_every_slurm_test_is_e2e():
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-m", "(quick and e2e) or (slurm and not e2e) or not (quick or e2e)"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, proc.stdout[-3000:] + proc.stderr[-1000:]


class Item:
    def __init__(self, *marks: str):
        self.marks = marks

    def get_closest_marker(self, name):
        return name if name in self.marks else None


def session(args: list[str], items: list[Item], narrowed: bool = False, cwd=ROOT) -> SimpleNamespace:
    stash = {E2E_NARROWED: True} if narrowed else {}
    config = SimpleNamespace(stash=stash, args=args, invocation_params=SimpleNamespace(dir=cwd))
    return SimpleNamespace(config=config, items=items)


@pytest.mark.parametrize("args,items,narrowed,whole", [
    (["tests"], [Item("quick"), Item("e2e")], False, True),                 # pytest, .ci/run
    ([str(ROOT)], [Item("e2e"), Item("e2e", "slurm")], False, True),         # pytest -m e2e from elsewhere
    (["tests"], [Item("quick")], True, False),                              # pytest -m quick
    (["tests"], [Item("e2e")], True, False),                                # pytest -k one_e2e_test
    (["tests/test_kvm_e2e.py"], [Item("e2e")], False, False),               # one file
    (["tests/test_kvm_e2e.py::test_provision_is_cached"], [Item("e2e")], False, False),
])
def test_the_host_check_runs_only_after_the_whole_e2e_tier(args, items, narrowed, whole):
    assert runs_the_whole_e2e_tier(session(args, items, narrowed)) is whole
