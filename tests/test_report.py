"""The HTML report from synthetic inputs: self-contained, complete, labelled, and it renders."""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.image import imread

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from isobench import aggregate as agg
from isobench import paper as paperlib
from isobench import report
from isobench.report import figures as figs
from isobench.report import matrix as mx
from isobench.report.fmt import fmt_ratio

from synthetic import UNAVAILABLE, WORKLOADS, agg_outputs, make_run

CHROMIUM = Path("/usr/bin/chromium")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=['\"]([^'\"]*)['\"]", re.I)


def report_inputs(out: agg.Outputs, paths: dict, manifests: list | None = None,
                  warmups: list | None = None) -> report.Inputs:
    """The report's named inputs: the aggregate tables it reads and the run's records."""
    return report.Inputs.of({"summary": out.summary, "overhead": out.overhead, "calibration": out.calibration,
                             "precision": out.precision, "paper": out.paper, "missing": out.missing,
                             "aa_check": out.aa_check, "environments": out.environments,
                             "cpu_cost": out.cpu_cost,
                             "envs": paths["manifests"] if manifests is None else manifests,
                             "warmups": paths["warmups"] if warmups is None else warmups,
                             "workloads": paths["workloads"]})


#: synthetic equivalence margins (%) by workload, as the aggregate stage's decisions would store them
MARGINS = {"compression": 5.0, "fio_randread": 2.0}
DEFAULT_MARGIN = 10.0


def decide(r) -> tuple[str, str, float]:
    """A synthetic decision for one overhead row (decision, decision_text, settle_rounds), of the
    shape the aggregate stage stores (words direction-aware, from the overhead interval in %)."""
    m = MARGINS.get(r.workload, DEFAULT_MARGIN)
    lo, hi = r.overhead_ci_low, r.overhead_ci_high
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no interval", f"no interval yet ({r.n} rounds)", math.nan
    if -m <= lo and hi <= m:
        return "same", f"same as native within ±{m:g} %", math.nan
    if lo > 0 or hi < 0:
        way = "slower" if lo > 0 else "faster"
        a, b = sorted((abs(lo), abs(hi)))
        return way, f"{way} by {abs(r.overhead_pct):.0f} % [{a:.0f}, {b:.0f}]", math.nan
    settle = float(r.n * 2 + 2)
    return "undecided", f"undecided: ~{settle:.0f} more rounds would settle it", settle


def with_decisions(overhead: pd.DataFrame) -> pd.DataFrame:
    """The overhead table with the decision columns of the contract (margin_pct, decision,
    decision_text, settle_rounds) and without within_noise_floor, which they replace."""
    o = overhead.drop(columns=["within_noise_floor"], errors="ignore").copy()
    decided = [decide(r) for r in o.itertuples()]
    o["margin_pct"] = [MARGINS.get(w, DEFAULT_MARGIN) for w in o["workload"]]
    o["decision"] = [d for d, _, _ in decided]
    o["decision_text"] = [t for _, t, _ in decided]
    o["settle_rounds"] = np.array([x for _, _, x in decided], dtype="float64")
    return o


def write_decisions(path: Path) -> None:
    """Rewrite a stored overhead table with the decision columns, its metadata kept."""
    table = pq.read_table(path)
    df = with_decisions(table.to_pandas())
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(table.schema.metadata),
                   path)


@pytest.fixture(scope="module")
def built(synthetic_run, tmp_path_factory) -> dict:
    """The report of the session's synthetic run (conftest.py), built once for this module from a
    copy of its aggregate tables (the session's stay as the aggregate wrote them)."""
    root = tmp_path_factory.mktemp("report")
    # a copy of the session's tables, with the synthetic decisions of this module in its overhead table
    shutil.copytree(synthetic_run["out"], root / "aggregate")
    out = agg_outputs(root / "aggregate")
    write_decisions(out.overhead)
    html_path, figures = root / "report" / "report.html", root / "report" / "figures"
    written = report.build_report(report_inputs(out, synthetic_run), html_path, figures)
    return {**synthetic_run, "root": root, "out": out, "html_path": html_path, "html": html_path.read_text(),
            "figures": figures,
            "written": written}


def _decode_png(data: bytes) -> np.ndarray:
    assert data.startswith(PNG_MAGIC)
    return imread(io.BytesIO(data), format="png")


def test_self_contained(built):
    html = built["html"]
    assert not re.search(r"""(src|href)\s*=\s*['"]?\s*(https?:)?//""", html, re.I)
    assert "<link" not in html.lower() and "<script" not in html.lower() and "@import" not in html
    assert "<style>" in html


def test_a_section_per_workload(built):
    for wl in WORKLOADS:
        assert f"id='wl-{wl}'" in built["html"], wl
        assert f"results/raw/{wl}/round-*" in built["html"]  # the rerun command


