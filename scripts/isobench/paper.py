"""The paper's results as data (report/paper_results.yaml), and how our results compare with them.

Felter et al. report each configuration's mean and its change against native. We compare *ratios to
native* (ours: ratio of medians, theirs: ratio of means), never absolute numbers: their host (2 x 8
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

Verdict rule (:data:`VERDICT_RULE`): each ratio r is put in one of three classes with the band
tolerance t (0.05): *same* if 1 - t <= r <= 1 + t, *above* if r > 1 + t, *below* if r < 1 - t.
Our class uses our point estimate (ratio of medians), the paper's its ratio of means.
"agrees in direction" when both are in the same class, "differs" otherwise. "not comparable" when the
environment is emulated (TCG, never a KVM figure), measured on another host than the baseline, has
no counterpart configuration, or the workload, metric or sweep point is not in the paper, or our ratio
is undefined; the reason is always given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "report" / "paper_results.yaml"
BASELINE_CONFIG = "native"
TAGS = {
    "repo": "read or computed from the authors' artifact repository",
    "R=repo": "recalled from the paper and confirmed by the repository",
    "R": "recalled from the paper, not verified against the PDF",
    "sec": "stated by a secondary source quoting the paper",
}
AGREES, DIFFERS, NOT_COMPARABLE = "agrees in direction", "differs", "not comparable"
EMULATED_REASON = "emulated CPU (TCG): not a KVM figure"
DEFAULT_TOLERANCE = 0.05


def verdict_rule(tolerance: float = DEFAULT_TOLERANCE) -> str:
    """The rule in words, for the report."""
    t = f"{tolerance:.0%}"
    return (f"Each ratio to native r (ours: ratio of medians; the paper: ratio of means) is classed as "
            f"'same' when within ±{t} of 1, 'above' when r > 1 + {tolerance:g}, 'below' when "
            f"r < 1 - {tolerance:g}. '{AGREES}' means both ratios are in the same class; '{DIFFERS}' means "
            f"they are not. '{NOT_COMPARABLE}' is given with its reason: emulated CPU (TCG), another host, "
            f"no counterpart configuration in the paper, or a workload, metric or sweep point the paper "
            f"did not measure.")


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
class Entry:
    id: str
    title: str
    match: dict[str, Any]
    approx: dict[str, Any]
    source: str
    confidence: str
    metrics: dict[str, MetricSpec]


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
                             e.get("source", ""), e.get("confidence", ""), metrics))
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
    """'same', 'above' or 'below' 1, with a band of ±tolerance."""
    if ratio > 1 + tolerance:
        return "above"
    if ratio < 1 - tolerance:
        return "below"
    return "same"


def verdict(ours: float, paper_ratio: float, tolerance: float = DEFAULT_TOLERANCE) -> str:
    return AGREES if classify(ours, tolerance) == classify(paper_ratio, tolerance) else DIFFERS


COMPARISON_COLUMNS = ["env", "workload", "metric", "point", "ratio", "ratio_ci_low", "ratio_ci_high",
                      "paper_entry", "paper_title", "paper_config", "paper_label", "paper_ratio",
                      "paper_value", "paper_native", "unit_paper", "source", "confidence", "note",
                      "verdict", "reason"]


def compare(overhead: pd.DataFrame, manifests: dict[str, dict[str, Any]], workloads: dict[str, dict[str, Any]],
            paper: Paper) -> pd.DataFrame:
    """One row per overhead row: the paper's ratio beside ours and the verdict (rule: module doc)."""
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
            at_point = mm.spec.points.get(o.point)
            if at_point is None:
                shown = ", ".join(p for p in mm.spec.points if p) or "no sweep"
                reason = f"sweep point {o.point or '(none)'} not in the paper (paper: {shown})"
            else:
                manifest = manifests.get(o.env, {"driver": o.driver, "settings": {}})
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
                               note="; ".join(filter(None, [mm.note, fig.note])))
        # the reasons that override any match, most important first
        if o.emulated:
            # no paper figure beside an emulated result: it must never read as a KVM comparison
            row.update({k: None for k in COMPARISON_COLUMNS if k.startswith("paper_") or k in
                        ("unit_paper", "source", "confidence", "note")})
            fig, reason = None, EMULATED_REASON
        elif not o.comparable and o.reason:
            reason = o.reason
        elif fig is not None and not (isinstance(o.ratio, float) and math.isfinite(o.ratio)):
            reason = "our ratio is undefined (" + (o.ci_note or "no data") + ")"
        row["reason"] = reason
        row["verdict"] = NOT_COMPARABLE if reason or fig is None else verdict(o.ratio, fig.ratio, paper.tolerance)
        rows.append(row)
    df = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    for col in ("paper_ratio", "paper_value", "paper_native"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in set(COMPARISON_COLUMNS) - {"ratio", "ratio_ci_low", "ratio_ci_high", "paper_ratio",
                                           "paper_value", "paper_native"}:
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
    return df
