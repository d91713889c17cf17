"""The cell and round runners (isobench.cell.run_cell, run_round) on the fake environment kind and a
tiny workload: what they write (one raw file per iteration, warm-ups flagged, cell.json last), the
interleaved and sequential orders, and that every instance and the host-side client are stopped on
every path, failures included. Real cells: test_kvm_e2e.py,
test_faults.py, test_pipeline_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isobench.cell import run_cell, run_round
from isobench.drivers.base import EnvSpec, Limits, StatePaths
from isobench.errors import BenchError, InstanceError, Unavailable
from isobench.measure import Measure
from isobench.order import block_order
from isobench.workloads.base import Context, Metric, Sample, Workload, run_shell

MEASURE = Measure(iterations=3, warmup_iterations=1)


class Tiny(Workload):
    """Counts its iterations in a file of the instance's data directory. Params: ``fail_at`` (raise
    in that iteration: ``error`` names the exception), ``client`` (start a host-side client too)."""

    kind = "tiny"
    CATEGORY = "cpu"
    METRICS = {"n": Metric("count", True, "the iteration's number")}
    VERSION_ARGV = ("/bin/echo", "tiny 1.0")

    def prepare(self, ctx: Context) -> None:
        ctx.inst.sh('echo 0 > "$DATA/count"').check("prepare")
        ctx.facts["prepared"] = True
        if self.params.get("client"):
            ctx.client().exec(["/bin/true"]).check("client")

    def run_iteration(self, ctx: Context) -> str:
        n = int(ctx.inst.sh('cat "$DATA/count"').stdout) + 1
        if n == self.params.get("fail_at"):
            raise {"instance": InstanceError, "other": RuntimeError}[self.params["error"]](f"failed at {n}")
        with ctx.point("half=1"):
            out = run_shell(ctx.inst, f'echo {n} > "$DATA/count"; echo n={n}', timeout=30)
        return out

    @classmethod
    def parse(cls, raw: str, params: dict) -> list[Sample]:
        return [Sample("n", float(raw.split("n=")[1]))]


@pytest.fixture
def cell(fake_driver, tmp_path):
    """Run one cell of the fake kind (driver options and workload params as given); return its dir."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "usr").mkdir(parents=True)

    def run(options: dict | None = None, measure: Measure = MEASURE, **params) -> Path:
        out = tmp_path / "raw" / "fake_env" / "tiny" / "round-2"
        spec = EnvSpec("fake_env", "fake", options or {}, Limits(2, 1024))
        run_cell(spec, Tiny("tiny", params), 2, measure, StatePaths(tmp_path / "state"),
                 {"rootfs": str(rootfs), "key": "img-1"}, {"name": "h1", "cpu_model": "x"}, out)
        return out
    return run


def files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def all_stopped(fake_driver) -> bool:
    return all(inst._stopped and not inst.base.exists() for inst in fake_driver.started)


def test_a_cell_writes_each_iteration_then_cell_json(cell, fake_driver):
    out = cell()
    assert files(out) == ["cell.json", "iter-01.warmup.out", "iter-02.out", "iter-03.out", "iter-04.out"]
    for i in range(1, 5):
        raw = next(out.glob(f"iter-{i:02d}*.out")).read_text()
        assert Tiny.parse(raw, {}) == [Sample("n", float(i))]      # iterations ran in order, kept unedited
    meta = json.loads((out / "cell.json").read_text())
    assert {k: meta[k] for k in ("env", "driver", "workload", "kind", "round", "tool_version", "image_key")} == {
        "env": "fake_env", "driver": "fake", "workload": "tiny", "kind": "tiny", "round": 2,
        "tool_version": "tiny 1.0", "image_key": "img-1"}
    assert meta["facts"] == {"prepared": True} and meta["labels"]["accel"] == "fake"
    assert meta["inside"]["nproc"] == 2 and meta["host"]["name"] == "h1" and meta["settings"]["driver"] == "fake"
    its = meta["iterations"]
    assert [(r["iteration"], r["warmup"], r["file"]) for r in its] == [
        (1, True, "iter-01.warmup.out"), (2, False, "iter-02.out"), (3, False, "iter-03.out"),
        (4, False, "iter-04.out")]
    assert all(r["points"][0]["point"] == "half=1" and "seconds" in r["host"] for r in its)
    assert meta["wall_seconds"] > 0 and set(meta["canary_s"]) == {"start", "end"}
    last = max((out / f).stat().st_mtime_ns for f in files(out) if f != "cell.json")
    assert (out / "cell.json").stat().st_mtime_ns >= last
    assert len(fake_driver.started) == 1 and all_stopped(fake_driver)


def test_no_warm_up_iterations_flags_none(cell):
    out = cell(measure=Measure(iterations=2, warmup_iterations=0))
    assert files(out) == ["cell.json", "iter-01.out", "iter-02.out"]
    assert not any(r["warmup"] for r in json.loads((out / "cell.json").read_text())["iterations"])


@pytest.mark.parametrize("error,raised", [("instance", BenchError), ("other", RuntimeError)])
def test_a_failing_iteration_leaves_no_cell_json_and_stops_everything(cell, fake_driver, tmp_path, error, raised):
    with pytest.raises(raised, match="failed at 3") as exc:
        cell(fail_at=3, error=error, client=True)
    if raised is BenchError:
        assert str(exc.value).startswith("cell fake_env/tiny/round-2: ")
    out = tmp_path / "raw" / "fake_env" / "tiny" / "round-2"
    assert files(out) == ["iter-01.warmup.out", "iter-02.out"]
    assert len(fake_driver.started) == 2 and all_stopped(fake_driver)       # the instance and the client


