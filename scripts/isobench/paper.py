"""The paper's results as data (report/paper_results.yaml), and how our results compare with them.

Felter et al. report each configuration's mean and its change against native. We compare *ratios to
native* (ours: the geometric mean of the per-round ratios, each cell's value the median of its
iterations; theirs: ratio of means), never absolute numbers: their host (2 x 8
core Xeon, 10 GbE, a flash array over Fibre Channel) is not ours, but what isolation costs relative
to the same host's bare metal is the claim under test.

Mapping our environments to the paper's configurations (``configurations`` in the YAML): each has a
``match`` on the environment manifest (``driver`` and the keys of ``settings``): lxc net=nat is
Docker NAT, net=host Docker net=host, storage=rootfs the AUFS variant, storage=volume a Docker
volume; kvm tuning=tuned/untuned is KVM-tuned/-untuned, any non-emulated kvm the single "KVM" of the
I/O tests. Of the configurations the paper measured for a figure, the most specific matching one is
used; lxc net=bridge matches none of the network or database ones (the paper has no counterpart).

Mapping our workloads: a YAML entry ``match``es on the workload kind and parameters; ``approx``
parameters may differ (noted in the comparison). Among several matching entries the one with the most
matched plus agreeing ``approx`` keys wins (then file order). Our
metric names (or their ``aliases``) select the metric, ``point`` (``connections=10``) the sweep point.

Sweep points scaled to the host (``scale_points: {var: threads, per_cpus: 32}`` on an entry): the
paper's value N of ``var`` was run on ``per_cpus`` CPUs, and our config runs it at the same count per
CPU, max(1, round(N x cpus / per_cpus)) with the environment's ``settings.cpus`` (Python's round, as
config/paper.yaml's rule). Our point ``threads=n`` is compared with the paper point whose scaled value
is n, and the note says which (``paper threads=150 on 32 CPUs = 9 here``); none when no paper point
scales to n, when several do, or when the environment's CPU count is not known (each with its reason).

Verdict rule (:data:`VERDICT_RULE`): an equivalence test around the paper's own ratio r with the
tolerance t (``tolerance`` in the YAML, 0.05): the band [r/(1+t), r(1+t)]. Ours is our 95 %
interval [ratio_ci_low, ratio_ci_high] of the geometric mean of the per-round ratios (the
sequential interval of isobench.decision), not its point estimate. "agrees" when our whole
interval lies inside the band, "differs" when it lies entirely outside it (no overlap: ours
differs from the paper's by more than t), "inconclusive" otherwise. (Until #25 the band was put
around 1 and the paper's ratio only classed as same/above/below: paper 1.06 against ours
[1.4, 1.6] "agreed".) Without an interval (too few rounds) the verdict is "inconclusive" and the
note says so. Before comparing, our metric's direction (higher or lower is better) must be the
paper's; if not, "not comparable". Units are compared after normalising case and whitespace (and
Unicode compatibility forms: the micro sign is the Greek mu): if they differ the note says so and
the ratios are still compared (a ratio is unit-free once the direction agrees).
"not comparable" also when the environment is emulated (TCG, never a KVM figure), measured on another
host than the baseline, has no counterpart configuration, or the workload, metric or sweep point is
not in the paper, or our ratio is undefined; the reason is always given.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .stats import CONFIDENCE

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "report" / "paper_results.yaml"
BASELINE_CONFIG = "native"
TAGS = {
    "repo": "read or computed from the authors' artifact repository",
    "R=repo": "recalled from the paper and confirmed by the repository",
    "R": "recalled from the paper, not verified against the PDF",
    "sec": "stated by a secondary source quoting the paper",
}
AGREES, DIFFERS, INCONCLUSIVE, NOT_COMPARABLE = "agrees", "differs", "inconclusive", "not comparable"
#: the verdicts that put a paper figure beside ours (the rest are "not comparable", with a reason)
JUDGED = (AGREES, DIFFERS, INCONCLUSIVE)
EMULATED_REASON = "emulated CPU (TCG): not a KVM figure"
NO_INTERVAL_NOTE = "no interval (fewer rounds than needed)"
DEFAULT_TOLERANCE = 0.05


def verdict_rule(tolerance: float = DEFAULT_TOLERANCE) -> str:
    """The rule in words, for the report."""
    t = f"{tolerance:.0%}"
    return (f"An equivalence test around the paper's own ratio to native r (a ratio of means): the band of "
            f"ratios within ±{t} of it, [r/{1 + tolerance:g}, r×{1 + tolerance:g}]. Ours is the {CONFIDENCE:.0%} "
            f"interval of the geometric mean of our per-round ratios (sequentially valid), not its point "
            f"estimate: '{AGREES}' when our whole interval lies inside the band, '{DIFFERS}' when it lies "
            f"entirely outside it (ours differs from the paper's by more than {t}), '{INCONCLUSIVE}' when it "
            f"reaches across an edge of the band or we have no interval (too few rounds). Our metric's "
            f"direction (higher or lower is better) must be the paper's, else '{NOT_COMPARABLE}'; if only the "
            f"units differ the note says so and the ratios are still compared. '{NOT_COMPARABLE}' is given "
            f"with its reason: emulated CPU (TCG), another host, a direction that differs from the paper's, no "
            f"counterpart configuration in the paper, a workload, metric or sweep point the paper did not "
            f"measure, or an undefined ratio.")


VERDICT_RULE = verdict_rule()


@dataclass(frozen=True)
class Configuration:
    key: str
    label: str
    match: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Figure:
    """One number of the paper: a configuration's value (or ratio) for a metric at a sweep point."""
    entry: str
    metric: str
    point: str
    config: str
    value: float | None
    ratio: float
    source: str
    confidence: str
    note: str = ""


