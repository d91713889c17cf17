"""randomaccess (HPCC RandomAccess): the system rate, the early stop and the table sizes. The
parser's contract (real captured output, failed, truncated and broken runs) is in
test_workload_contract.py."""

import re

import pytest

from isobench.workloads.randomaccess import RandomAccess

import captured

PARAMS = captured.params("randomaccess")


@pytest.mark.parametrize("path", captured.good("randomaccess"), ids=lambda p: p.name)
def test_gups_is_the_star_average_times_the_processes(path):
    raw = path.read_text()
    gups = {s.metric: s.value for s in RandomAccess.parse(raw, PARAMS)}["gups"]
    avg = float(re.search(r"^Average GUP/s ([\d.]+)$", raw, re.MULTILINE)[1])
    assert gups == pytest.approx(avg * PARAMS["processes"])
    # the run was stopped after the last section read (the LCG variants and the rest never ran)
    assert "stopped=1" in raw and "Begin of PTRANS section" not in raw
    # N=2900 on 2 processes: 2900^2/2 = 4205000 words -> 2^22 per process
    assert "Main table size   = 2^22" in raw


def test_command_stops_after_single_randomaccess():
    wl = RandomAccess("randomaccess", PARAMS)
    assert wl.sizes() == [2900]
    cmd = wl.command()
    assert "grep -q '^End of SingleRandomAccess section' hpccoutf.txt" in cmd
    assert "stopped=1; kill $pid" in cmd and "cd /data/hpcc-randomaccess" in cmd
