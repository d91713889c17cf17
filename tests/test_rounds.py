"""Rounds as the statistical unit: the paired interval on simulated data whose true answer is known,
the round-count rule, the sentinel, and the random measurement order.

The simulation (tests/synthetic.py) follows the noise structure measured on this machine kind: every
cell (one fresh instance) has its own level (7 % between-cell CV), the iterations inside it vary less (2 %), and
the host drifts between rounds (5 %), moving every environment of a round alike.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from isobench import decision, rounds, stats

from synthetic import cell_iterations, round_drift


def simulate(rng: np.random.Generator, true_ratio: float, n_rounds: int, iterations: int):
    """Iterations of env and baseline, shape (rounds, iterations), with the structure above."""
    drift = round_drift(rng, n_rounds)
    base = cell_iterations(rng, drift, iterations, 100)
    env = cell_iterations(rng, drift, iterations, 100 * true_ratio)
    return env, base


def paired_interval(env: np.ndarray, base: np.ndarray) -> stats.PairedStats:
    """The pipeline's estimate: each cell's median, paired by round."""
    return stats.paired_ratio(np.median(env, axis=1), np.median(base, axis=1))


N_SIM = 1000


@pytest.mark.parametrize("n_rounds,iterations", [(5, 2), (10, 3), (20, 10)])
def test_aa_false_positive_rate_is_nominal(n_rounds, iterations):
    rng = np.random.default_rng(20150329 + n_rounds)
    hits = sum(paired_interval(*simulate(rng, 1.0, n_rounds, iterations)).excludes_one for _ in range(N_SIM))
    assert abs(hits / N_SIM - 0.05) <= 0.02, f"{hits}/{N_SIM} A/A comparisons significant"


def test_the_old_pooled_method_fails_the_same_test():
    """Pooling the iterations of all cells and bootstrapping them as independent values (the
    method this replaced) is far too confident on the same data: the test above would catch it."""
    rng = np.random.default_rng(7)
    n = 300
    hits = 0
    for i in range(n):
        env, base = simulate(rng, 1.0, 3, 10)
        r = stats.ratio_of_medians(env.ravel(), base.ravel(), stats.group_rng(1, i), n_boot=400)
        hits += r.significant
    assert hits / n > 0.2, f"pooled method: {hits}/{n} A/A comparisons significant"


def test_interval_covers_a_true_ratio_of_103_at_its_nominal_rate():
    rng = np.random.default_rng(103)
    covered = 0
    for _ in range(N_SIM):
        ps = paired_interval(*simulate(rng, 1.03, 10, 3))
        covered += ps.ci_low <= 1.03 <= ps.ci_high
    assert abs(covered / N_SIM - 0.95) <= 0.02, f"coverage {covered / N_SIM:.3f}"


def test_pairing_removes_the_host_drift():
    """A large drift shared by a round's cells widens unpaired intervals, not the paired one."""
    rng = np.random.default_rng(1)
    n = 12
    drift = rng.lognormal(0, 0.3, n)
    base = 100 * drift * rng.lognormal(0, 0.01, n)
    env = 90 * drift * rng.lognormal(0, 0.01, n)
    ps = stats.paired_ratio(env, base)
    assert ps.ci_low < 0.9 < ps.ci_high and ps.halfwidth_pct < 1.5
    assert ps.sd_log == pytest.approx(np.std(np.log(env / base), ddof=1))


def test_no_interval_below_the_minimum_rounds():
    ps = stats.paired_ratio([1.0, 1.1, 0.9, 1.05], [1.0, 1.0, 1.0, 1.0])
    assert ps.n == 4 and math.isnan(ps.ci_low) and not ps.excludes_one and "no interval" in ps.note
    assert math.isfinite(ps.ratio)


def test_rounds_for_is_the_sample_size_rule():
    # (1.96 * 0.13 / log 1.02)^2 = 166: the "140-200 pairs for +-2 % at 13 % pair SD"
    assert stats.rounds_for(0.13, 2, t_based=False) == math.ceil((1.959964 * 0.13 / math.log(1.02)) ** 2)
    n = stats.rounds_for(0.13, 2)
    assert n >= stats.rounds_for(0.13, 2, t_based=False)
    t = sps.t.ppf(0.975, [n - 1, n - 2])
    assert t[0] * 0.13 / math.sqrt(n) <= math.log(1.02) < t[1] * 0.13 / math.sqrt(n - 1)