def test_every_figure_is_an_embedded_png_that_decodes(built):
    srcs = IMG_SRC.findall(built["html"])
    assert len(srcs) == len(built["written"]) >= len(WORKLOADS)
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        img = _decode_png(base64.b64decode(src.split(",", 1)[1]))
        assert img.shape[0] > 200 and img.shape[1] > 400 and img.std() > 0


def test_figure_files_match_embedded(built):
    names = sorted(p.name for p in built["written"])
    assert names == sorted(p.name for p in built["figures"].glob("*.png"))
    assert {"compression.png", "fio_randread.png", "fio_randread-latency.png", "redis.png"} <= set(names)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in IMG_SRC.findall(built["html"])}
    assert {p.read_bytes() for p in built["written"]} == embedded


def test_emulated_is_labelled_and_never_a_percentage(built):
    html = built["html"]
    summary = html[html.index("id='summary'"):html.index("id='environments'")]
    emu_cells = re.findall(r'<td class="emu"[^>]*>(.*?)</td>', summary)
    assert emu_cells and all(c.startswith("emulated") and "%" not in c for c in emu_cells)
    # wherever the emulated environment names a table cell or a column, the badge is beside it
    assert not re.search(r"<t[dh]>kvm_tcg</t[dh]>", html)
    assert html.count('kvm_tcg <span class="badge emu"') >= 10
    assert "EMULATED" in html  # the figure legends and the top note


def test_unavailable_and_missing_are_reported(built):
    html = built["html"]
    for env, (_, _, reason) in UNAVAILABLE.items():
        assert env in html and reason in html
    missing = html[html.index("id='missing'"):]
    assert "results/logs/run_round/net_latency/round-1.log" in missing
    assert "No native results for net_latency" in html


def test_methods_and_rule(built):
    html = built["html"]
    methods = html[html.index("id='methods'"):]
    for text in ("Synthetic CPU", "v2", "kvm_pvm", "6.1.0-test", "20150329", "Tukey", "inconclusive",
                 "Benjamini-Hochberg", "t-interval",
                 "2025-01-02"):
        assert text in methods, text


def test_deterministic(built, tmp_path):
    again = tmp_path / "again.html"
    report.build_report(report_inputs(built["out"], built), again, tmp_path / "figures")
    assert again.read_bytes() == built["html_path"].read_bytes()


def _chromium(*args: str, tmp: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                           f"--user-data-dir={tmp / 'profile'}", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless rendering needs /usr/bin/chromium "
                    "(apt-get install -y --no-install-recommends chromium)")
def test_renders_in_headless_chromium(built, tmp_path):
    shot = tmp_path / "shot.png"
    url = built["html_path"].as_uri()
    res = _chromium(f"--screenshot={shot}", "--window-size=1280,4000", url, tmp=tmp_path)
    assert shot.exists(), res.stderr[-2000:]
    img = _decode_png(shot.read_bytes())
    assert img.shape[:2] == (4000, 1280)
    rows_with_content = (img.reshape(img.shape[0], -1).std(axis=1) > 0).sum()
    assert rows_with_content > 2000 and shot.stat().st_size > 100_000  # text, tables and figures drawn

    # Every image must have decoded: a copy of the page with a probe that records, after load, how many
    # <img> elements have no natural size; Chromium's DOM dump after the load shows the result.
    probe = ("<script>window.addEventListener('load',function(){var i=[].slice.call(document.images);"
             "document.body.setAttribute('data-images',i.length);"
             "document.body.setAttribute('data-broken',i.filter(function(x){return !x.complete||"
             "x.naturalWidth===0;}).length);});</script>")
    probed = tmp_path / "probed.html"
    probed.write_text(built["html"].replace("</body>", probe + "</body>"))
    dom = _chromium("--virtual-time-budget=10000", "--dump-dom", probed.as_uri(), tmp=tmp_path).stdout
    images = re.search(r'data-images="(\d+)"', dom)
    broken = re.search(r'data-broken="(\d+)"', dom)
    assert images and broken, dom[:500]
    assert int(images[1]) == len(built["written"]) and int(broken[1]) == 0


def test_report_without_any_results(tmp_path):
    """Every environment unavailable: the report still builds and says so."""
    root = tmp_path
    paths = make_run(root)
    manifests = [p for p in paths["manifests"] if p.stem in UNAVAILABLE]
    tables = agg_outputs(root / "aggregate")
    agg.aggregate([], manifests, tables, workloads_json=paths["workloads"])
    out = root / "r.html"
    written = report.build_report(report_inputs(tables, paths, manifests, []), out, root / "figures")
    html = out.read_text()
    assert written == [] and "No results at all" in html and "No results for this workload" in html
    assert "lxc-start not found" in html


