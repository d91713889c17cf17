"""Decisions per comparison, on an interval that stays valid when rounds stop on a decision.

**The estimate** is :func:`isobench.stats.paired_ratio`'s: the geometric mean of the per-round
ratios env / native (exp of the mean per-round log ratio d_r, each cell's value the median of its
measured iterations). What changes here is the interval around it.

**Why a sequential interval.** Rounds are added in batches and a comparison stops as soon as it is
decided (or precise enough). Looking after every batch and stopping when the fixed-n 95 % t-interval
says so is optional stopping: under the rule of :func:`isobench.rounds.decide` its coverage at the
stopping time falls to 0.81-0.94, and "slower" is called at a true ratio of 1.00 in up to 10 % of
runs (tests/test_decision.py). The interval reported here is a
*repeated confidence interval* (Jennison & Turnbull 1989, "Interim analyses: the repeated confidence
interval approach", JRSS B 51; their book, ch. 9 and 11.4 for an unknown variance) built from a
group-sequential boundary with Lan-DeMets alpha spending:

* every round count n from :data:`FIRST_LOOK` (= :data:`isobench.stats.MIN_ROUNDS_CI`, the first
  n with an interval) to the horizon N (``rounds.max``) is treated as a look, whether the run looked
  there or not. Looking less often only makes the intervals conservative, so the boundary depends on
  n and N alone, never on the batch history, and :func:`isobench.rounds.decide` stays a pure
  function of the cells (a global scheduler may add one round at a time);
* the type-I error 1 - confidence is spent over the looks with the power family
  alpha * t^:data:`RHO` (Kim & DeMets 1987), t = (n - 4) / (N - 4) the fraction of the looks
  made (so the widths shrink from look to look). RHO = 0.5 spends early (more than a Pocock-like
  RHO = 1): with an unknown variance the t quantile at 5-10 rounds is already wide, and a rule
  meant to decide in few rounds gains most there. Multiplier at N = 40: 4.85 at n = 5, 3.49 at
  10, 3.01 at 20, 2.75 at 40 (RHO = 1: 7.9, 3.83, 2.97, 2.51; the fixed-n t: 2.78, 2.26, 2.09, 2.02);
* the two-sided z boundary c_n of each look is solved by the Armitage-McPherson-Rowe recursion (the
  sum of the first n standardised log ratios is a Gaussian random walk; its sub-density carried on
  a lattice from look to look);
* the variance is not known: each look's nominal level 2 (1 - Phi(c_n)) is converted to the
  t quantile with n - 1 degrees of freedom (Jennison & Turnbull 11.4); the interval at n is
  mean(d) +- t_{n-1}(1 - p_n / 2) * sd(d) / sqrt(n), back-transformed to a ratio.

The coverage of these intervals holds simultaneously over every look up to N, so it holds at any
stopping time, whatever rule chose it (the decision words, the precision target, the time budget or
a scheduler elsewhere). Simulated in tests/test_decision.py at 5-40 rounds and per-round SDs of
0.03-0.15: coverage at the stopping time 0.956-0.990 where the fixed-n t-interval under the same
rule covers 0.81-0.94; "slower" or "faster" at a true ratio of 1.00 in <= 2.3 % of runs, "same"
at a true ratio equal to the margin in <= 1.5 % (the fixed-n interval: "slower" alone in up to
10 %). The price is width: at n = 10 of N = 40 the multiplier is 3.49, 1.5x the fixed-n t
quantile (2.26), so a decision takes more rounds than the fixed interval would suggest.

Why not an anytime-valid confidence sequence (``confseq``, ``expectation`` on PyPI)? They cover an
unbounded horizon, which costs width at every n, and for an unknown variance need a sub-Gaussian
or bounded-variable assumption on the log ratios; the horizon here is known (``rounds.max``), so a
finite-horizon spending boundary gives the same guarantee up to N with the t-test's own
assumptions, and it needs nothing beyond scipy (no new dependency).

**Decisions** (:func:`decide_arrays`), with margin m (config ``margins``, per workload ``margin_pct``)
and the interval [L, U] of the ratio:

* ``slower`` / ``faster``: the interval excludes 1; "slower" is worse performance, whatever the
  metric's direction (a throughput ratio below 1, a latency ratio above 1). An interval that excludes
  1 and also lies inside the margin is still ``slower``/``faster`` (never hide a significant effect);
  its text says it is within the margin;
* ``same``: the whole interval inside [1/(1+m), 1+m] (symmetric in log ratio: +-log(1+m)). This is
  TOST (two one-sided tests) at 2.5 % per side on the same sequential interval the table reports, so
  "same" at a true overhead equal to the margin is called in at most ~2.5 % of runs, also under
  optional stopping;
* ``undecided``: neither, with ``settle_rounds``, the further rounds after which the measured SD
  says the interval would be narrow enough to decide: the half-width at N must fall below
  max(|mean|, log(1+m) - |mean|) (:func:`settle_rounds`);
* ``no interval``: fewer than :data:`FIRST_LOOK` rounds, or every round gave the same ratio
  (no variance to estimate, e.g. bucketed latency percentiles).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import stats as sps
from scipy.optimize import brentq

from .stats import CONFIDENCE, MIN_ROUNDS_CI

SAME, SLOWER, FASTER, UNDECIDED, NO_INTERVAL = "same", "slower", "faster", "undecided", "no interval"
DECISIONS = (SAME, SLOWER, FASTER, UNDECIDED, NO_INTERVAL)
#: decided: the comparison stops
DECIDED = (SAME, SLOWER, FASTER)
FIRST_LOOK = MIN_ROUNDS_CI
#: power of the alpha spending function alpha * (n / N)^RHO
RHO = 0.5
#: default horizon when none is known (the config's rounds.max default)
DEFAULT_HORIZON = 40
#: grid step of the recursion, in standard deviations of one round's increment
_GRID_STEP = 0.05
METHOD = (f"{CONFIDENCE:.0%} repeated confidence interval (Jennison & Turnbull) of the mean per-round log ratio: "
          f"Lan-DeMets alpha spending alpha*t^{RHO:g} (t: fraction of the looks made) over a look at every round "
          f"count from {FIRST_LOOK} to "
          f"N = rounds.max, z boundaries by recursive integration, converted to t quantiles with n-1 df; valid at "
          f"any stopping time up to N")


RULE = ("same: the whole interval inside [1/(1+m), 1+m] (m: the workload's margin); slower/faster: the "
        "interval excludes 1 (slower = worse performance in the metric's direction); undecided: neither, "
        "settle_rounds = the further rounds the measured SD says would decide it; no interval: fewer than "
        f"{FIRST_LOOK} rounds or no variance")


@lru_cache(maxsize=64)
def z_boundaries(horizon: int, first: int = FIRST_LOOK, alpha: float = 1 - CONFIDENCE,
                 rho: float = RHO) -> np.ndarray:
    """Two-sided z boundaries c_n for n = first..horizon (index n - first), looks at every n.

    Under mean 0 the partial sums S_n of standardised increments are a Gaussian random walk;
    P(|S_n| >= c_n sqrt(n) first at n) = f(n) - f(n-1) with f(n) = alpha ((n - first + 1) /
    (N - first + 1))^rho, the looks' own fraction (counted from the first look, so the multiplier
    shrinks from look to look; counted from 0, the first look would spend a lump and the interval
    widen from 5 to 6 rounds). The sub-density of S on the continuation region is carried on a
    lattice of step :data:`_GRID_STEP` and each c_n found by root finding on the exit probability
    (checked against a Monte Carlo random walk in tests/test_decision.py)."""
    horizon = max(int(horizon), int(first))
    looks = np.arange(first, horizon + 1)
    spend = alpha * ((looks - first + 1) / (horizon - first + 1)) ** rho
    inc = np.diff(np.concatenate([[0.0], spend]))
    out = np.empty(looks.size)
    out[0] = sps.norm.isf(inc[0] / 2)
    if looks.size == 1:
        return out
    # S on the lattice j*h, |S| < c sqrt(n): S at the first look ~ N(0, first) truncated; each round
    # adds N(0, 1), a convolution with one fixed kernel on the lattice (cost: grid x kernel per look)
    h = _GRID_STEP
    kern = sps.norm.pdf(np.arange(-math.ceil(8 / h), math.ceil(8 / h) + 1) * h) * h
    half_k = (kern.size - 1) // 2
    j = math.floor(out[0] * math.sqrt(first) / h)
    grid = np.arange(-j, j + 1) * h
    dens = sps.norm.pdf(grid, scale=math.sqrt(first)) * h
    for k in range(1, looks.size):
        # one more round: the boundary whose exit probability is this look's share
        c = _solve_boundary(dens, grid, int(looks[k]), float(inc[k]))
        out[k] = c
        full = np.convolve(dens, kern)             # lattice index i = m - j - half_k
        j_new = min(math.floor(c * math.sqrt(looks[k]) / h), j + half_k)
        dens = full[j + half_k - j_new: j + half_k + j_new + 1]
        grid = np.arange(-j_new, j_new + 1) * h
        j = j_new
    return out


def _exit_prob(c: float, dens: np.ndarray, grid: np.ndarray, n: int) -> float:
    """P(|S + N(0, 1)| >= c sqrt(n)) for S with sub-density weights ``dens`` at ``grid``."""
    bn = c * math.sqrt(n)
    return float(np.sum(dens * (sps.norm.sf(bn - grid) + sps.norm.cdf(-bn - grid))))


def _solve_boundary(dens: np.ndarray, grid: np.ndarray, n: int, share: float) -> float:
    lo, hi = 0.5, 8.0
    if _exit_prob(hi, dens, grid, n) > share:
        return hi
    return float(brentq(lambda c: _exit_prob(c, dens, grid, n) - share, lo, hi, xtol=1e-6))


@lru_cache(maxsize=64)
def _t_table(horizon: int) -> np.ndarray:
    """t multipliers indexed by n (0..horizon): NaN below FIRST_LOOK."""
    horizon = max(int(horizon), FIRST_LOOK)
    z = z_boundaries(horizon)
    out = np.full(horizon + 1, np.nan)
    n = np.arange(FIRST_LOOK, horizon + 1)
    out[FIRST_LOOK:] = sps.t.isf(sps.norm.sf(z), n - 1)
    return out


def multiplier(n, horizon: int = DEFAULT_HORIZON) -> np.ndarray | float:
    """The t-scale multiplier of the sequential interval at n rounds (NaN below FIRST_LOOK). Beyond
    the horizon the horizon's own (the spending is exhausted there; a run does not get there)."""
    n_arr = np.asarray(n)
    horizon = max(int(horizon), int(np.max(n_arr, initial=FIRST_LOOK)))
    table = _t_table(horizon)
    idx = np.clip(n_arr.astype(np.int64), 0, horizon)
    out = table[idx]
    return float(out) if np.ndim(out) == 0 else out