@dataclass(frozen=True)
class MetricSpec:
    name: str
    aliases: tuple[str, ...]
    unit: str
    higher_is_better: bool
    #: point ("" without a sweep) -> config -> figure
    points: dict[str, dict[str, Figure]]

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class PointScale:
    """The paper ran sweep variable ``var`` on ``per_cpus`` CPUs; ours runs the same count per CPU."""
    var: str
    per_cpus: int

    def scaled(self, n: float, cpus: int) -> int:
        """The paper's value ``n`` on ``cpus`` CPUs: max(1, round(n x cpus / per_cpus))."""
        return max(1, round(n * cpus / self.per_cpus))


@dataclass(frozen=True)
class Entry:
    """One workload of the paper (an item of ``workloads`` in the YAML): which of ours it ``match``es,
    the parameters that may differ (``approx``), its metrics with their figures, and how its sweep
    points scale to our environments (``scale_points``, None: compared as they are)."""
    id: str
    title: str
    match: dict[str, Any]
    approx: dict[str, Any]
    source: str
    confidence: str
    metrics: dict[str, MetricSpec]
    scale_points: PointScale | None = None


@dataclass(frozen=True)
class Paper:
    tolerance: float
    configurations: dict[str, Configuration]
    entries: list[Entry] = field(default_factory=list)

    def figures(self) -> list[Figure]:
        return [f for e in self.entries for m in e.metrics.values() for pt in m.points.values()
                for f in pt.values()]


# -- loading ---------------------------------------------------------------------------------------
def _figure(entry: str, metric: str, point: str, config: str, raw: Any, native: float | None,
            source: str, confidence: str) -> Figure:
    note = ""
    if isinstance(raw, dict):
        source, confidence = raw.get("source", source), raw.get("confidence", confidence)
        note = raw.get("note", "")
        value, ratio = raw.get("value"), raw.get("ratio")
    else:
        value, ratio = raw, None
    where = f"paper_results: {entry}.{metric}{'@' + point if point else ''}.{config}"
    if value is None and ratio is None:
        raise ValueError(f"{where}: needs value or ratio")
    if ratio is None:
        if not native:
            raise ValueError(f"{where}: a value needs the native value of the same point to make a ratio")
        ratio = float(value) / float(native)
    if not source:
        raise ValueError(f"{where}: no source")
    if confidence not in TAGS:
        raise ValueError(f"{where}: confidence {confidence!r} is not one of {', '.join(TAGS)}")
    return Figure(entry, metric, point, config, None if value is None else float(value), float(ratio),
                  str(source), str(confidence), str(note))