def test_non_numeric_and_mixed_points(tmp_path):
    """Points that are not numbers get a bar panel each; unswept metrics of a swept workload get bars."""
    workloads = {**WORKLOADS, "kv": ("kv", {}, {"ops": ("ops/s", True, 10.0)}, ["test=get", "test=set"]),
                 "mixed": ("mixed", {}, {"rps": ("req/s", True, 10.0)}, ["", "connections=1", "connections=10"])}
    paths = make_run(tmp_path, workloads)
    tables = agg_outputs(tmp_path / "aggregate")
    agg.aggregate(paths["cells"], paths["manifests"], tables, batches=paths["batches"],
                  workloads_json=paths["workloads"])
    written = report.build_report(report_inputs(tables, paths), tmp_path / "r.html", tmp_path / "figures")
    names = {p.name for p in written}
    assert {"kv.png", "mixed.png", "mixed-bars.png"} <= names
    html = (tmp_path / "r.html").read_text()
    assert "id='wl-kv'" in html and "test=get" in html


def test_opens_with_the_answers_then_precision_calibration_and_the_forest_plot(built):
    html = built["html"]
    order = [html.index(f"<section id='{s}'") for s in ("answers", "precision", "calibration", "overview", "summary")]
    assert order == sorted(order)
    assert (built["figures"] / report.OVERVIEW).exists() and built["figures"] / report.OVERVIEW in built["written"]
    overview = html[html.index("<section id='overview'"):html.index("<section id='summary'")]
    assert "data:image/png;base64," in overview and "equivalence margin" in overview
    precision = html[html.index("<section id='precision'"):html.index("<section id='calibration'")]
    # synthetic run: compression meets 2% over 6 rounds, fio does not (lxc_nat is noisy): both said
    assert "compression" in precision and "met" in precision and "not met" in precision
    assert "stopped by max rounds" in precision
    assert "Precision targets not met" in html and "smoke run" in html


def test_aa_significance_is_counted_against_chance(built):
    cal = built["html"][built["html"].index("id='calibration'"):]
    assert re.search(r"<b>\d+ of \d+</b> A/A comparisons with an interval came out significant", cal)
    assert "expected by chance" in cal


@pytest.mark.parametrize("low, high, words", [
    (6.5, 28.3, "CI 6.5–28.3% slower"),
    (-106.5, -10.1, "CI 10.1–106.5% faster"),
    (-8.3, 34.4, "CI 8.3% faster to 34.4% slower"),
    (float("nan"), 3.0, "no CI (n<3)"),
])
def test_ci_is_said_in_the_words_of_the_effect(low, high, words):
    assert report.ci_words(low, high) == words


def test_values_are_escaped_by_the_template(tmp_path, monkeypatch):
    """Autoescape: a reason with markup in it is shown as text, never as markup."""
    import synthetic
    monkeypatch.setitem(synthetic.UNAVAILABLE, "lxc_host",
                        ("lxc", {"driver": "lxc", "net": "host"}, "lxc-start <i>not</i> found & 'gone'"))
    paths = make_run(tmp_path)
    manifests = [p for p in paths["manifests"] if p.stem in synthetic.UNAVAILABLE]
    tables = agg_outputs(tmp_path / "aggregate")
    agg.aggregate([], manifests, tables, workloads_json=paths["workloads"])
    report.build_report(report_inputs(tables, paths, manifests, []), tmp_path / "r.html", tmp_path / "figures")
    html = (tmp_path / "r.html").read_text()
    assert "<i>not</i>" not in html and "lxc-start &lt;i&gt;not&lt;/i&gt; found &amp; &#39;gone&#39;" in html


def test_cpu_cost_section_shows_the_aggregate_cost_table(built):
    cost = pd.read_csv(built["out"].cpu_cost_csv)
    assert {"host_cpu_cores", "env_cpu_cores"} <= set(cost["metric"])
    section = built["html"].split("<section id='cpu-cost'>")[1].split("</section>")[0]
    for r in cost.itertuples(index=False):
        assert f"<td>{r.workload}</td><td>{r.metric}</td>" in section
    assert "not cycles" in section


# -- the paper's figures drawn the paper's way: fio's latency CDF, the CPU cost figures -------------


@pytest.fixture(scope="module")
def data(built) -> report.ReportData:
    return report.load_inputs(report_inputs(built["out"], built))


