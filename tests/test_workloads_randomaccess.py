"""randomaccess (HPCC RandomAccess): parser on real captured output, early stop, table sizes."""

import json
import re
from pathlib import Path

import pytest

from isobench.errors import ParseError
from isobench.workloads import KINDS
from isobench.workloads.randomaccess import RandomAccess

FIX = Path(__file__).parent / "fixtures" / "randomaccess"
PARAMS = json.loads((FIX / "params.json").read_text())
GOOD = sorted(FIX.glob("*-iter-*.out"))
FAILED = sorted(FIX.glob("*-failed*.out"))


def test_registered_with_declared_params():
    assert KINDS["randomaccess"] is RandomAccess
    for key, spec in RandomAccess.PARAMS.items():
        assert "default" in spec and spec.get("description"), key
    assert PARAMS == {k: v["default"] for k, v in RandomAccess.PARAMS.items()}


def test_fixtures_come_from_native_and_lxc():
    names = {p.name.split("-iter-")[0] for p in GOOD}
    assert {"native", "lxc-bridge"} <= names


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_parses_real_output(path):
    raw = path.read_text()
    samples = {s.metric: s for s in RandomAccess.parse(raw, PARAMS)}
    assert set(samples) == set(RandomAccess.METRICS) == {"gups", "gups_single", "gups_mpi"}
    for s in samples.values():
        assert s.point == "" and 1e-4 < s.value < 10
    # the system rate is the StarRandomAccess average times the processes
    avg = float(re.search(r"^Average GUP/s ([\d.]+)$", raw, re.M)[1])
    assert samples["gups"].value == pytest.approx(avg * PARAMS["processes"])
    # the run was stopped after the last section read (the LCG variants and the rest never ran)
    assert "stopped=1" in raw and "Begin of PTRANS section" not in raw


@pytest.mark.parametrize("path", FAILED, ids=lambda p: p.name)
def test_failed_output_raises(path):
    with pytest.raises(ParseError):
        RandomAccess.parse(path.read_text(), PARAMS)


@pytest.mark.parametrize("frac", [0.05, 0.3, 0.6, 0.9, 0.999])
def test_truncated_output_raises(frac):
    raw = GOOD[0].read_text()
    with pytest.raises(ParseError):
        RandomAccess.parse(raw[: int(len(raw) * frac)], PARAMS)


@pytest.mark.parametrize("raw", ["", "random\naccess\n", (FIX.parent / "stream" / "native-iter-01.out").read_text()])
def test_garbage_raises(raw):
    with pytest.raises(ParseError):
        RandomAccess.parse(raw, PARAMS)


def test_failed_verification_raises():
    raw = GOOD[0].read_text().replace("Node(s) with error 0\nMinimum", "Node(s) with error 1\nMinimum")
    with pytest.raises(ParseError, match="verification"):
        RandomAccess.parse(raw, PARAMS)


def test_table_size_must_follow_n():
    # N=2900 on 2 processes: 2900^2/2 = 4205000 words -> 2^22 per process
    assert "Main table size   = 2^22" in GOOD[0].read_text()
    with pytest.raises(ParseError, match="expected 2\\^23"):
        RandomAccess.parse(GOOD[0].read_text(), {**PARAMS, "n": 4096})


def test_command_stops_after_single_randomaccess():
    wl = RandomAccess("randomaccess", PARAMS)
    assert wl.sizes() == [2900]
    cmd = wl.command()
    assert "grep -q '^End of SingleRandomAccess section' hpccoutf.txt" in cmd
    assert "stopped=1; kill $pid" in cmd and "cd /data/hpcc-randomaccess" in cmd