_POINT = re.compile(r"^(?P<var>[A-Za-z_][\w.-]*)=(?P<value>-?\d+(?:\.\d+)?)$")


def _split_point(point: str) -> tuple[str, float] | None:
    """("threads", 150.0) of "threads=150"; None for "" or a point that is not var=number."""
    m = _POINT.match(point or "")
    return (m["var"], float(m["value"])) if m else None


def _point_scale(entry_id: str, raw: Any, metrics: dict[str, MetricSpec]) -> PointScale | None:
    if raw is None:
        return None
    where = f"paper_results: {entry_id}.scale_points"
    if not isinstance(raw, dict) or set(raw) != {"var", "per_cpus"}:
        raise ValueError(f"{where}: needs exactly var and per_cpus, got {raw!r}")
    per = raw["per_cpus"]
    if isinstance(per, bool) or not isinstance(per, int) or per < 1:
        raise ValueError(f"{where}: per_cpus must be a positive integer, got {per!r}")
    scale = PointScale(str(raw["var"]), per)
    for spec in metrics.values():
        for point in spec.points:
            split = _split_point(point)
            if split is None or split[0] != scale.var:
                raise ValueError(f"{where}: point {point or '(none)'!r} of {spec.name} is not {scale.var}=<number>")
    return scale


def load(path: Path | str = DEFAULT_PATH) -> Paper:
    """Read and check the paper's results; every figure gets a ratio, a source and a confidence tag."""
    doc = yaml.safe_load(Path(path).read_text())
    configs = {k: Configuration(k, v["label"], dict(v["match"]), v.get("description", ""))
               for k, v in doc["configurations"].items()}
    if BASELINE_CONFIG not in configs:
        raise ValueError(f"paper_results: configuration {BASELINE_CONFIG!r} is required")
    entries = []
    for e in doc["workloads"]:
        metrics = {}
        for mname, m in e["metrics"].items():
            source, confidence = m.get("source", e.get("source", "")), m.get("confidence", e.get("confidence", ""))
            raw_points = m["points"] if "points" in m else {"": m["values"]}
            points = {}
            for point, by_config in raw_points.items():
                unknown = set(by_config) - set(configs)
                if unknown:
                    raise ValueError(f"paper_results: {e['id']}.{mname}: unknown configuration(s) {sorted(unknown)}")
                native = by_config.get(BASELINE_CONFIG)
                native = native.get("value") if isinstance(native, dict) else native
                points[str(point)] = {c: _figure(e["id"], mname, str(point), c, v, native, source, confidence)
                                      for c, v in by_config.items()}
            metrics[mname] = MetricSpec(mname, tuple(m.get("aliases", ())), m["unit"],
                                        bool(m["higher_is_better"]), points)
        entries.append(Entry(e["id"], e["title"], dict(e["match"]), dict(e.get("approx", {})),
                             e.get("source", ""), e.get("confidence", ""), metrics,
                             _point_scale(e["id"], e.get("scale_points"), metrics)))
    return Paper(float(doc.get("tolerance", DEFAULT_TOLERANCE)), configs, entries)


# -- matching --------------------------------------------------------------------------------------
def _norm(v: Any) -> str:
    return str(v).strip().lower()


def matches(match: dict[str, Any], facts: dict[str, Any]) -> bool:
    """Every key of ``match`` is in ``facts`` with an equal value (a list means any of its values)."""
    for key, want in match.items():
        if key not in facts:
            return False
        options = want if isinstance(want, list) else [want]
        if _norm(facts[key]) not in {_norm(o) for o in options}:
            return False
    return True


def env_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    return {**(manifest.get("settings") or {}), "driver": manifest.get("driver")}


def workload_facts(meta: dict[str, Any]) -> dict[str, Any]:
    return {**(meta.get("params") or {}), "kind": meta.get("kind")}


@dataclass(frozen=True)
class MetricMatch:
    entry: Entry | None
    spec: MetricSpec | None
    #: why there is no match, or how the match is approximate
    note: str


