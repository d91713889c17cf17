"""hpcc (linpack, randomaccess) in real LXC containers named the way the pipeline names them.

Regression: environment names hold underscores (``lxc_volume``), and the container's host name
used to be its instance name; Open MPI's mpirun refuses such a host name and aborts with
"An internal error has occurred in ORTE", so every hpcc cell failed in every LXC variant of the
default matrix. The container now shows an RFC 1123 host name."""

from __future__ import annotations

import pytest
import yaml

from isobench import config as configmod
from isobench.cell import run_cell
from isobench.collect import cell_rows
from isobench.drivers.base import hostname_for
from isobench.hostinfo import fingerprint
from isobench.image import ensure_rootfs
from isobench.measure import Measure

from conftest import ROOT, variant


@pytest.mark.parametrize("name, want", [
    ("isobench-lxc_volume-linpack-1", "isobench-lxc-volume-linpack-1"),
    ("isobench-kvm_tuned-warmup", "isobench-kvm-tuned-warmup"),
    ("A_b" + "x" * 80, ("a-b" + "x" * 80)[:63]),
    ("__", "isobench"),
])
def test_hostname_for_gives_rfc1123_labels(name, want):
    assert hostname_for(name) == want


@pytest.mark.e2e
@pytest.mark.parametrize("workload, metric", [("linpack", "gflops"), ("randomaccess", "gups")])
def test_hpcc_runs_in_an_lxc_env_whose_name_has_an_underscore(tmp_path, workload, metric):
    raw = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    raw = variant(raw, limits={"cpus": 2, "memory_mib": 1024},
                  workloads__linpack__n=256, workloads__randomaccess__n=512)
    cfg = configmod.load(raw)
    image = ensure_rootfs(cfg.image_spec(), cfg.paths.images)
    out = tmp_path / "raw"
    run_cell(cfg.env_spec("lxc_bridge"), cfg.workload(workload), 1, Measure(1, 0), cfg.paths, image, fingerprint(),
             out)
    rows = cell_rows(out)
    values = [r["value"] for r in rows if r["metric"] == metric and not r["warmup"]]
    assert values and all(v > 0 for v in values), rows
    assert "ORTE" not in (out / "iter-01.out").read_text()
