"""Statistics of one group of measurements, and of one environment against the baseline.

Everything here is a pure function of its arguments, so the same inputs give the same numbers:

* **Interval of a mean** (:func:`mean_interval`): the t-interval of the mean of a group's values.
* **Outliers**: Tukey's fences, a value outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR] of its group is flagged
  (needs at least :data:`MIN_N_OUTLIER` values). Flagged values are reported, never dropped: the
  median is robust to them already, and dropping would hide real variability (e.g. a noisy
  neighbour) that the comparison is about.
* **Paired ratio over rounds** (:func:`paired_ratio`), the overhead estimate: a round measures the
  workload on each of its environments back to back, each cell reduces to one value (the median of its
  measured iterations), and the overhead of environment E is taken from the per-round log ratios
  d_r = log(E_r / baseline_r): the ratio is exp(mean d), the geometric mean of the per-round
  ratios; its 95 % CI the t-interval of the mean of d (n - 1 degrees of freedom), back-transformed,
  or, where rounds stopped on the data (every overhead of the aggregate tables), the sequential
  interval of :mod:`isobench.decision` that stays valid at the stopping time; the p-value is the
  fixed-n one-sample t-test of mean d = 0 (none when every round gave the same ratio).
  The round, not the iteration, is the unit: iterations inside one instance share that instance's
  and that moment's luck, so treating them as independent makes intervals too narrow (Kalibera &
  Jones, ISMM 2013). With fewer than :data:`MIN_ROUNDS_CI` rounds no interval is given.
  The half-width of the interval, in % of the ratio, is exp(t * sd / sqrt(n)) - 1; the rounds a
  target half-width h needs for a paired SD s are about (1.96 s / log(1 + h))^2
  (:func:`rounds_for`, pyperf's sample-size rule in log space).
* **Ratio of medians** (:func:`ratio_of_medians`, environment / baseline) with a 95 % CI from an
  independent two-sample bootstrap (``scipy.stats.bootstrap``, percentile method: the median of
  few values is a discrete statistic and BCa's jackknife acceleration is unstable for it; fewer
  than :data:`MIN_N_CI` values per group give no interval, fewer than :data:`SMALL_N` an
  approximate one): kept for unpaired comparisons only (never for overheads).
* **False discovery rate**: the p-values of all overheads of a report are adjusted with
  Benjamini-Hochberg (:func:`bh_adjust`); an overhead is *significant* when its adjusted value is
  below 1 - confidence.
* **Overhead in %**, signed so that positive means slower whatever the metric's direction:
  ``(1 - ratio) * 100`` for higher-is-better metrics (throughput lost),
  ``(ratio - 1) * 100`` for lower-is-better ones (time or latency added). So a latency ratio of 1.2 is
  "20 % slower" and a throughput ratio of 0.9 is "10 % slower", as the paper reports its changes.

Every random draw comes from a generator seeded by ``(seed, hash of the group key)``, so a group's
numbers do not depend on which other groups exist or in which order they are processed.

Values that are NaN or infinite are excluded and counted (``n_nonfinite``); zeros are kept (a zero
throughput is a result), but a zero baseline median makes the ratio undefined (NaN, with a note).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from .order import group_rng  # noqa: F401  (re-exported: every seeded draw of the statistics)

CONFIDENCE = 0.95
#: fewer values than this: no confidence interval at all
MIN_N_CI = 3
#: fewer values than this: the interval is computed but flagged as approximate
SMALL_N = 10
MIN_N_OUTLIER = 4
IQR_K = 1.5
OUTLIER_RULE = f"Tukey fences: outside [Q1 - {IQR_K} IQR, Q3 + {IQR_K} IQR] of the group (n >= {MIN_N_OUTLIER})"
#: fewer rounds than this: no interval for an overhead (and never a "significant")
MIN_ROUNDS_CI = 5
PAIRED_METHOD = (f"geometric mean of the per-round ratios E_r / native_r of the cells' medians; {CONFIDENCE:.0%} "
                 f"t-interval of the mean log ratio over rounds, back-transformed; no interval below "
                 f"{MIN_ROUNDS_CI} rounds")
FDR_METHOD = "Benjamini-Hochberg over every overhead of the run (A/A and emulated excluded)"


def finite(values) -> np.ndarray:
    """The finite values as float64, in their original order."""
    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr)]


def outlier_mask(values) -> np.ndarray:
    """Tukey's fences on one group; all False when the group is too small to judge."""
    arr = np.asarray(values, dtype=np.float64)
    mask = np.zeros(arr.shape, dtype=bool)
    ok = np.isfinite(arr)
    if ok.sum() < MIN_N_OUTLIER:
        return mask
    q1, q3 = np.percentile(arr[ok], [25, 75])
    iqr = q3 - q1
    mask[ok] = (arr[ok] < q1 - IQR_K * iqr) | (arr[ok] > q3 + IQR_K * iqr)
    return mask


