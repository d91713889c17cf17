"""linpack (HPL via hpcc): hpccinf.txt, the process grid and the command builder. The parser's
contract (real captured output, failed, truncated and broken runs) is in test_workload_contract.py."""

from isobench.workloads.hpcc import grid, hpccinf
from isobench.workloads.linpack import Linpack

import captured


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
    wl = Linpack("linpack", {**captured.params("linpack"), "n": 4000, "trials": 3})
    assert wl.sizes() == [4000, 4000, 4000]
    cmd = wl.command()
    assert "mpirun -np 2 --bind-to core hpcc" in cmd
    assert "OMPI_MCA_btl=self,vader" in cmd and "timeout -k 10 900" in cmd
    assert "kill $pid" not in cmd  # HPL is hpcc's last test: never stopped early
    assert cmd.startswith("exec 2>&1; cd /data/hpcc-linpack")
