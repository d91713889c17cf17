"""linpack (HPL via hpcc): parser on real captured output, hpccinf.txt and command builder."""

import json
from pathlib import Path

import pytest

from isobench.errors import ParseError
from isobench.workloads import KINDS
from isobench.workloads.hpcc import grid, hpccinf
from isobench.workloads.linpack import Linpack

FIX = Path(__file__).parent / "fixtures" / "linpack"
PARAMS = json.loads((FIX / "params.json").read_text())
GOOD = sorted(FIX.glob("*-iter-*.out"))
FAILED = sorted(FIX.glob("*-failed*.out"))


def test_registered_with_declared_params():
    assert KINDS["linpack"] is Linpack
    for key, spec in Linpack.PARAMS.items():
        assert "default" in spec and spec.get("description"), key
    assert PARAMS == {k: v["default"] for k, v in Linpack.PARAMS.items()}


def test_fixtures_come_from_native_and_lxc():
    names = {p.name.split("-iter-")[0] for p in GOOD}
    assert {"native", "lxc-bridge"} <= names


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_parses_real_output(path):
    samples = Linpack.parse(path.read_text(), PARAMS)
    assert [s.metric for s in samples] == ["gflops"]
    for s in samples:
        assert s.metric in Linpack.METRICS and s.point == ""
        # reference BLAS on two cores: a few GFLOPS, never zero, never absurd
        assert 0.5 < s.value < 500


def test_gflops_is_the_hpl_result_line():
    raw = (FIX / "native-iter-01.out").read_text()
    line = next(l for l in raw.splitlines() if l.startswith("WR"))
    assert Linpack.parse(raw, PARAMS)[0].value == pytest.approx(float(line.split()[-1]))


@pytest.mark.parametrize("path", FAILED, ids=lambda p: p.name)
def test_failed_output_raises(path):
    with pytest.raises(ParseError):
        Linpack.parse(path.read_text(), PARAMS)


@pytest.mark.parametrize("frac", [0.05, 0.5, 0.9, 0.97, 0.999])
def test_truncated_output_raises(frac):
    raw = GOOD[0].read_text()
    with pytest.raises(ParseError):
        Linpack.parse(raw[: int(len(raw) * frac)], PARAMS)


@pytest.mark.parametrize("raw", ["", "garbage\n", "isobench-hpcc exit=0 stopped=0 ms=1 end\n",
                                 (FIX.parent / "randomaccess" / "native-iter-01.out").read_text()])
def test_garbage_raises(raw):
    with pytest.raises(ParseError):
        Linpack.parse(raw, PARAMS)


def test_residual_failure_raises():
    raw = GOOD[0].read_text().replace("1 tests completed and passed residual checks",
                                      "0 tests completed and passed residual checks")
    raw = raw.replace("0 tests completed and failed residual checks", "1 tests completed and failed residual checks")
    with pytest.raises(ParseError, match="residual"):
        Linpack.parse(raw, PARAMS)


def test_other_problem_size_than_configured_raises():
    with pytest.raises(ParseError, match="not the configured"):
        Linpack.parse(GOOD[0].read_text(), {**PARAMS, "n": 4096})


def test_nonzero_exit_raises():
    raw = GOOD[0].read_text().replace("isobench-hpcc exit=0 stopped=0", "isobench-hpcc exit=1 stopped=0")
    with pytest.raises(ParseError, match="exited with 1"):
        Linpack.parse(raw, PARAMS)


def test_grid_is_flat_and_exact():
    assert grid(1) == (1, 1)
    assert grid(2) == (1, 2)
    assert grid(4) == (2, 2)
    assert grid(6) == (2, 3)
    assert grid(7) == (1, 7)
    assert grid(32) == (4, 8)


def test_hpccinf_layout():
    lines = hpccinf([3000, 3000], 96, 2, 4).splitlines()
    # HPL.dat: fixed line positions; hpcc skips to line 33 for its own PTRANS lines
    assert lines[4].split()[0] == "2" and lines[5].split()[:2] == ["3000", "3000"]
    assert lines[7].split()[0] == "96"
    assert lines[10].split()[0] == "2" and lines[11].split()[0] == "4"
    assert lines[31].startswith("#####")
    assert len(lines) == 36


def test_command_runs_all_tests_under_mpirun():
    wl = Linpack("linpack", {**PARAMS, "n": 4000, "trials": 3})
    assert wl.sizes() == [4000, 4000, 4000]
    cmd = wl.command()
    assert "mpirun -np 2 --bind-to core hpcc" in cmd
    assert "OMPI_MCA_btl=self,vader" in cmd and "timeout -k 10 900" in cmd
    assert "kill $pid" not in cmd  # HPL is hpcc's last test: never stopped early
    assert cmd.startswith("exec 2>&1; cd /data/hpcc-linpack")