def _small_n_note(n: int) -> str:
    if n < MIN_N_CI:
        return f"n={n} < {MIN_N_CI}: no confidence interval"
    if n < SMALL_N:
        return f"n={n} < {SMALL_N}: interval approximate (cannot extend beyond the observed values)"
    return ""


def _bootstrap(data: tuple[np.ndarray, ...], statistic, rng: np.random.Generator, n_boot: int) -> tuple[float, float]:
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # degenerate (all-equal) data warns; the interval is still right
        res = sps.bootstrap(data, statistic, n_resamples=n_boot, confidence_level=CONFIDENCE,
                            method="percentile", paired=False, vectorized=True, rng=rng)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _ratio_of_medians(x, y, axis=-1):
    return np.median(x, axis=axis) / np.median(y, axis=axis)


class RatioInterval:
    """The confidence interval [ci_low, ci_high] of a ratio, NaN bounds when there is none: shared by
    the two kinds of ratio estimate below."""
    ci_low: float
    ci_high: float

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    @property
    def excludes_one(self) -> bool:
        """The interval excludes 1 (False when there is no interval)."""
        return self.has_ci and (self.ci_low > 1 or self.ci_high < 1)


@dataclass(frozen=True)
class RatioStats(RatioInterval):
    ratio: float
    ci_low: float
    ci_high: float
    note: str

    #: the unpaired comparisons' word for it
    significant = RatioInterval.excludes_one


def ratio_of_medians(values, baseline, rng: np.random.Generator, n_boot: int = 2000) -> RatioStats:
    """median(values) / median(baseline) with a two-sample bootstrap CI (both groups resampled)."""
    x, y = finite(values), finite(baseline)
    nan = float("nan")
    if x.size == 0 or y.size == 0:
        return RatioStats(nan, nan, nan, "no finite values in one of the groups")
    base = float(np.median(y))
    if base == 0:
        return RatioStats(nan, nan, nan, "baseline median is 0: ratio undefined")
    ratio = float(np.median(x)) / base
    n = min(x.size, y.size)
    note = _small_n_note(int(n))
    if n < MIN_N_CI:
        return RatioStats(ratio, nan, nan, note)
    lo, hi = _bootstrap((x, y), _ratio_of_medians, rng, n_boot)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return RatioStats(ratio, nan, nan, "baseline resamples with median 0: no interval")
    return RatioStats(ratio, lo, hi, note)


def overhead_pct(ratio: float, higher_is_better: bool) -> float:
    """Signed overhead in % of the baseline: positive = slower, negative = faster (see module doc)."""
    if not math.isfinite(ratio):
        return float("nan")
    return (1.0 - ratio) * 100.0 if higher_is_better else (ratio - 1.0) * 100.0


def overhead_interval(lo: float, hi: float, higher_is_better: bool) -> tuple[float, float]:
    """The ratio interval mapped to overhead %; the bounds swap for higher-is-better metrics."""
    a, b = overhead_pct(lo, higher_is_better), overhead_pct(hi, higher_is_better)
    return (min(a, b), max(a, b)) if math.isfinite(a) and math.isfinite(b) else (float("nan"), float("nan"))


def effect_words(pct: float, baseline: str = "native") -> str:
    """'12.3% slower than native' / '4.0% faster than native' / 'same as native'."""
    if not math.isfinite(pct):
        return "undefined"
    if round(pct, 1) == 0:
        return f"same as {baseline}"
    return f"{abs(pct):.1f}% {'slower' if pct > 0 else 'faster'} than {baseline}"


# -- rounds as the unit ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedStats(RatioInterval):
    """One environment against the baseline over paired rounds (see the module doc)."""
    n: int                 # rounds with a finite value on both sides
    ratio: float           # exp(mean of the per-round log ratios)
    ci_low: float
    ci_high: float
    sd_log: float          # SD of the per-round log ratios (the pair noise)
    halfwidth_pct: float   # CI half-width in % of the ratio: exp(t * sd / sqrt(n)) - 1
    p_value: float         # two-sided one-sample t-test of mean log ratio = 0
    note: str