def _series(ax) -> dict[str, ErrorbarContainer]:
    """The errorbar lines of an Axes by their legend label."""
    return {c.get_label(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}


def _whiskers(c: ErrorbarContainer) -> list[tuple[float, float]]:
    """(low, high) of each whisker of an errorbar line (x for horizontal, y for vertical ones), sorted."""
    out = []
    for col in c.lines[2]:
        for seg in col.get_segments():
            (x0, y0), (x1, y1) = seg
            out.append((min(x0, x1), max(x0, x1)) if y0 == y1 else (min(y0, y1), max(y0, y1)))
    return sorted(out)


def _same(a, b) -> bool:
    """Equal numbers, however nested (lists of points, of intervals)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=0)


def test_fio_latency_is_a_cdf_with_the_papers_points(data):
    lat = ["read_lat_p50", "read_lat_p99"]
    fig = figs.figure_latency_cdf(data, "fio_randread", lat)
    ax = fig.axes[0]
    s = data.summary[data.summary.workload == "fio_randread"]
    lines = _series(ax)
    for e in data.envs():
        rows = s[s.env == e].set_index("metric")
        if rows.empty:
            continue
        label = f"{e} (EMULATED" if data.is_emulated(e) else e
        c = next(c for lab, c in lines.items() if lab == label or (data.is_emulated(e) and lab.startswith(label)))
        # x: our latency percentiles, y: the cumulative fraction, whiskers: each percentile's 95 % CI
        assert _same(c.lines[0].get_xydata(),
                     [[rows.loc["read_lat_p50", "mean"], 0.5], [rows.loc["read_lat_p99", "mean"], 0.99]])
        assert _same(_whiskers(c), sorted((rows.loc[m, "ci_low"], rows.loc[m, "ci_high"]) for m in lat))
        assert c.lines[0].get_linestyle() == ("--" if data.is_emulated(e) else "-")
    # the paper's p50/p99, absolute, hollow: its native, Docker (volume) and KVM (lxc_volume, kvm)
    paper = {ln.get_label(): ln for ln in ax.lines if ln.get_label().startswith("paper: ")}
    suffix = " (absolute, their hardware)"
    assert set(paper) == {f"paper: {c}{suffix}" for c in ("Native", "Docker (volume)", "KVM")}
    assert paper[f"paper: KVM{suffix}"].get_xydata().tolist() == [[612, 0.5], [884, 0.99]]
    assert paper[f"paper: Native{suffix}"].get_xydata().tolist() == [[258, 0.5], [358, 0.99]]
    assert all(ln.get_markerfacecolor() == "none" for ln in paper.values())
    assert ax.get_xlabel() == "completion latency (µs)" and ax.get_ylabel().startswith("cumulative fraction")


def test_no_paper_point_beside_an_emulated_environment(data):
    c = data.comparison.copy()
    emu = (c.env == "kvm_tcg") & (c.workload == "fio_randread") & (c.metric == "read_lat_p50")
    c.loc[emu, ["verdict", "paper_label", "paper_value", "paper_native"]] = [paperlib.AGREES, "FAKE", 1.0, 1.0]
    fig = figs.figure_latency_cdf(dataclasses.replace(data, comparison=c), "fio_randread",
                                  ["read_lat_p50", "read_lat_p99"])
    labels = [ln.get_label() for ln in fig.axes[0].lines]
    assert not any("FAKE" in lab for lab in labels)


def test_the_cdf_is_fios_the_percentile_figure_stays_for_others(data):
    cdf = {f.name: f.title for f in figs.workload_figures(data, "fio_randread")}
    assert cdf["fio_randread-latency.png"] == "fio_randread completion-latency CDF"
    other = dataclasses.replace(data, workloads={**data.workloads, "fio_randread": {
        **data.workloads["fio_randread"], "kind": "blockbench"}})
    pct = {f.name: f.title for f in figs.workload_figures(other, "fio_randread")}
    assert pct["fio_randread-latency.png"] == "fio_randread latency percentiles"


#: synthetic cost: host CPUs busy per connection count; CPU seconds per Gbit per environment
COST_ENVS = {"native": 1.0, "lxc_nat": 1.4, "kvm": 1.8, "kvm_tcg": 6.0}
CONNECTIONS = (1, 10, 50)


def synthetic_cost(*, points: bool = True, bandwidth: bool = True, subject: str = "") -> pd.DataFrame:
    """A cpu_cost table as the aggregate writes it: whole-iteration rows for redis (and nuttcp's
    cpu_s_per_gbit), and with ``points`` redis's per-point rows; without ``points`` no ``point`` and
    ``subject`` columns at all (an aggregate written before they existed)."""
    rows = []

    def add(env, wl, kind, metric, unit, mean, native, point=""):
        base = env == "native"
        rows.append({"env": env, "baseline": "native", "workload": wl, "kind": kind, "point": point,
                     "subject": subject if point else "", "metric": metric, "unit": unit,
                     "emulated": env == "kvm_tcg", "n_rounds": 6, "mean": mean, "ci_low": mean * 0.95,
                     "ci_high": mean * 1.05, "ci_note": "", "ratio": math.nan if base else mean / native,
                     "ratio_ci_low": math.nan if base else 0.9 * mean / native,
                     "ratio_ci_high": math.nan if base else 1.1 * mean / native,
                     "ratio_note": "the baseline" if base else "", "basis": "CPU time (not cycles)"})
    for env, f in COST_ENVS.items():
        if bandwidth:
            add(env, "nuttcp", "net_bandwidth", "cpu_s_per_gbit", "CPU s/Gbit", 0.05 * f, 0.05)
        add(env, "redis", "redis", "host_cpu_cores", "cores", 0.8 * f, 0.8)
        for c in CONNECTIONS if points else ():
            add(env, "redis", "redis", "host_cpu_cores", "cores", f * (0.3 + c / 50), 0.3 + c / 50,
                f"connections={c}")
            if env != "native":
                add(env, "redis", "redis", "env_cpu_cores", "cores", 0.7 * f * (0.3 + c / 50), math.nan,
                    f"connections={c}")
    df = pd.DataFrame(rows)
    return df if points else df.drop(columns=["point", "subject"])


def with_cost(data: report.ReportData, cost: pd.DataFrame) -> report.ReportData:
    """The synthetic run with this cost table and a network bandwidth workload described (nuttcp)."""
    return dataclasses.replace(data, cpu_cost=cost, workloads={
        **data.workloads, "nuttcp": {"kind": "net_bandwidth", "params": {"seconds": 1}, "metrics": {}}})


def _cost_section(html: str) -> str:
    return html.split("<section id='cpu-cost'>")[1].split("</section>")[0]


def test_cost_figures_render_in_the_cost_section(data):
    d = with_cost(data, synthetic_cost())
    figures = {w: figs.workload_figures(d, w) for w in d.workload_names()}
    cost = {f.name: f for fs in figures.values() for f in fs if f.section == figs.COST_SECTION}
    assert set(cost) == {"nuttcp-cpu-per-gbit.png", "redis-cpu-sweep.png"}
    for f in cost.values():
        img = _decode_png(f.png)
        assert len(f.png) > 1000 and img.shape[0] > 200 and img.std() > 0
    html = report.render_html(d, figures)
    section = _cost_section(html)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in IMG_SRC.findall(section)}
    assert embedded == {f.png for f in cost.values()}
    # alt text and caption say what the whiskers are
    assert section.count("95% CI whiskers") == 2 and "whiskers: 95% t-interval" in section
    assert "not cycles" in section and "whiskers both ways" in section
    # shown once: not in the workload's own section
    redis = html.split("id='wl-redis'")[1].split("</section>")[0]
    assert base64.b64encode(cost["redis-cpu-sweep.png"].png).decode() not in redis
    # per-point rows folded under the whole-iteration table
    assert "Per sweep point (21 rows)" in section and "<td>connections=10</td>" in section


def test_cost_figures_are_omitted_without_point_rows_or_bandwidth(data):
    d = with_cost(data, synthetic_cost(points=False, bandwidth=False))
    assert "point" not in d.cpu_cost.columns
    for w in d.workload_names():
        assert figs.cost_figures(d, w) == [], w
    figures = {w: figs.workload_figures(d, w) for w in d.workload_names()}
    section = _cost_section(report.render_html(d, figures))
    assert "<img" not in section and "Per sweep point" not in section
    assert "<td>redis</td><td>host_cpu_cores</td>" in section
    # an old table with bandwidth but no point column: the per-Gbit figure alone
    d = with_cost(data, synthetic_cost(points=False))
    assert [f.name for f in figs.cost_figures(d, "nuttcp")] == ["nuttcp-cpu-per-gbit.png"]
    assert figs.cost_figures(d, "redis") == []
    # no cost table at all
    empty = dataclasses.replace(data, cpu_cost=pd.DataFrame())
    assert all(figs.cost_figures(empty, w) == [] for w in empty.workload_names())
    assert "No CPU readings" in _cost_section(report.render_html(empty, {}))


def test_cost_figures_plot_the_tables_numbers(data):
    cost = synthetic_cost()
    d = with_cost(data, cost)
    # per Gbit: a bar per environment at the table's mean, its whisker the table's interval, the
    # ratio and its interval under the name, the emulated one hatched
    ax = figs.figure_cost_per_gbit(d, "nuttcp").axes[0]
    gbit = cost[cost.metric == "cpu_s_per_gbit"].set_index("env")
    envs = [e for e in d.envs() if e in gbit.index]
    bars = next(c for c in ax.containers if isinstance(c, BarContainer))
    assert [b.get_height() for b in bars] == pytest.approx(gbit.loc[envs, "mean"].tolist())
    assert _same(_whiskers(next(c for c in ax.containers if isinstance(c, ErrorbarContainer))),
                 sorted(zip(gbit.loc[envs, "ci_low"], gbit.loc[envs, "ci_high"])))
    ticks = {t.get_text().split("\n")[0]: t.get_text() for t in ax.get_xticklabels()}
    r = gbit.loc["lxc_nat"]
    assert ticks["lxc_nat"] == (f"lxc_nat\n{fmt_ratio(r.ratio)}x (more CPU) [{fmt_ratio(r.ratio_ci_low)}, "
                                f"{fmt_ratio(r.ratio_ci_high)}]")
    assert ticks["native"] == "native" and "EMULATED" in ticks["kvm_tcg"]
    assert [bool(b.get_hatch()) for b in bars] == [e == "kvm_tcg" for e in envs]
    assert "not cycles" in ax.get_title()

    # the sweep: host CPUs busy against connections, then set_rps against host CPUs busy at the same point
    fig = figs.figure_cost_sweep(d, "redis")
    cores_ax, tput_ax = fig.axes[0], fig.axes[1]
    pts = cost[(cost.metric == "host_cpu_cores") & (cost.point != "")]
    s = data.summary[(data.summary.workload == "redis") & (data.summary.metric == "set_rps")]
    cores, tput = _series(cores_ax), _series(tput_ax)
    assert set(cores) == set(tput) == {"native", "lxc_nat", "kvm", "kvm_tcg (EMULATED)"}
    for e in COST_ENVS:
        label = "kvm_tcg (EMULATED)" if e == "kvm_tcg" else e
        mine = pts[pts.env == e].set_index("point").loc[[f"connections={c}" for c in CONNECTIONS]]
        theirs = s[s.env == e].set_index("point").loc[mine.index]
        assert _same(cores[label].lines[0].get_xydata(), list(zip(CONNECTIONS, mine["mean"])))
        assert _same(_whiskers(cores[label]), sorted(zip(mine.ci_low, mine.ci_high)))
        assert _same(tput[label].lines[0].get_xydata(), list(zip(mine["mean"], theirs["mean"])))
        assert _same(_whiskers(tput[label]),
                     sorted([*zip(mine.ci_low, mine.ci_high), *zip(theirs.ci_low, theirs.ci_high)]))
        assert cores[label].lines[0].get_linestyle() == ("--" if e == "kvm_tcg" else "-")
    assert tput_ax.get_xlabel() == "host CPUs busy (cores)" and cores_ax.get_xlabel() == "connections"


def test_a_points_subject_picks_its_throughput(data):
    """A timing that covers only the metrics of one subject (``set``) is drawn against set_rps only."""
    fig = figs.figure_cost_sweep(with_cost(data, synthetic_cost(subject="set")), "redis")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["host CPUs busy (set) against connections",
                      "set_rps against host CPUs busy (one point per connections)"]
    assert figs.throughput_metrics(data, "redis", "get") == []


# -- the decision matrix the report opens with --------------------------------------------------------
# (the decisions are the aggregate stage's, stored in the overhead table; the report shows them)


def _answers(html: str) -> str:
    return html[html.index("<section id='answers'"):html.index("<section id='precision'")]


def _matrix_cells(section: str) -> list[tuple[str, str]]:
    """(class, text) of every entry of the matrix tables, in order."""
    return [(cls, re.sub(r"<[^>]+>", " ", body)) for cls, body in
            re.findall(r'<td class="(dec [^"]*)"[^>]*>(.*?)</td>', section, re.S)]


def test_the_matrix_has_a_row_per_primary_metric_and_a_column_per_environment(data):
    m = mx.decision_matrix(data)
    o = data.overhead
    primary = o[o["primary"] & ~o["aa"]]
    assert m["envs"] == [e for e in data.envs() if e in set(primary["env"])]
    assert data.baseline not in m["envs"] and "native_again" not in m["envs"]      # A/A: calibration section
    keys = [(r["workload"], r["metric"], r["point"]) for r in m["rows"]]
    assert sorted(keys) == sorted(set(zip(primary["workload"], primary["metric"], primary["point"])))
    assert keys[0][0] == "compression" and keys[-1] == ("redis", "set_rps", "connections=50")
    stored = {(r.env, r.workload, r.metric, r.point): r for r in primary.itertuples()}
    for row in m["rows"]:
        assert row["margin"] == f"±{MARGINS.get(row['workload'], DEFAULT_MARGIN):g}%"
        for env, cell in zip(m["envs"], row["cells"]):
            r = stored[(env, row["workload"], row["metric"], row["point"])]
            assert f"{fmt_ratio(r.ratio)} [{fmt_ratio(r.ratio_ci_low)}, {fmt_ratio(r.ratio_ci_high)}]" == cell["ratio"]
            if env == "kvm_tcg":     # emulated: labelled, never coloured as a decision
                assert cell["word"] == "emulated" and cell["cls"] == "dec dec-emu" and cell["paper"] is None
            else:
                assert cell["word"] == r.decision and cell["words"] == r.decision_text
                assert cell["cls"] == f"dec dec-{r.decision}"
    # the synthetic run has every kind of answer but "faster" and "no interval"; each counted once
    counts = {c["word"]: c["n"] for c in m["counts"]}
    non_emulated = primary[~primary["emulated"]]
    assert counts == {d: int((non_emulated["decision"] == d).sum()) for d in ("same", "slower", "faster", "undecided",
                                                                             "no interval")}
    assert counts["same"] and counts["slower"] and counts["undecided"] and m["total"] == len(non_emulated)
    assert m["absent"] == [{"workload": "net_latency", "why": "no native results"}]


def test_the_report_opens_with_the_matrix(built):
    answers = _answers(built["html"])
    assert built["html"].index("<section id='answers'") < built["html"].index("<section id='precision'")
    cells = _matrix_cells(answers)
    words = [text.split()[0] for _, text in cells]
    assert set(words) == {"same", "slower", "undecided", "emulated"}
    assert re.search(r"Of <b>\d+</b> primary comparisons", answers)
    assert "No decisions recorded" not in answers
    # emulated column labelled in its header, and every one of its entries says so
    assert re.search(r"<th>kvm_tcg <span class=\"badge emu\"[^>]*>emulated</span></th>", answers)
    assert all(cls == "dec dec-emu" for (cls, text) in cells if text.split()[0] == "emulated")


def test_an_undecided_entry_says_what_would_settle_it(data):
    o = data.overhead
    undecided = o[(o["decision"] == "undecided") & o["primary"] & ~o["aa"]]
    assert len(undecided) >= 1
    m = mx.decision_matrix(data)
    cells = [c for row in m["rows"] for c in row["cells"] if c and c["word"] == "undecided"]
    assert len(cells) == len(undecided)
    for c, r in zip(cells, undecided.itertuples()):
        assert f"~{math.ceil(r.settle_rounds)} more rounds would settle it" in c["words"] + c["settle"]
    # stored words that do not say it: the entry adds it from settle_rounds
    r = next(undecided.itertuples())._replace(decision_text="undecided", settle_rounds=13.2)
    assert mx.entry(data, r)["settle"] == "~14 more rounds would settle it"
    assert mx.entry(data, r._replace(settle_rounds=float("inf")))["settle"].startswith("no number of rounds")


@pytest.mark.parametrize("decision, cls", [("same", "dec-same"), ("slower", "dec-slower"), ("faster", "dec-faster"),
                                           ("undecided", "dec-undecided"), ("no interval", "dec-none")])
def test_each_decision_has_its_own_colour_and_word(data, decision, cls):
    r = next(data.overhead[(data.overhead["env"] == "lxc_bridge") & data.overhead["primary"]].itertuples())
    e = mx.entry(data, r._replace(decision=decision, decision_text=f"{decision} (stored words)"))
    assert e["cls"] == f"dec {cls}" and e["word"] == decision and e["words"] == f"{decision} (stored words)"
    css = (Path(report.__file__).parent / "templates" / "report.css").read_text()
    assert re.search(rf"\.{cls}[,{{][^}}]*background:#[0-9a-f]{{3,6}}\b", css)


def test_the_papers_claim_is_beside_our_answer(data):
    m = mx.decision_matrix(data)
    c = data.comparison
    judged = c[c["verdict"].isin(paperlib.JUDGED)].set_index(["env", "workload", "metric", "point"])
    seen = 0
    for row in m["rows"]:
        for env, cell in zip(m["envs"], row["cells"]):
            key = (env, row["workload"], row["metric"], row["point"])
            if key in judged.index:
                p = judged.loc[key]
                assert cell["paper"]["verdict"] == p.verdict
                assert cell["paper"]["ratio"].startswith(f"{fmt_ratio(p.paper_ratio)}x (")
                assert cell["paper"]["ratio"].endswith("(slower)") == (p.paper_ratio < 1)   # all higher is better
                seen += 1
            else:
                assert cell["paper"] is None
    assert seen >= 5
    html = _answers(report.render_html(data, {}))
    assert "paper (Docker): " in html and ">differs</span>" in html and ">agrees</span>" in html


def test_no_noise_label_anywhere_and_significant_effects_say_their_direction(built, data):
    html = built["html"]
    assert "≈ noise" not in html and 'class="num noise"' not in html
    # a significant comparison is said as slower or faster wherever it is shown
    o = data.overhead
    sig = o[o["significant"] & ~o["emulated"] & o["decision"].isin(["slower", "faster"])]
    assert len(sig) > 0
    summary = html[html.index("<section id='summary'"):html.index("<section id='environments'")]
    for r in sig.itertuples():
        assert f"{abs(r.overhead_pct):.1f}% {r.decision}" in summary


def test_an_older_table_without_decisions_degrades_clearly(built, tmp_path):
    """An overhead table written before decisions existed (no decision columns, within_noise_floor
    still there): the report builds, computes no decision and says none was recorded."""
    legacy = tmp_path / "overhead.parquet"
    table = pq.read_table(built["out"].overhead)
    keep = [c for c in table.column_names if c not in ("margin_pct", "decision", "decision_text", "settle_rounds")]
    df = table.select(keep).to_pandas()
    df["within_noise_floor"] = True        # the old label, on every row: it must not show
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(table.schema.metadata),
                   legacy)
    out = dataclasses.replace(built["out"], overhead=legacy)
    html_path = tmp_path / "r.html"
    report.build_report(report_inputs(out, built), html_path, tmp_path / "figures")
    html = html_path.read_text()
    answers = _answers(html)
    assert "No decisions recorded" in answers
    assert re.search(r"primary comparisons \([^)]*\): <span class=\"tally dec-unrecorded\"><b>\d+</b> no decision "
                     r"recorded</span>\.", answers)
    words = {text.split("  ")[0].strip() for _, text in _matrix_cells(answers)}
    assert words == {"no decision recorded", "emulated"}
    assert "undecided" not in answers.split("</p>", 3)[-1] and "≈ noise" not in html
    assert "dec dec-unrecorded" in answers and "dec-same" not in answers.split("<table", 1)[1]
    assert "No margins recorded" in html


def test_a_long_sweep_folds_into_one_row_with_every_point_below(data, monkeypatch):
    monkeypatch.setattr(mx, "FOLD_POINTS", 2)
    m = mx.decision_matrix(data)
    folded = [r for r in m["rows"] if r.get("folded")]
    assert [(r["workload"], r["metric"]) for r in folded] == [("redis", "set_rps")]
    assert folded[0]["point"] == "3 points (connections=1 … connections=50)"
    lxc_nat = folded[0]["cells"][m["envs"].index("lxc_nat")]
    assert [b["point"] for b in lxc_nat["strip"]] == ["connections=1", "connections=10", "connections=50"]
    assert lxc_nat["counts"] == "3 slower of 3 points"
    assert [b["cls"] for b in lxc_nat["strip"]] == ["dec-slower"] * 3
    tcg = folded[0]["cells"][m["envs"].index("kvm_tcg")]
    assert tcg["word"] == "emulated" and "slower" not in tcg["counts"]
    assert {b["cls"] for b in tcg["strip"]} == {"dec-emu"}
    assert [r["point"] for r in m["points"]] == ["connections=1", "connections=10", "connections=50"]
    html = report.render_html(data, {})
    assert "Every point of the swept metrics (3 rows)" in _answers(html)


def test_every_axis_of_every_figure_is_labelled(data, monkeypatch):
    """No axis without a label, in every figure the report draws (cost figures included)."""
    drawn = []
    real = figs.png_bytes
    monkeypatch.setattr(figs, "png_bytes", lambda fig: drawn.append(fig) or real(fig))
    d = with_cost(data, synthetic_cost())
    for w in d.workload_names():
        figs.workload_figures(d, w)
    drawn.append(figs.figure_overview(d))
    assert len(drawn) >= 8
    for fig in drawn:
        for ax in fig.axes:
            if ax.get_visible():
                assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), (fig.texts, ax.get_title())


def test_the_forest_plot_colours_by_decision_and_shades_the_margin(data):
    fig = figs.figure_overview(data)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(legend) == {"same", "slower", "undecided"}
    assert "equivalence margin" in ax.get_title() and "noise" not in ax.get_title()
    bands = [p for p in ax.collections]
    assert len(bands) == len(figs.overview_rows(data))          # one margin band per row


def test_direction_words_beside_every_ratio(built):
    html = built["html"]
    cost = html[html.index("<section id='cpu-cost'>"):]
    assert re.search(r"\dx \((more|less|same) CPU\)", cost)     # the synthetic CPU is constant: no interval
    cal = html[html.index("<section id='calibration'"):html.index("<section id='overview'")]
    assert re.search(r"native_again (\d+\.\d% (slower|faster)|same) than native", cal)
    fio = html[html.index("id='wl-fio_randread'"):]
    paper = fio[fio.index("<h3>Against the paper</h3>"):]
    assert re.search(r"\d x \((slower|faster)\)|\dx \((slower|faster)\)", paper)


def test_decision_colours_stay_apart_for_colour_blind_readers():
    """The figures' decision colours, simulated for deuteranopia, protanopia and tritanopia
    (Machado et al. 2009, severity 1): every pair stays visibly apart."""
    sims = {"deutan": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                       [-0.011820, 0.042940, 0.968881]],
            "protan": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                       [-0.003882, -0.048116, 1.051998]],
            "tritan": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                       [0.004733, 0.691367, 0.303900]]}
    rgb = {k: np.array([int(v[i:i + 2], 16) / 255 for i in (1, 3, 5)]) for k, v in figs.DECISION_COLORS.items()}
    lin = {k: np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4) for k, c in rgb.items()}
    for name, m in sims.items():
        seen = {k: np.clip(np.array(m) @ c, 0, 1) for k, c in lin.items()}
        for a in seen:
            for b in seen:
                if a < b:
                    assert np.linalg.norm(seen[a] - seen[b]) > 0.08, (name, a, b)
