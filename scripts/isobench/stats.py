"""Statistics of one group of measurements, and of one environment against the baseline.

Everything here is a pure function of its arguments, so the same inputs give the same numbers:

* **Centre and spread**: median (robust to the odd slow iteration), mean, sample standard deviation
  (ddof=1) and coefficient of variation (stdev / mean).
* **95 % CI of the median**: ``scipy.stats.bootstrap``, percentile method, ``n_boot`` resamples.
  The percentile method, not BCa: the median of few values is a discrete statistic and BCa's
  jackknife acceleration is unstable for it. With fewer than :data:`MIN_N_CI` values no interval is
  computed (NaN, and ``ci_note`` says so); below :data:`SMALL_N` the interval is flagged as
  approximate, because a bootstrap of a median of few values cannot reach beyond the observed range.
* **Outliers**: Tukey's fences, a value outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR] of its group is flagged
  (needs at least :data:`MIN_N_OUTLIER` values). Flagged values are reported, never dropped: the
  median is robust to them already, and dropping would hide real variability (e.g. a noisy
  neighbour) that the comparison is about.
* **Ratio of medians** (environment / baseline) with a 95 % CI from an independent two-sample
  bootstrap (both groups resampled, ``paired=False``). It is *significant* when the interval
  excludes 1.
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

import hashlib
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
#: fewer values than this: no confidence interval at all
MIN_N_CI = 3
#: fewer values than this: the interval is computed but flagged as approximate
SMALL_N = 10
MIN_N_OUTLIER = 4
IQR_K = 1.5
OUTLIER_RULE = f"Tukey fences: outside [Q1 - {IQR_K} IQR, Q3 + {IQR_K} IQR] of the group (n >= {MIN_N_OUTLIER})"
CI_METHOD = f"bootstrap percentile interval ({CONFIDENCE:.0%}), scipy.stats.bootstrap"


def group_rng(seed: int, *key: object) -> np.random.Generator:
    """A generator for one group: seeded by the run seed and a stable hash of the group's key.

    Python's hash() is salted per process, so the key is hashed with sha256 instead.
    """
    digest = hashlib.sha256("\x1f".join(map(str, key)).encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


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


def _median(x, axis=-1):
    return np.median(x, axis=axis)


def _ratio_of_medians(x, y, axis=-1):
    return np.median(x, axis=axis) / np.median(y, axis=axis)


@dataclass(frozen=True)
class GroupStats:
    n: int
    n_nonfinite: int
    median: float
    mean: float
    stdev: float
    cv: float
    ci_low: float
    ci_high: float
    ci_note: str
    n_outliers: int

    def as_dict(self) -> dict:
        return asdict(self)


def describe(values, rng: np.random.Generator, n_boot: int = 2000) -> GroupStats:
    """Centre, spread, CI of the median and outlier count of one group of measured values."""
    raw = np.asarray(values, dtype=np.float64)
    x = finite(raw)
    n = int(x.size)
    nan = float("nan")
    if n == 0:
        return GroupStats(0, int(raw.size), nan, nan, nan, nan, nan, nan, "no finite values", 0)
    median, mean = float(np.median(x)), float(np.mean(x))
    stdev = float(np.std(x, ddof=1)) if n > 1 else nan
    cv = stdev / mean if n > 1 and mean != 0 else nan
    note = _small_n_note(n)
    lo = hi = nan
    if n >= MIN_N_CI:
        lo, hi = _bootstrap((x,), _median, rng, n_boot)
    return GroupStats(n, int(raw.size - n), median, mean, stdev, cv, lo, hi, note,
                      int(outlier_mask(x).sum()))


@dataclass(frozen=True)
class RatioStats:
    ratio: float
    ci_low: float
    ci_high: float
    note: str

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    @property
    def significant(self) -> bool:
        """The interval excludes 1 (False when there is no interval)."""
        return self.has_ci and (self.ci_low > 1 or self.ci_high < 1)


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