def _t_half(sd: float, n: int) -> float:
    """Half-width of the CONFIDENCE t-interval of a mean of n values with sample SD sd."""
    return float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)


def log_ratios(values, baseline) -> np.ndarray:
    """Per-round log(values_r / baseline_r) where both are finite and positive (aligned arrays)."""
    x, y = np.asarray(values, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    return np.log(x[ok] / y[ok])


def paired_ratio(values, baseline, min_rounds: int = MIN_ROUNDS_CI, horizon: int | None = None) -> PairedStats:
    """The overhead estimate from per-round values aligned by round (``values[i]`` and
    ``baseline[i]`` measured in the same round): the geometric mean of the per-round ratios.

    ``horizon``: the rounds cap the run could have reached (``rounds.max``). Given, the interval
    is the sequential one of :mod:`isobench.decision` (valid at a stopping time the data chose);
    None, the fixed-n t-interval (no optional stopping, e.g. the CPU cost). Every round giving the
    same ratio (quantised values, e.g. bucketed latency percentiles) leaves no variance to estimate:
    no interval and no p-value, never a zero-width interval with p = 0."""
    d = log_ratios(values, baseline)
    n, nan = int(d.size), float("nan")
    if n == 0:
        return PairedStats(0, nan, nan, nan, nan, nan, nan, "no round with a value on both sides")
    mean = float(np.mean(d))
    ratio = math.exp(mean)
    if n < 2:
        return PairedStats(n, ratio, nan, nan, nan, nan, nan, f"{n} round < {min_rounds}: no interval")
    sd = float(np.std(d, ddof=1))
    if np.ptp(d) <= 1e-12 * max(1.0, abs(mean)):
        return PairedStats(n, ratio, nan, nan, 0.0, nan, nan,
                           f"every one of the {n} rounds gave the same ratio (quantised values?): no variance, "
                           f"no interval")
    if horizon is None:
        half = _t_half(sd, n)
    else:
        from . import decision
        half = float(decision.multiplier(n, horizon)) * sd / math.sqrt(n) if n >= decision.FIRST_LOOK else nan
    p = float(2 * sps.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    hw = (math.exp(half) - 1) * 100 if math.isfinite(half) else _pct_half(sd, n)
    if n < min_rounds:
        return PairedStats(n, ratio, nan, nan, sd, hw, p, f"{n} rounds < {min_rounds}: no interval")
    return PairedStats(n, ratio, math.exp(mean - half), math.exp(mean + half), sd, hw, p, "")


def _pct_half(sd: float, n: int) -> float:
    """The fixed-n half-width in % (what rounds below the first sequential look are shown with)."""
    return (math.exp(_t_half(sd, n)) - 1) * 100


def rounds_for(sd_log: float, target_pct: float, *, t_based: bool = True, cap: int = 100_000) -> int:
    """Rounds needed for a CI half-width of ``target_pct`` % given the per-round log-ratio SD.

    ``t_based=False`` is the textbook (1.96 s / h)^2 (the "ideal" of a known SD); ``t_based=True``
    the smallest n whose t-interval (n - 1 degrees of freedom) reaches the target, which is what
    the stopping rule checks."""
    if not (math.isfinite(sd_log) and sd_log >= 0 and target_pct > 0):
        return cap
    h = math.log1p(target_pct / 100)
    z = float(sps.norm.ppf(0.5 + CONFIDENCE / 2))
    n = max(2, math.ceil((z * sd_log / h) ** 2))
    if not t_based:
        return min(n, cap)
    while n < cap and _t_half(sd_log, n) > h:
        n += 1
    return n


def mean_interval(values) -> tuple[float, float, float, str]:
    """Mean of per-cell values with its t-interval over cells: (mean, low, high, note)."""
    x = finite(values)
    n, nan = int(x.size), float("nan")
    if n == 0:
        return nan, nan, nan, "no finite values"
    m = float(np.mean(x))
    if n < MIN_N_CI:
        return m, nan, nan, f"{n} cells < {MIN_N_CI}: no interval"
    half = _t_half(float(np.std(x, ddof=1)), n)
    return m, m - half, m + half, ""


def bh_adjust(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = sps.false_discovery_control(p[ok], method="bh")
    return out