def find_metric(paper: Paper, workload_meta: dict[str, Any], metric: str) -> MetricMatch:
    """The paper entry and metric our workload's metric corresponds to (best ``approx`` agreement)."""
    facts = workload_facts(workload_meta)
    candidates = [e for e in paper.entries if matches(e.match, facts)]
    if not candidates:
        return MetricMatch(None, None, f"workload not in the paper (no entry for kind={facts.get('kind')} "
                                       f"with these parameters)")
    scored = []
    for order, e in enumerate(candidates):
        for spec in e.metrics.values():
            if metric in spec.names():
                # specific entries first: every matched key and every agreeing approx key counts
                agree = sum(1 for k, v in e.approx.items() if k in facts and _norm(facts[k]) == _norm(v))
                scored.append((-(len(e.match) + agree), order, e, spec))
    if not scored:
        known = sorted({n for e in candidates for s in e.metrics.values() for n in s.names()})
        return MetricMatch(None, None, f"metric not in the paper (it reports {', '.join(known)})")
    _, _, entry, spec = min(scored, key=lambda t: t[:2])
    diffs = [(k, v, facts.get(k, "unset")) for k, v in entry.approx.items()
             if _norm(facts.get(k, "unset")) != _norm(v)]
    note = ""
    if diffs:
        note = ("approximate: paper " + " ".join(f"{k}={v}" for k, v, _ in diffs)
                + "; ours " + " ".join(f"{k}={o}" for k, _, o in diffs))
    return MetricMatch(entry, spec, note)


def config_for(paper: Paper, candidates: list[str], manifest: dict[str, Any]) -> tuple[str | None, str]:
    """The most specific of the paper's configurations (among ``candidates``) this environment matches."""
    facts = env_facts(manifest)
    if matches(paper.configurations[BASELINE_CONFIG].match, facts):
        return None, ("another bare-metal environment: an A/A check against the baseline, not one of the "
                      "paper's configurations (see the A/A calibration)")
    hits = [c for c in candidates if c != BASELINE_CONFIG and matches(paper.configurations[c].match, facts)]
    if not hits:
        labels = ", ".join(paper.configurations[c].label for c in candidates if c != BASELINE_CONFIG)
        keys = sorted({k for c in candidates if c != BASELINE_CONFIG for k in paper.configurations[c].match}
                      - {"driver"})
        shown = " ".join([f"driver={facts.get('driver')}"] + [f"{k}={facts.get(k, 'unset')}" for k in keys])
        return None, f"no counterpart configuration in the paper for {shown} (the paper measured {labels})"
    best = max(hits, key=lambda c: (len(paper.configurations[c].match), -candidates.index(c)))
    return best, ""