def test_an_instance_that_dies_mid_iteration_fails_the_cell_and_keeps_no_result(cell, fake_driver, tmp_path):
    with pytest.raises(BenchError, match="died during iteration 2"):
        cell({"die_on": "echo n=2"})          # iteration 2's command
    assert files(tmp_path / "raw" / "fake_env" / "tiny" / "round-2") == ["iter-01.warmup.out"]
    assert all_stopped(fake_driver)


def test_an_instance_that_does_not_start_fails_the_cell(cell, fake_driver, tmp_path):
    with pytest.raises(BenchError, match="cell fake_env/tiny/round-2: .*no such thing"):
        cell({"start_error": "no such thing"})
    assert files(tmp_path / "raw" / "fake_env" / "tiny" / "round-2") == [] and fake_driver.started == []


def test_an_unavailable_environment_starts_nothing(cell, fake_driver):
    with pytest.raises(Unavailable, match="fake_env is unavailable: gone"):
        cell({"available": False, "reason": "gone"})
    assert fake_driver.started == []



# -- a round: several environments, interleaved or one after another ---------------------------------

@pytest.fixture
def round_(fake_driver, tmp_path):
    """Run round 2 of the tiny workload on fake environments (name -> driver options); return the
    round's directory."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "usr").mkdir(parents=True)

    def run(envs: dict[str, dict], measure: Measure = MEASURE, **params) -> Path:
        out = tmp_path / "raw" / "tiny" / "round-2"
        specs = [EnvSpec(e, "fake", opts, Limits(2, 1024)) for e, opts in envs.items()]
        run_round(specs, Tiny("tiny", params), 2, measure, StatePaths(tmp_path / "state"),
                  {"rootfs": str(rootfs), "key": "img-1"}, {"name": "h1", "cpu_model": "x"}, out, seed=7)
        return out
    return run


def iterations(out: Path) -> list[tuple[str, dict]]:
    """Every iteration of every cell of a round, in the order they started."""
    its = [(d.name, r) for d in out.iterdir() if d.is_dir()
           for r in json.loads((d / "cell.json").read_text())["iterations"]]
    return sorted(its, key=lambda x: x[1]["started_at"])


ENVS = {"native": {}, "native_aa": {}, "lxc_host": {}}


def test_an_interleaved_round_warms_up_every_instance_then_runs_blocks_in_their_drawn_order(round_, fake_driver):
    out = round_(ENVS)
    seen = iterations(out)
    warm, measured = seen[:3], seen[3:]
    assert all(r["warmup"] for _, r in warm) and not any(r["warmup"] for _, r in measured)
    for b in range(1, 4):                               # block b: iteration b+1 of every env, in its order
        block = measured[(b - 1) * 3:b * 3]
        assert [e for e, _ in block] == block_order(list(ENVS), "tiny", 2, b, seed=7)
        assert {r["iteration"] for _, r in block} == {b + 1} and {r["block"] for _, r in block} == {b}
    metas = {e: json.loads((out / e / "cell.json").read_text()) for e in ENVS}
    assert {m["placement"]["mode"] for m in metas.values()} == {"interleaved"}
    assert len({json.dumps(m["canary_s"]) for m in metas.values()}) == 1      # one canary for the round
    rec = json.loads((out / "round.json").read_text())
    assert rec["mode"] == "interleaved" and sorted(rec["order"]) == sorted(ENVS)
    assert len(fake_driver.started) == 3 and all_stopped(fake_driver)
    for e in ENVS:                                      # each instance counted its own iterations
        assert [Tiny.parse((out / e / r["file"]).read_text(), {})[0].value for r in metas[e]["iterations"]] == [
            1.0, 2.0, 3.0, 4.0]


def test_a_sequential_round_runs_one_whole_cell_after_another(round_, fake_driver):
    out = round_(ENVS, measure=Measure(iterations=3, warmup_iterations=1, order="sequential"))
    seen = [e for e, _ in iterations(out)]
    rec = json.loads((out / "round.json").read_text())
    assert seen == [e for e in rec["order"] for _ in range(4)]
    assert rec["mode"] == "sequential" and all_stopped(fake_driver)


def test_an_emulated_or_memory_hungry_environment_runs_as_a_block_first(round_, fake_driver):
    out = round_({"native": {}, "lxc_host": {}, "kvm": {"emulated": True}, "big": {"held_mib": 10 ** 9}})
    placement = json.loads((out / "round.json").read_text())["placement"]
    assert placement["kvm"]["mode"] == "block" and "emulated" in placement["kvm"]["reason"]
    assert placement["big"]["mode"] == "block" and "MiB of host memory" in placement["big"]["reason"]
    assert placement["native"] == placement["lxc_host"]
    assert placement["native"]["mode"] == "interleaved" and set(placement["native"]["envs"]) == {"native", "lxc_host"}
    seen = [e for e, _ in iterations(out)]
    first_interleaved = min(seen.index("native"), seen.index("lxc_host"))
    assert {"kvm", "big"} == set(seen[:first_interleaved])        # the blocks ran first, whole
    assert all_stopped(fake_driver)


def test_a_failure_in_one_environment_fails_the_whole_round_and_stops_every_instance(round_, fake_driver, tmp_path):
    with pytest.raises(BenchError, match="died during iteration"):
        round_({"native": {}, "native_aa": {"die_after": 6}, "lxc_host": {}}, client=True)
    out = tmp_path / "raw" / "tiny" / "round-2"
    assert not list(out.glob("*/cell.json")) and not (out / "round.json").exists()
    assert all_stopped(fake_driver)
