"""The time box (isobench.schedule) and the interleaved round's pure decisions (isobench.cell,
isobench.order, isobench.drivers.hostnet): simulated records whose right answer is known."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from isobench import schedule
from isobench.cell import interleave_plan
from isobench.drivers.hostnet import free_host_port, loopback_for
from isobench.order import block_order


def rec(next_rounds: int, *, done: bool = False, settle: list[float] = (), seconds: float = 0.0) -> dict:
    comps = [{"env": f"e{i}", "decision": "undecided", "settle_rounds": s} for i, s in enumerate(settle)]
    return {"done": done, "next": next_rounds, "comparisons": comps, "seconds": seconds}


def test_allocate_serves_the_nearest_decision_per_second_first():
    # a settles 2 comparisons in 2 rounds of 60 s; b one in 4 rounds of 60 s: a first
    records = {"a": rec(2, settle=[1, 2]), "b": rec(4, settle=[3])}
    assert schedule.allocate(records, {"a": 60.0, "b": 60.0}, left_s=200) == {"a": 2, "b": 1}


def test_a_sweep_counts_per_environment_not_per_point():
    """A workload whose one environment has 30 sweep points to settle is not worth 30 workloads."""
    sweep = {"done": False, "next": 2, "seconds": 0.0, "comparisons": [
        {"env": "lxc", "decision": "undecided", "settle_rounds": 1, "point": f"c={i}"} for i in range(30)]}
    single = {"done": False, "next": 2, "seconds": 0.0, "comparisons": [
        {"env": e, "decision": "undecided", "settle_rounds": 1} for e in ("lxc", "kvm")]}
    assert schedule.expected_settled(sweep, 2) == 1 and schedule.expected_settled(single, 2) == 2
    # one environment of the sweep is not settled until all its points are
    sweep["comparisons"][0]["settle_rounds"] = 9
    assert schedule.expected_settled(sweep, 2) == 1          # at least one: the estimate is rough
    assert schedule.allocate({"sweep": sweep, "single": single}, {"sweep": 50.0, "single": 50.0},
                             left_s=100) == {"sweep": 0, "single": 2}


def test_allocate_never_exceeds_the_time_left():
    records = {w: rec(5, settle=[2]) for w in "abc"}
    costs = {"a": 30.0, "b": 50.0, "c": 70.0}
    for left in (0, 29, 30, 100, 499, 1000):
        grant = schedule.allocate(records, costs, left_s=left)
        assert sum(grant[w] * costs[w] for w in grant) <= left
        assert all(0 <= grant[w] <= 5 for w in grant)


def test_allocate_gives_nothing_to_decided_workloads():
    records = {"a": rec(3, done=True), "b": rec(0), "c": rec(2, settle=[1])}
    assert schedule.allocate(records, {"a": 1.0, "b": 1.0, "c": 1.0}, left_s=100) == {"a": 0, "b": 0, "c": 2}


def test_allocate_gives_an_unknown_cost_what_it_asks():
    assert schedule.allocate({"a": rec(3, settle=[1])}, {"a": math.nan}, left_s=0) == {"a": 3}


def cells(cost: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"workload": "w", "env": e, "round": r, "cell_seconds": s}
                         for e, s in cost.items() for r in (1, 2)])


def test_round_cost_sums_the_measured_environments_and_fills_unmeasured_ones_with_their_mean():
    c = cells({"native": 10.0, "lxc": 30.0})
    assert schedule.round_cost_s(c, "w", ["native", "lxc"]) == pytest.approx(40.0)
    assert schedule.round_cost_s(c, "w", ["native"]) == pytest.approx(10.0)
    assert schedule.round_cost_s(c, "w", ["native", "lxc", "kvm"]) == pytest.approx(60.0)
    assert math.isnan(schedule.round_cost_s(c, "other", ["native"]))


def test_progress_says_what_is_decided_and_what_comes_next():
    record = {"batch": 1, "done": False, "used_s": 600.0, "budget_s": 1800.0, "next_s": 120.0, "workloads": {
        "stream": {"done": True, "stop": "decided", "next": 0, "measure": ["native"],
                   "comparisons": [{"decision": "same"}, {"decision": "slower"}]},
        "fio": {"done": False, "stop": "", "next": 2, "measure": ["native", "lxc_host"],
                "comparisons": [{"decision": "undecided"}]}}}
    lines = schedule.progress(record)
    assert "10.0 of 30 min" in lines[0] and "1 same" in lines[0] and "1 slower" in lines[0]
    assert "1 undecided" in lines[0]
    assert "fio +2 round(s) on native, lxc_host" in lines[1]


def test_interleave_plan_blocks_the_guests_that_do_not_fit():
    held = {"native": 0, "lxc": 0, "kvm": 4096, "kvm_tuned": 4096}
    assert interleave_plan(held, free_mib=20000) == {}
    blocked = interleave_plan(held, free_mib=6000)
    assert set(blocked) == {"kvm_tuned"} and "4096 MiB" in blocked["kvm_tuned"]
    assert set(interleave_plan(held, free_mib=3000)) == {"kvm", "kvm_tuned"}


def test_block_orders_differ_per_block_and_are_reproducible():
    envs = ["native", "native_aa", "lxc_bridge", "lxc_host", "lxc_nat"]
    orders = [tuple(block_order(envs, "stream", 3, b, seed=1)) for b in range(1, 9)]
    assert len(set(orders)) > 1
    assert orders == [tuple(block_order(envs, "stream", 3, b, seed=1)) for b in range(1, 9)]
    assert all(sorted(o) == sorted(envs) for o in orders)
    # every environment is first in some block over many draws: no fixed position
    firsts = {block_order(envs, "stream", r, 1, seed=1)[0] for r in range(1, 60)}
    assert firsts == set(envs)


def test_loopback_addresses_are_distinct_per_instance_and_never_127_0_0_1():
    names = [f"isobench-{e}-redis-{r}" for e in ("native", "native_aa", "lxc_host", "lxc_volume") for r in range(50)]
    addrs = [loopback_for(n) for n in names]
    assert len(set(addrs)) == len(addrs)
    assert all(a.startswith("127.") and a != "127.0.0.1" for a in addrs)
    assert all(0 <= int(x) <= 255 for a in addrs for x in a.split("."))
    assert loopback_for(names[0]) == addrs[0]


def test_a_second_published_port_is_another_host_port():
    assert free_host_port(16379, set()) == 16379
    assert free_host_port(16379, {16379}) == 17379
    assert free_host_port(16379, {16379, 17379}) == 18379
    with pytest.raises(ValueError):
        free_host_port(65000, {65000})


def test_a_cell_never_planned_is_not_missing():
    """Later rounds measure only the undecided environments: the decided ones' absent cells of those
    rounds are not missing; a planned cell that is absent still is."""
    from isobench.compare import missing_table
    summary = pd.DataFrame([{"env": "native", "workload": "w", "rounds": "1,2,3"},
                            {"env": "lxc", "workload": "w", "rounds": "1"},
                            {"env": "kvm", "workload": "w", "rounds": "1,2"}])
    manifests = {e: {"available": True} for e in ("native", "lxc", "kvm")}
    run = {"environments": ["native", "lxc", "kvm"], "workloads": ["w"]}
    planned = {"w": {"native": [1, 2, 3], "lxc": [1], "kvm": [1, 2, 3]}}
    rows = missing_table(summary, manifests, run, {"w": {}}, {"w": 3}, {}, "native", measured_in=planned)
    assert [(r["env"], r["round"]) for r in rows if r["scope"] == "cell"] == [("kvm", 3)]
    without = missing_table(summary, manifests, run, {"w": {}}, {"w": 3}, {}, "native")
    assert {(r["env"], r["round"]) for r in without if r["scope"] == "cell"} == {("lxc", 2), ("lxc", 3), ("kvm", 3)}


def test_two_names_that_hash_alike_get_two_addresses():
    """Instances of one round are alive together: an address another holds is skipped."""
    from isobench.drivers.hostnet import address_for
    a, b = "isobench-lxc_bridge-compression-2", "isobench-lxc_nat-compression-2"
    assert address_for(a, "10.213.77.0/24") == address_for(b, "10.213.77.0/24")     # they do collide
    ip_a, mac_a = address_for(a, "10.213.77.0/24")
    ip_b, mac_b = address_for(b, "10.213.77.0/24", taken={ip_a})
    assert ip_b != ip_a and mac_b != mac_a and ip_b.startswith("10.213.77.")


def test_addresses_held_are_read_from_the_live_instances_directories(tmp_path):
    """KVM guests and OCI containers record their address in their directory; the next instance
    of the network skips every one of them (a directory without the file holds none)."""
    from isobench.drivers.hostnet import ADDRESS_FILE, address_for, addresses_held
    a, b = "isobench-lxc_bridge-compression-2", "isobench-lxc_nat-compression-2"
    held = tmp_path / a
    held.mkdir()
    (held / ADDRESS_FILE).write_text(address_for(a, "10.213.77.0/24")[0] + "\n")
    (tmp_path / "no-address").mkdir()
    taken = addresses_held(tmp_path.iterdir())
    assert taken == {address_for(a, "10.213.77.0/24")[0]}
    assert address_for(b, "10.213.77.0/24", taken=taken)[0] not in taken
