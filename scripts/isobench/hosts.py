"""Overheads over several hosts: each host on its own, and the hosts of one hardware group pooled.

The input is the cells' per-round values (:func:`isobench.rounds.cell_values`) with a ``host``
column (:func:`host_values` builds it host by host: round numbers are per host). Pairing never
crosses hosts: an environment's round r on host A is paired with the baseline's round r on host A
only.

* **Per host** (:func:`per_host`): exactly the single-host overhead of
  :func:`isobench.aggregate.overhead`, host by host: the per-round log ratios
  d_r = log(E_r / baseline_r), ratio exp(mean d), the t-interval over rounds
  (:func:`isobench.stats.paired_ratio`; no interval below :data:`isobench.stats.MIN_ROUNDS_CI` rounds).
* **Pooled over a group** (:func:`pooled`, :func:`pool_log_ratios`): two levels, the rounds inside a
  host and the hosts. Every host weighs the same: with m_h the mean of host h's log ratios
  (n_h rounds, SD s_h) and H hosts, the pooled ratio is exp(mean_h m_h).

  - *These hosts* (fixed effect: the mean overhead of exactly these machines): SE =
    sqrt(sum_h s_h^2 / n_h) / H, t with the Welch-Satterthwaite degrees of freedom
    (sum v_h)^2 / sum(v_h^2 / (n_h - 1)), v_h = s_h^2 / n_h.
  - *Hosts of this kind* (random effect: what another machine of the group would show): t over the
    H host means, H - 1 degrees of freedom, SE = max(SD(m_h) / sqrt(H), the fixed SE): the host means
    cannot vary less than their own rounds' noise says, so a by-chance small spread of few host
    means never makes it narrower than the fixed interval (the "modified Hartung-Knapp" rule,
    Roever, Knapp & Friede 2015). With few hosts it is wide (1 df with 2 hosts: t = 12.7), and its
    note says so.
  - *Heterogeneity*: one-way ANOVA (``scipy.stats.f_oneway``) of the hosts' per-round log ratios,
    host as the factor (p small: the hosts differ by more than their rounds' noise); the SD of the
    host means (``sd_between_log``) and, net of the rounds' noise, the method-of-moments between-host
    SD tau = sqrt(max(0, var(m_h) - mean_h v_h)).

  **Which hosts count**: a host contributes when it has at least :data:`MIN_ROUNDS_HOST` (2) paired
  rounds (its s_h must exist), also when it has fewer than ``MIN_ROUNDS_CI`` and so no interval of
  its own; hosts with fewer are left out and named (``left_out``). A group gets a row for a
  comparison when at least 2 of its hosts measured it; its intervals need >= 2 contributing hosts
  and >= ``MIN_ROUNDS_CI`` contributing rounds in total (the single-host rule).

Everything is a pure function of its arguments; rows are sorted by their keys.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import aggregate, rounds, stats

#: a host with fewer paired rounds than this does not contribute to a pooled estimate
MIN_ROUNDS_HOST = 2
#: fewer hosts than this: the hosts-of-this-kind interval is flagged as wide in its note
FEW_HOSTS = 5

POOLED_METHOD = (f"equal weight per host: exp(mean over hosts of the host means of the per-round log ratios); "
                 f"these hosts: {stats.CONFIDENCE:.0%} t-interval, SE sqrt(sum s_h^2/n_h)/H, Welch-Satterthwaite df; "
                 f"hosts of this kind: t over the H host means (H-1 df), SE never below the fixed one; "
                 f"hosts with < {MIN_ROUNDS_HOST} rounds left out; no interval below {stats.MIN_ROUNDS_CI} "
                 f"rounds in total or 2 hosts")

PER_HOST_COLUMNS = {
    "host": "string", "group": "string", "env": "string", "baseline": "string", "workload": "string",
    "metric": "string", "point": "string", "unit": "string", "higher_is_better": "bool", "primary": "bool",
    "emulated": "bool", "n": "int64", "median": "float64", "median_baseline": "float64",
    "ratio": "float64", "ratio_ci_low": "float64", "ratio_ci_high": "float64", "ci_note": "string",
    "sd_log": "float64", "halfwidth_pct": "float64", "p_value": "float64",
    "overhead_pct": "float64", "overhead_ci_low": "float64", "overhead_ci_high": "float64",
}

#: ratio_ci_* / overhead_ci_* / halfwidth_pct: these hosts (fixed effect);
#: *_re_*: hosts of this kind (random effect)
POOLED_COLUMNS = {
    "group": "string", "env": "string", "baseline": "string", "workload": "string", "metric": "string",
    "point": "string", "unit": "string", "higher_is_better": "bool", "primary": "bool", "emulated": "bool",
    "n_hosts": "int64", "hosts": "string", "left_out": "string", "n_rounds": "int64",
    "ratio": "float64", "ratio_ci_low": "float64", "ratio_ci_high": "float64", "df": "float64",
    "halfwidth_pct": "float64", "ci_note": "string",
    "ratio_re_ci_low": "float64", "ratio_re_ci_high": "float64", "df_re": "int64",
    "halfwidth_re_pct": "float64", "re_ci_note": "string",
    "overhead_pct": "float64", "overhead_ci_low": "float64", "overhead_ci_high": "float64",
    "overhead_re_ci_low": "float64", "overhead_re_ci_high": "float64",
    "het_p_value": "float64", "sd_between_log": "float64", "tau_log": "float64",
}


def host_values(cells: pd.DataFrame) -> pd.DataFrame:
    """:func:`isobench.rounds.cell_values` host by host (rounds are numbered per host), with ``host``."""
    parts = [rounds.cell_values(g).assign(host=str(h)) for h, g in cells.groupby("host", sort=True)]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return rounds.cell_values(cells.iloc[:0]).assign(host=pd.Series(dtype=object))
    return pd.concat(parts, ignore_index=True)


KEY = ["host", "workload", "env", "metric", "point"]


@dataclass(frozen=True)
class Comparison:
    """One environment against the baseline on one host: its labels and its paired rounds."""
    host: str
    workload: str
    env: str
    metric: str
    point: str
    unit: str
    higher_is_better: bool
    emulated: bool
    x: np.ndarray          # the environment's per-round values
    y: np.ndarray          # the baseline's, same host and round


def comparisons(values: pd.DataFrame, *, baseline: str, gaps: dict[str, float] | None = None) -> list[Comparison]:
    """Every (host, workload, env != baseline, metric, point) whose metric and point the host's
    baseline measured, with the rounds paired as :func:`isobench.rounds.paired` pairs them, host by
    host: same host and round, less the rounds whose two cells started more than the workload's
    ``gaps`` (max_pair_gap_s) apart. One merge for all hosts (``rounds.paired`` per comparison costs
    milliseconds of pandas, times thousands of comparisons on a cluster). Sorted by key."""
    gaps = gaps or {}
    if values.empty:
        return []
    on = ["host", "workload", "metric", "point", "round"]
    base = values[values["env"] == baseline]
    env = values[values["env"] != baseline]
    keys = env.drop_duplicates(KEY).merge(base[on[:-1]].drop_duplicates(), on=on[:-1])
    pairs = env[[*KEY, "round", "value", "started_at"]].merge(
        base[[*on, "value", "started_at"]], on=on, suffixes=("", "_base"))
    gap = pairs["workload"].map(lambda w: float(gaps.get(w, math.inf))).to_numpy(np.float64)
    apart = (pairs["started_at"] - pairs["started_at_base"]).abs().dt.total_seconds().to_numpy(np.float64)
    pairs = pairs[~np.isfinite(gap) | (apart <= gap)].sort_values([*KEY, "round"], kind="mergesort")
    x_all, y_all = pairs["value"].to_numpy(np.float64), pairs["value_base"].to_numpy(np.float64)
    index = pairs.groupby(KEY, sort=False).indices if len(pairs) else {}
    none = np.array([], dtype=np.int64)
    out = []
    for k in sorted(keys[[*KEY, "unit", "higher_is_better", "emulated"]].itertuples(index=False, name=None)):
        i = index.get(tuple(k[:5]), none)
        out.append(Comparison(*map(str, k[:6]), bool(k[6]), bool(k[7]), x_all[i], y_all[i]))
    return out


def per_host(values: pd.DataFrame, *, baseline: str, primary: dict[str, set[str]],
             gaps: dict[str, float] | None = None, groups: dict[str, str] | None = None) -> pd.DataFrame:
    """Every (host, env != baseline, workload, metric, point) against the same host's baseline,
    paired per round as :func:`isobench.aggregate.overhead` does (see the module doc). ``gaps``:
    workload -> max_pair_gap_s; ``groups``: host -> group (only fills the ``group`` column)."""
    groups = groups or {}
    rows = []
    for c in comparisons(values, baseline=baseline, gaps=gaps):
        ps = stats.paired_ratio(c.x, c.y)
        lo, hi = stats.overhead_interval(ps.ci_low, ps.ci_high, c.higher_is_better)
        rows.append({
            "host": c.host, "group": groups.get(c.host) or "", "env": c.env, "baseline": baseline,
            "workload": c.workload, "metric": c.metric, "point": c.point, "unit": c.unit,
            "higher_is_better": c.higher_is_better, "primary": c.metric in primary.get(c.workload, set()),
            "emulated": c.emulated, "n": ps.n,
            "median": float(np.median(c.x)) if c.x.size else math.nan,
            "median_baseline": float(np.median(c.y)) if c.y.size else math.nan,
            "ratio": ps.ratio, "ratio_ci_low": ps.ci_low, "ratio_ci_high": ps.ci_high, "ci_note": ps.note,
            "sd_log": ps.sd_log, "halfwidth_pct": ps.halfwidth_pct,
            "p_value": ps.p_value if ps.has_ci else math.nan,
            "overhead_pct": stats.overhead_pct(ps.ratio, c.higher_is_better),
            "overhead_ci_low": lo, "overhead_ci_high": hi,
        })
    return aggregate._frame(rows, PER_HOST_COLUMNS)


# -- pooling -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PooledStats:
    """One comparison pooled over the hosts of a group (see the module doc); logs are natural logs."""
    hosts: tuple[str, ...]         # contributing hosts (>= MIN_ROUNDS_HOST rounds each)
    left_out: tuple[tuple[str, int], ...]   # (host, rounds) of the hosts with too few rounds
    n_rounds: int                  # contributing rounds in total
    ratio: float                   # exp(mean of the host means)
    ci_low: float                  # these hosts (fixed effect)
    ci_high: float
    df: float                      # Welch-Satterthwaite
    halfwidth_pct: float
    note: str
    re_ci_low: float               # hosts of this kind (random effect)
    re_ci_high: float
    df_re: int
    halfwidth_re_pct: float
    re_note: str
    het_p_value: float             # one-way ANOVA over hosts of the per-round log ratios
    sd_between_log: float          # SD of the host means
    tau_log: float                 # between-host SD net of the rounds' noise (method of moments)

    @property
    def n_hosts(self) -> int:
        return len(self.hosts)


def _t(df: float) -> float:
    return float(sps.t.ppf(0.5 + stats.CONFIDENCE / 2, df))


def pool_log_ratios(d_by_host: dict[str, np.ndarray]) -> PooledStats:
    """Pool the per-round log ratios of each host (already paired within the host)."""
    d_by_host = {h: np.asarray(d, dtype=np.float64) for h, d in sorted(d_by_host.items())}
    use = {h: d for h, d in d_by_host.items() if d.size >= MIN_ROUNDS_HOST}
    left = tuple((h, int(d.size)) for h, d in d_by_host.items() if d.size < MIN_ROUNDS_HOST)
    nan = math.nan
    left_out = ([f"left out (< {MIN_ROUNDS_HOST} rounds): " + ", ".join(f"{h} ({k})" for h, k in left)]
                if left else [])

    def note(*parts: str) -> str:
        return "; ".join([*filter(None, parts), *left_out])

    H = len(use)
    n = np.array([d.size for d in use.values()], dtype=np.float64)
    total = int(n.sum())
    if H == 0:
        return PooledStats((), left, 0, nan, nan, nan, nan, nan, note("no host with enough rounds"),
                           nan, nan, 0, nan, "", nan, nan, nan)
    m = np.array([d.mean() for d in use.values()])
    mean = float(m.mean())
    ratio = math.exp(mean)
    if H < 2:
        one = note(f"1 host with >= {MIN_ROUNDS_HOST} rounds: no pooled interval")
        return PooledStats(tuple(use), left, total, ratio, nan, nan, nan, nan, one, nan, nan, 0, nan, one,
                           nan, nan, nan)
    v = np.array([d.var(ddof=1) for d in use.values()]) / n
    se_f = math.sqrt(v.sum()) / H
    denom = float(np.sum(v ** 2 / (n - 1)))
    df = float(v.sum() ** 2 / denom) if denom > 0 else float(np.sum(n - 1))
    sd_b = float(m.std(ddof=1))
    tau = math.sqrt(max(0.0, float(m.var(ddof=1)) - float(v.mean())))
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")     # no variance within hosts: F is infinite or undefined
        het = float(sps.f_oneway(*use.values()).pvalue)
    if not math.isfinite(het):              # no noise within hosts: they differ for certain, or not at all
        het = 0.0 if sd_b > 0 else 1.0
    se_raw = sd_b / math.sqrt(H)
    se_r = max(se_raw, se_f)
    re_parts = []
    if H < FEW_HOSTS:
        re_parts.append(f"{H} hosts: {H - 1} df (t = {_t(H - 1):.1f}), wide with few hosts")
    if se_raw < se_f:
        re_parts.append("host means vary less than their rounds' noise: the fixed SE used")
    if total < stats.MIN_ROUNDS_CI:
        few = note(f"{total} rounds < {stats.MIN_ROUNDS_CI}: no interval")
        return PooledStats(tuple(use), left, total, ratio, nan, nan, df, nan, few, nan, nan, H - 1, nan, few,
                           het, sd_b, tau)
    half_f, half_r = _t(df) * se_f, _t(H - 1) * se_r
    return PooledStats(tuple(use), left, total, ratio, math.exp(mean - half_f), math.exp(mean + half_f), df,
                       (math.exp(half_f) - 1) * 100, note(),
                       math.exp(mean - half_r), math.exp(mean + half_r), H - 1, (math.exp(half_r) - 1) * 100,
                       note(*re_parts), het, sd_b, tau)


def pooled(values: pd.DataFrame, *, baseline: str, groups: dict[str, str], primary: dict[str, set[str]],
           gaps: dict[str, float] | None = None) -> pd.DataFrame:
    """Every group of >= 2 hosts (``groups``: host -> group; hosts without one are not pooled) and
    every comparison at least 2 of its hosts measured: the pooled overhead with both intervals and
    the heterogeneity between hosts (see the module doc)."""
    members: dict[str, set[str]] = {}
    for h, g in groups.items():
        if g:
            members.setdefault(g, set()).add(h)
    by_key: dict[tuple[str, str, str, str, str], list[Comparison]] = {}
    for c in comparisons(values, baseline=baseline, gaps=gaps):
        g = groups.get(c.host)
        if g and len(members[g]) >= 2:
            by_key.setdefault((g, c.workload, c.env, c.metric, c.point), []).append(c)
    rows = []
    for (group, wl, env, metric, point), cs in sorted(by_key.items()):
        if len(cs) < 2:
            continue
        p = pool_log_ratios({c.host: stats.log_ratios(c.x, c.y) for c in cs})
        hib = cs[0].higher_is_better
        lo, hi = stats.overhead_interval(p.ci_low, p.ci_high, hib)
        rlo, rhi = stats.overhead_interval(p.re_ci_low, p.re_ci_high, hib)
        rows.append({
            "group": group, "env": env, "baseline": baseline, "workload": wl, "metric": metric,
            "point": point, "unit": cs[0].unit, "higher_is_better": hib,
            "primary": metric in primary.get(wl, set()), "emulated": cs[0].emulated,
            "n_hosts": p.n_hosts, "hosts": ",".join(p.hosts),
            "left_out": ", ".join(f"{h} ({k} rounds)" for h, k in p.left_out), "n_rounds": p.n_rounds,
            "ratio": p.ratio, "ratio_ci_low": p.ci_low, "ratio_ci_high": p.ci_high, "df": p.df,
            "halfwidth_pct": p.halfwidth_pct, "ci_note": p.note,
            "ratio_re_ci_low": p.re_ci_low, "ratio_re_ci_high": p.re_ci_high, "df_re": p.df_re,
            "halfwidth_re_pct": p.halfwidth_re_pct, "re_ci_note": p.re_note,
            "overhead_pct": stats.overhead_pct(p.ratio, hib), "overhead_ci_low": lo, "overhead_ci_high": hi,
            "overhead_re_ci_low": rlo, "overhead_re_ci_high": rhi,
            "het_p_value": p.het_p_value, "sd_between_log": p.sd_between_log, "tau_log": p.tau_log,
        })
    return aggregate._frame(rows, POOLED_COLUMNS)


def compare(cell_files: list[Path], out: dict[str, Path], *, baseline: str, groups: dict[str, str],
            primary: dict[str, set[str]], gaps: dict[str, float]) -> None:
    """The host comparison of a cluster run, from every host's aggregated cells (rounds the sentinel
    flagged are left out, as each host's own aggregate does): ``out`` names hosts(.parquet, _csv)
    and groups(.parquet, _csv)."""
    cells = pd.concat([pd.read_parquet(f) for f in cell_files], ignore_index=True)
    if "flagged" in cells:
        cells = cells[~cells["flagged"]]
    values = host_values(cells)
    meta = {"baseline": baseline, "confidence": stats.CONFIDENCE, "ci_method": stats.PAIRED_METHOD,
            "pooled_method": POOLED_METHOD, "groups": groups}
    aggregate._write(per_host(values, baseline=baseline, primary=primary, gaps=gaps, groups=groups),
                     Path(out["hosts"]), Path(out["hosts_csv"]), meta)
    aggregate._write(pooled(values, baseline=baseline, groups=groups, primary=primary, gaps=gaps),
                     Path(out["groups"]), Path(out["groups_csv"]), meta)