def classify(ratio: float, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """'same', 'above' or 'below' 1, with a band of ±tolerance (a description of a ratio; the
    verdict no longer uses it, see :func:`verdict`)."""
    if ratio > 1 + tolerance:
        return "above"
    if ratio < 1 - tolerance:
        return "below"
    return "same"


def band(paper_ratio: float, tolerance: float = DEFAULT_TOLERANCE) -> tuple[float, float]:
    """The ratios within ``tolerance`` of the paper's own ratio: [r / (1 + t), r (1 + t)] (symmetric
    in log ratio, as the equivalence margins of isobench.decision)."""
    return paper_ratio / (1 + tolerance), paper_ratio * (1 + tolerance)


def verdict(ci_low: float, ci_high: float, paper_ratio: float, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """Our interval [ci_low, ci_high] against the paper's ratio r: agrees / differs / inconclusive.

    An equivalence test around the paper's value: agrees when the whole interval lies inside
    :func:`band` [r/(1+t), r(1+t)] (ours is the paper's within the tolerance, TOST on our
    interval); differs when the interval lies entirely outside the band (ours differs from the
    paper's by more than the tolerance); inconclusive otherwise (the interval reaches across an edge
    of the band), or without an interval (NaN bounds). The band is closed."""
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return INCONCLUSIVE
    if ci_low > ci_high:
        raise ValueError(f"interval [{ci_low}, {ci_high}] is reversed")
    lo, hi = band(paper_ratio, tolerance)
    if lo <= ci_low and ci_high <= hi:
        return AGREES
    if ci_high < lo or ci_low > hi:
        return DIFFERS
    return INCONCLUSIVE


def _direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def _unit(u: Any) -> str:
    """A unit for comparison: compatibility-normalised (micro sign = Greek mu), case and whitespace ignored."""
    return "".join(unicodedata.normalize("NFKC", str(u or "")).lower().split())


def direction_reason(ours_higher_is_better: bool, spec: MetricSpec) -> str:
    """Why the metrics cannot be compared because their directions differ ("" when they agree)."""
    if bool(ours_higher_is_better) == bool(spec.higher_is_better):
        return ""
    return (f"directions differ (ours {_direction(bool(ours_higher_is_better))}, the paper's "
            f"{_direction(spec.higher_is_better)}): ratios not comparable")


def unit_note(ours: Any, spec: MetricSpec) -> str:
    """A note when the units differ ("" when they are the same up to case and whitespace)."""
    if _unit(ours) == _unit(spec.unit):
        return ""
    return f"units differ (ours {ours}, paper {spec.unit}): ratios compared"


def _float(x: Any) -> float:
    """A number, NaN for a missing one (None, pd.NA)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _finite(x: Any) -> bool:
    return math.isfinite(_float(x))


def env_cpus(manifest: dict[str, Any]) -> int | None:
    """The environment's CPU count from its manifest (``settings.cpus``), None when not given."""
    cpus = (manifest.get("settings") or {}).get("cpus")
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        return None
    return cpus


@dataclass(frozen=True)
class PointMatch:
    #: the paper's point our point stands for (None: none)
    point: str | None
    #: how the paper's point maps to ours ("" when it is the same), or why there is none
    note: str
    #: no match only because the environment's CPU count is unknown
    needs_cpus: bool = False


def paper_point(entry: Entry, spec: MetricSpec, point: str, manifest: dict[str, Any]) -> PointMatch:
    """The paper's sweep point our ``point`` is compared with (the module doc's scaling rule)."""
    scale, split = entry.scale_points, _split_point(point)
    if scale is None or split is None or split[0] != scale.var:
        if point in spec.points:
            return PointMatch(point, "")
        shown = ", ".join(p for p in spec.points if p) or "no sweep"
        return PointMatch(None, f"sweep point {point or '(none)'} not in the paper (paper: {shown})")
    var, ours = split
    cpus = env_cpus(manifest)
    if cpus is None:
        return PointMatch(None, f"sweep point {point} not matched: the paper's {var} were run on {scale.per_cpus} "
                                f"CPUs and scale to the environment's CPU count, which its manifest does not "
                                f"give (settings.cpus)", needs_cpus=True)
    scaled = {p: scale.scaled(_split_point(p)[1], cpus) for p in sorted(spec.points, key=lambda p: _split_point(p)[1])}
    hits = [p for p, n in scaled.items() if n == ours]
    if len(hits) > 1:
        return PointMatch(None, f"sweep point {point} not matched: the paper's {', '.join(hits)} on "
                                f"{scale.per_cpus} CPUs all scale to {var}={ours:g} on {cpus} CPUs")
    if not hits:
        shown = ", ".join(f"{p}->{n}" for p, n in scaled.items())
        return PointMatch(None, f"sweep point {point} not in the paper (paper on {scale.per_cpus} CPUs, scaled "
                                f"to {cpus} CPUs: {shown})")
    if cpus == scale.per_cpus:  # the paper's own CPU count: its points as they are
        return PointMatch(hits[0], "")
    return PointMatch(hits[0], f"paper {hits[0]} on {scale.per_cpus} CPUs = {ours:g} here ({cpus} CPUs)")


COMPARISON_COLUMNS = ["env", "workload", "metric", "point", "ratio", "ratio_ci_low", "ratio_ci_high",
                      "paper_entry", "paper_title", "paper_config", "paper_label", "paper_ratio",
                      "paper_value", "paper_native", "unit_paper", "source", "confidence", "note",
                      "verdict", "reason"]


def compare(overhead: pd.DataFrame, manifests: dict[str, dict[str, Any]], workloads: dict[str, dict[str, Any]],
            paper: Paper) -> pd.DataFrame:
    """One row per overhead row: the paper's ratio beside ours and the verdict (rule: module doc).

    Reads the overhead columns env, driver, workload, metric, point, unit, higher_is_better, ratio,
    ratio_ci_low, ratio_ci_high, ci_note, emulated, comparable and reason.
    """
    rows = []
    for o in overhead.itertuples(index=False):
        row: dict[str, Any] = {"env": o.env, "workload": o.workload, "metric": o.metric, "point": o.point,
                               "ratio": o.ratio, "ratio_ci_low": o.ratio_ci_low, "ratio_ci_high": o.ratio_ci_high}
        reason = ""
        meta = workloads.get(o.workload)
        mm = find_metric(paper, meta, o.metric) if meta else MetricMatch(None, None, "workload not described")
        fig = None
        if mm.spec is None:
            reason = mm.note
        else:
            row.update(paper_entry=mm.entry.id, paper_title=mm.entry.title, unit_paper=mm.spec.unit,
                       note=mm.note)
            manifest = manifests.get(o.env, {"driver": o.driver, "settings": {}})
            pm = paper_point(mm.entry, mm.spec, o.point, manifest)
            at_point = mm.spec.points.get(pm.point) if pm.point is not None else None
            if at_point is None:
                reason = pm.note
                if pm.needs_cpus:
                    # an environment with no counterpart (an A/A one, bare metal: no CPU count) says so first
                    configs = list(dict.fromkeys(c for pt in mm.spec.points.values() for c in pt))
                    config, why = config_for(paper, configs, manifest)
                    reason = why if config is None else reason
            else:
                config, why = config_for(paper, list(at_point), manifest)
                if config is None:
                    reason = why
                else:
                    fig = at_point[config]
                    native = at_point.get(BASELINE_CONFIG)
                    row.update(paper_config=config, paper_label=paper.configurations[config].label,
                               paper_ratio=fig.ratio, paper_value=fig.value,
                               paper_native=native.value if native else None, source=fig.source,
                               confidence=fig.confidence,
                               note="; ".join(filter(None, [mm.note, pm.note, fig.note])))
        # direction and unit checked before comparing: a direction mismatch makes any ratio meaningless
        wrong_way = direction_reason(o.higher_is_better, mm.spec) if mm.spec is not None else ""
        notes = [row.get("note", "")] + ([unit_note(o.unit, mm.spec)] if mm.spec is not None else [])
        # the reasons that override any match, most important first
        if o.emulated:
            # no paper figure beside an emulated result: it must never read as a KVM comparison
            row.update({k: None for k in COMPARISON_COLUMNS if k.startswith("paper_") or k in
                        ("unit_paper", "source", "confidence", "note")})
            fig, reason, notes = None, EMULATED_REASON, []
        elif not o.comparable and o.reason:
            reason = o.reason
        elif wrong_way:
            reason = wrong_way
        elif fig is not None and not _finite(o.ratio):
            reason = "our ratio is undefined (" + (o.ci_note or "no data") + ")"
        if reason or fig is None:
            row["verdict"] = NOT_COMPARABLE
        else:
            row["verdict"] = verdict(_float(o.ratio_ci_low), _float(o.ratio_ci_high), fig.ratio, paper.tolerance)
            if not (_finite(o.ratio_ci_low) and _finite(o.ratio_ci_high)):
                notes.append(NO_INTERVAL_NOTE)
        row["reason"] = reason
        if mm.spec is not None and not o.emulated:
            row["note"] = "; ".join(filter(None, notes))
        rows.append(row)
    df = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    for col in ("paper_ratio", "paper_value", "paper_native"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in set(COMPARISON_COLUMNS) - {"ratio", "ratio_ci_low", "ratio_ci_high", "paper_ratio",
                                           "paper_value", "paper_native"}:
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
    return df