def test_bh_adjust_matches_the_textbook():
    q = stats.bh_adjust([0.01, 0.04, 0.03, np.nan, 0.5])
    # four tests: sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, min(0.06, 0.0533), 0.0533, 0.5
    assert q[[0, 1, 2, 4]] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5]) and math.isnan(q[3])


# -- the round-count rule ----------------------------------------------------------------------------
T0 = pd.Timestamp("2026-12-01T10:00:00Z")


def cells_frame(pair_sd: float, n_rounds: int, *, seed: int = 1, steal: dict[int, float] | None = None,
                cell_seconds: float = 10.0, late: set[int] = frozenset(), ratio: float = 0.95) -> pd.DataFrame:
    """Cells of one workload on native and lxc (ratio 0.95), one measured iteration each; the lxc
    cells of the rounds in ``late`` were re-measured alone two days later."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(1, n_rounds + 1):
        drift = rng.lognormal(0, 0.1)
        for env, level in (("native", 1.0), ("lxc", ratio * math.exp(pair_sd * rng.standard_normal()))):
            rows.append({"env": env, "workload": "w", "metric": "m", "point": "", "round": r, "warmup": False,
                         "value": 100 * drift * level, "unit": "x", "higher_is_better": True, "emulated": False,
                         "steal_pct": (steal or {}).get(r, 0.0) if env == "lxc" else 0.0,
                         "canary_start_s": 0.1, "canary_end_s": 0.1, "cell_seconds": cell_seconds,
                         "started_at": T0 + pd.Timedelta(minutes=r) + pd.Timedelta(
                             days=2 if env == "lxc" and r in late else 0)})
    return pd.DataFrame(rows)


POLICY = {"min_rounds": 5, "max_rounds": 200, "budget_s": 1e9, "target_pct": 2.0, "max_steal_pct": 5.0,
          "max_canary_change_pct": 30.0}


def decide(cells: pd.DataFrame, n: int, **policy) -> dict:
    return rounds.decide(cells, {**POLICY, **policy}, workload="w", rounds_measured=n, baseline="native",
                         primary={"m"}, emulated=set())


def test_a_quiet_workload_stops_at_the_minimum():
    d = decide(cells_frame(0.005, 5), 5)
    assert d["done"] and d["stop"] == "decided" and d["worst"]["halfwidth_pct"] < 2
    (c,) = d["comparisons"]
    assert c["decision"] == "slower" and c["ci_high"] < 1 and math.isnan(c["settle_rounds"]) and d["measure"] == []


def test_a_noisy_workload_grows_by_at_most_half_and_stops_near_the_ideal():
    """Driving the rule to its end on a true ratio of 1.00 (premise changed with the decisions: it
    stops once "same" within the 5 % margin is decided, not at a 2 % half-width): it stops within
    1.5x of the rounds the sequential interval needs at the final SD."""
    sd = 0.06
    n = POLICY["min_rounds"]
    cells = cells_frame(sd, 400, seed=3, ratio=1.0)
    steps = []
    while True:
        d = decide(cells[cells["round"] <= n], n, max_rounds=60)
        if d["done"]:
            break
        assert 1 <= d["next"] <= math.ceil(n / 2) and d["measure"] == ["lxc", "native"]
        (c,) = d["comparisons"]
        assert c["decision"] == "undecided" and c["settle_rounds"] >= 1
        steps.append(d["next"])
        n += d["next"]
    assert d["stop"] == "decided" and d["comparisons"][0]["decision"] == "same", d["comparisons"]
    # at a mean of exactly 0 (the truth): the first n whose interval fits inside +-log(1.05)
    ideal = 2 + float(decision.rounds_to(d["worst"]["sd_log"], 2, math.log1p(0.05), 60))
    assert steps and n <= 1.5 * ideal + 2, (n, ideal, steps)


def test_caps_stop_the_rounds():
    noisy = cells_frame(0.2, 20)
    d = decide(noisy, 20, max_rounds=20)
    assert d["done"] and d["stop"] == "max rounds"
    d = decide(noisy, 20, budget_s=20 * 2 * 10.0 + 5)   # 20 s per round: not even one more fits
    assert d["done"] and d["stop"] == "time budget"
    d = decide(noisy, 20, budget_s=20 * 2 * 10.0 + 65)  # three more fit
    assert not d["done"] and d["next"] == 3


def test_a_flagged_round_is_replaced_and_not_counted():
    cells = cells_frame(0.005, 5, steal={3: 12.0})
    d = decide(cells, 5)
    assert d["flagged"] == {"3": "lxc: steal 12.0% > 5%"} and d["usable"] == 4
    assert not d["done"] and d["next"] == 1          # one round replaces it


def test_a_cell_re_measured_alone_is_not_paired_with_an_old_baseline():
    """lxc re-measured two days after its rounds (a changed setting, a failed cell): those pairs are
    not used, and new rounds (with a fresh native) bring it back to the minimum at once."""
    gap = {"max_pair_gap_s": 3600.0}
    cells = cells_frame(0.005, 8, late={1, 2, 3, 4, 5, 6})
    x, y, common = rounds.paired(rounds.cell_values(cells), "lxc", "native", "m", "", max_gap_s=3600)
    assert common == [7, 8]
    d = decide(cells, 8, **gap)
    assert d["groups"][0]["n"] == 2 and not d["done"]
    assert d["next"] == 3                              # to the 5-round minimum, not half of 8
    assert decide(cells_frame(0.005, 8), 8, **gap)["done"]


def test_round_order_is_random_per_round_and_reproducible():
    envs = ["native", "native_aa", "lxc_a", "lxc_b", "kvm"]
    orders = [tuple(rounds.round_order(envs, "w", r, 42)) for r in range(1, 41)]
    assert all(sorted(o) == sorted(envs) for o in orders)
    assert orders == [tuple(rounds.round_order(list(reversed(envs)), "w", r, 42)) for r in range(1, 41)]
    assert len(set(orders)) > 20                     # not a fixed rotation
    firsts = {o[0] for o in orders}
    assert firsts == set(envs)                       # every environment gets to go first
    assert orders != [tuple(rounds.round_order(envs, "w", r, 43)) for r in range(1, 41)]


def test_the_next_batch_measures_only_what_is_still_open():
    """lxc is decided (slower) after the minimum; the A/A environment, noisy, is not: the next batch
    measures native and native_aa only (the emulated one neither holds rounds back nor is measured)."""
    rng = np.random.default_rng(4)
    rows = []
    for r in range(1, 6):
        drift = rng.lognormal(0, 0.1)
        for env, level, sd in (("native", 1.0, 0.0), ("native_aa", 1.0, 0.08), ("lxc", 0.8, 0.005),
                               ("kvm_tcg", 0.05, 0.3)):
            rows.append({"env": env, "workload": "w", "metric": "m", "point": "", "round": r, "warmup": False,
                         "value": 100 * drift * level * math.exp(sd * rng.standard_normal()), "unit": "x",
                         "higher_is_better": True, "emulated": env == "kvm_tcg", "steal_pct": 0.0,
                         "canary_start_s": 0.1, "canary_end_s": 0.1, "cell_seconds": 10.0,
                         "started_at": T0 + pd.Timedelta(minutes=r)})
    cells = pd.DataFrame(rows)
    d = rounds.decide(cells, {**POLICY, "margin_pct": 5.0}, workload="w", rounds_measured=5, baseline="native",
                      primary={"m"}, emulated={"kvm_tcg"})
    by_env = {c["env"]: c for c in d["comparisons"]}
    assert set(by_env) == {"lxc", "native_aa"}
    assert set(by_env["lxc"]) >= {"env", "metric", "point", "n", "decision", "ratio", "ci_low", "ci_high",
                                  "margin_pct", "settle_rounds"}
    assert by_env["lxc"]["decision"] == "slower" and math.isnan(by_env["lxc"]["settle_rounds"])
    assert by_env["native_aa"]["decision"] == "undecided" and by_env["native_aa"]["settle_rounds"] >= 1
    assert not d["done"] and d["measure"] == ["native", "native_aa"] and d["next"] >= 1
    # during the minimum rounds every environment is measured, the emulated one included
    d = rounds.decide(cells[cells["round"] <= 3], {**POLICY, "margin_pct": 5.0}, workload="w", rounds_measured=3,
                      baseline="native", primary={"m"}, emulated={"kvm_tcg"})
    assert d["measure"] == ["kvm_tcg", "lxc", "native", "native_aa"] and d["next"] == 2
    d = rounds.decide(cells.iloc[:0], {**POLICY, "margin_pct": 5.0}, workload="w", rounds_measured=0,
                      baseline="native", primary={"m"}, emulated={"kvm_tcg"}, environments=["native", "lxc"])
    assert d["measure"] == ["lxc", "native"] and d["next"] == 5