def fixed_multiplier(n) -> np.ndarray | float:
    """The fixed-n t quantile (what the interval would be without optional stopping)."""
    return sps.t.isf((1 - CONFIDENCE) / 2, np.asarray(n) - 1)


def interval(mean, sd, n, horizon: int = DEFAULT_HORIZON):
    """(low, high, half) of the sequential interval on the log scale (vectorised; NaN without one)."""
    n = np.asarray(n)
    sd = np.asarray(sd, dtype=np.float64)
    c = multiplier(np.maximum(n, 0), horizon)
    ok = (n >= FIRST_LOOK) & np.isfinite(sd) & (sd > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = np.where(ok, c * sd / np.sqrt(np.maximum(n, 1)), np.nan)
    return mean - half, mean + half, half


def margin_log(margin_pct) -> np.ndarray | float:
    """The margin on the log-ratio scale: log(1 + m/100)."""
    return np.log1p(np.asarray(margin_pct, dtype=np.float64) / 100)


def decide_arrays(low, high, margin_pct, higher_is_better) -> np.ndarray:
    """The decision word per comparison from its log-scale interval [low, high] (vectorised).

    ``higher_is_better``: the metric's direction; a ratio above 1 is faster for it, slower otherwise."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    b = margin_log(margin_pct)
    hib = np.asarray(higher_is_better, dtype=bool)
    out = np.full(np.broadcast(low, high, b, hib).shape, UNDECIDED, dtype=object)
    has = np.isfinite(low) & np.isfinite(high)
    above, below = has & (low > 0), has & (high < 0)
    same = has & (low >= -b) & (high <= b) & ~above & ~below
    out[~has] = NO_INTERVAL
    out[same] = SAME
    out[above & hib] = FASTER
    out[above & ~hib] = SLOWER
    out[below & hib] = SLOWER
    out[below & ~hib] = FASTER
    return out


def rounds_to(sd, n, gap, horizon: int = DEFAULT_HORIZON, cap: int = 100_000) -> np.ndarray:
    """Further rounds after which, at the measured SD, the sequential half-width (log scale) would
    be at most ``gap``: the smallest N' > n with multiplier(N') sd / sqrt(N') <= gap, minus n
    (vectorised; NaN without an SD). Beyond the horizon the horizon's multiplier is used (the
    sample-size rule (c_N sd / gap)^2)."""
    sd, gap = np.asarray(sd, dtype=np.float64), np.asarray(gap, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    sd, gap, n = np.broadcast_arrays(sd, gap, n)
    horizon = max(int(horizon), FIRST_LOOK)
    cand = np.arange(FIRST_LOOK, horizon + 1)
    c = multiplier(cand, horizon)
    ok = np.isfinite(sd) & (sd > 0) & np.isfinite(gap) & (gap > 0) & (n >= 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        fits = (c * sd[..., None] / np.sqrt(cand) <= gap[..., None]) & (cand > n[..., None])
        first = cand[np.argmax(fits, axis=-1)]
        beyond = np.maximum(np.maximum(horizon + 1, n + 1), np.ceil((c[-1] * sd / gap) ** 2))
        need = np.where(fits.any(axis=-1), first, np.minimum(beyond, cap))
    return np.where(ok, need - n, np.nan)


def settle_rounds(mean, sd, n, margin_pct, horizon: int = DEFAULT_HORIZON) -> np.ndarray:
    """Further rounds after which, at the measured mean and SD, the interval would decide: its
    half-width at most max(|mean|, log(1+m) - |mean|), the distance from the mean to 1 or to the
    nearer margin (vectorised; NaN without an SD)."""
    mean = np.asarray(mean, dtype=np.float64)
    b = margin_log(margin_pct)
    return rounds_to(sd, n, np.maximum(np.abs(mean), b - np.abs(mean)), horizon)


def rounds_to_target(sd, n, target_pct, horizon: int = DEFAULT_HORIZON) -> np.ndarray:
    """Further rounds until the half-width, in % of the ratio, reaches ``target_pct``."""
    return rounds_to(sd, n, np.log1p(np.asarray(target_pct, dtype=np.float64) / 100), horizon)


def _pct(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"


def text(decision: str, ratio: float, lo: float, hi: float, margin_pct: float, higher_is_better: bool,
         settle: float, baseline: str = "native", n: int = 0) -> str:
    """The decision in words: "slower by 12 % [8, 16]", "same as native within ±5 %",
    "undecided: ~14 more rounds would settle it", "no interval (4 rounds)"."""
    if decision == NO_INTERVAL:
        return f"no interval ({n} rounds)" if n < FIRST_LOOK else "no interval (every round gave the same ratio)"
    if decision == SAME:
        return f"same as {baseline} within ±{margin_pct:g} %"
    if decision == UNDECIDED:
        more = (f"~{settle:.0f} more round{'s' if round(settle) != 1 else ''} would settle it"
                if math.isfinite(settle) else "more rounds needed")
        return f"undecided: {more}"
    # slower/faster by X % [a, b] in performance terms: the loss or gain against the baseline
    def perf(r: float) -> float:
        return ((1 - r) if higher_is_better else (r - 1)) * 100
    a, b = sorted((perf(lo), perf(hi)))
    x = perf(ratio)
    if decision == FASTER:
        x, a, b = -x, -b, -a
    words = f"{decision} by {_pct(x)} % [{_pct(a)}, {_pct(b)}]"
    inside = max(abs(math.log(lo)), abs(math.log(hi))) <= math.log1p(margin_pct / 100)
    return words + (f" (within the ±{margin_pct:g} % margin)" if inside else "")
