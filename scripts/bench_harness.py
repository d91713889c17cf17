"""How fast is the harness itself? Prints each figure with its unit, the median of several runs.

    python scripts/bench_harness.py                 # overhead, start/stop, planning (about 10 min)
    python scripts/bench_harness.py --matrix        # + the default quick matrix and the image build

* harness overhead: a native cell through the whole pipeline against the same tool command run by
  hand on the host, as a ratio of their metrics (compression MB/s, fio IOPS); target 0.99-1.01;
* instance start -> ready and teardown, per driver (LXC; KVM under the accel available here);
* the wall time of one round, interleaved and sequential, and the cells' start, preparation and
  stop within it (compression and stream on native, its A/A twin and two LXC variants);
* planning cost: `snakemake -n` and a no-op `snakemake --cores 1 all` for generated configs of 50,
  200, 500 and 1000 cells (outputs faked with --touch, so nothing is measured);
* with --matrix: wall time of the default quick matrix (image cached) and of the image build from
  nothing (into a scratch state dir).

Speed targets live here, not in timed tests. Run as root on an otherwise idle host.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import yaml  # noqa: E402

from isobench import config as configmod  # noqa: E402
from isobench import drivers  # noqa: E402
from isobench.drivers import EnvSpec, Limits  # noqa: E402
from isobench.image import ensure_rootfs  # noqa: E402
from isobench.util import read_json  # noqa: E402

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def report(what: str, values: list[float], unit: str, target: str = "") -> None:
    med = statistics.median(values)
    runs = " ".join(f"{v:.3g}" for v in values)
    goal = f"  target {target}" if target else ""
    print(f"{what:<58} {med:>10.3f} {unit:<8} (median of {len(values)}: {runs}){goal}",
          flush=True)


def timed(cmd: list[str], **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, **kw)
    return time.perf_counter() - t0


# -- harness overhead -------------------------------------------------------------------------------
def harness_overhead(runs: int) -> None:
    """Pipeline cell vs the same command by hand on the host, same binaries (the image's, run
    straight from the image directory). Pairs alternate (pipeline cell, then by hand) so that a
    host whose speed drifts moves both alike; each side does one warm-up run and one measured run
    per pair, and the figure is the median of the per-pair ratios."""
    wd = Path(tempfile.mkdtemp(prefix="isobench-bench-"))
    bench_cfg = {
        "rounds": {"min": 1, "max": 1}, "iterations": 1, "warmup_iterations": 1,
        "workloads": {"compression": {"kind": "compression", "corpus_mib": 64},
                      "fio_randread": {"kind": "fio", "rw": "randread", "size_mib": 256, "runtime_s": 5}},
        "run": {"environments": ["native"], "workloads": ["compression", "fio_randread"]},
    }
    (wd / "bench.yaml").write_text(yaml.safe_dump(bench_cfg))
    import pandas as pd

    def pipeline_value(workload: str, metric: str) -> float:
        target = f"results/cells/native/{workload}/round-1.parquet"
        subprocess.run([*SNAKEMAKE, "-d", str(wd), "--cores", "1", "--configfile", str(wd / "bench.yaml"),
                        "--forcerun", "run_round", "--", target], check=True, capture_output=True)
        cell = pd.read_parquet(wd / target)
        return float(cell[(~cell.warmup) & (cell.metric == metric)].value.iloc[0])

    pipeline_value("compression", "throughput")          # builds the image record, corpus and warmup
    rootfs = read_json(wd / "results/provision/image.json")["rootfs"]
    cfg = configmod.load(DEFAULT)
    corpus = next(cfg.paths.corpora.glob("corpus-64MiB-seed1.txt"))
    scratch = Path(tempfile.mkdtemp(prefix="isobench-hand-", dir="/var/tmp"))
    env = {"LD_LIBRARY_PATH": f"{rootfs}/lib/x86_64-linux-gnu:{rootfs}/usr/lib/x86_64-linux-gnu"}

    def xz_by_hand() -> float:
        xz = [f"{rootfs}/usr/bin/xz", "-T2", "-2", "-c", str(corpus)]
        rates = []
        for _ in range(2):                                  # warm-up, then the measured run
            t0 = time.perf_counter()
            subprocess.run(xz, stdout=subprocess.DEVNULL, check=True, env=env)
            rates.append(corpus.stat().st_size / 1e6 / (time.perf_counter() - t0))
        return rates[-1]

    fio = [f"{rootfs}/usr/bin/fio", "--output-format=json", "--name=hand", f"--filename={scratch}/fio.dat",
           "--rw=randread", "--bs=4k", "--iodepth=16", "--numjobs=1", "--size=256M", "--runtime=5", "--time_based",
           "--ioengine=libaio", "--direct=1", "--group_reporting", "--thread"]
    subprocess.run([f"{rootfs}/usr/bin/fio", "--name=prep", f"--filename={scratch}/fio.dat", "--rw=write", "--bs=1M",
                    "--size=256M", "--direct=1", "--ioengine=libaio", "--output-format=terse"], check=True,
                   capture_output=True, env=env)

    def fio_by_hand() -> float:
        iops = []
        for _ in range(2):
            out = subprocess.run(fio, check=True, capture_output=True, text=True, env=env).stdout
            iops.append(json.loads(out[out.index("{"):])["jobs"][0]["read"]["iops"])
        return iops[-1]

    for label, workload, metric, unit, by_hand in (("compression", "compression", "throughput", "MB/s", xz_by_hand),
                                                   ("fio randread", "fio_randread", "read_iops", "IOPS", fio_by_hand)):
        piped, hand = [], []
        for _ in range(runs):
            piped.append(pipeline_value(workload, metric))
            hand.append(by_hand())
        report(f"{label}, pipeline (native cell)", piped, unit)
        report(f"{label}, by hand on the host", hand, unit)
        report(f"harness overhead ratio, {label} (pipeline / by hand)", [p / h for p, h in zip(piped, hand)], "",
               "0.99-1.01")
        # the resolution of that ratio on this host: how much the same command varies by itself
        cv = statistics.stdev(hand) / statistics.mean(hand) if len(hand) > 1 else float("nan")
        print(f"{'  run-to-run CV of ' + label + ' by hand (noise floor)':<58} {100 * cv:>10.1f} %", flush=True)
    shutil.rmtree(scratch)
    shutil.rmtree(wd)


# -- start / stop -------------------------------------------------------------------------------
def start_stop(runs: int) -> None:
    cfg = configmod.load(DEFAULT)
    image = ensure_rootfs(cfg.image_spec(), cfg.paths.images)
    envs = {"lxc bridge": {"driver": "lxc", "net": "bridge", "storage": "rootfs"},
            "lxc host": {"driver": "lxc", "net": "host", "storage": "rootfs"},
            "native (chroot overlay)": {"driver": "native"},
            "oci runc nat": {"driver": "oci", "runtime": "runc", "net": "nat"},
            "oci runc host": {"driver": "oci", "runtime": "runc", "net": "host"},
            "oci crun host": {"driver": "oci", "runtime": "crun", "net": "host"},
            "gvisor ptrace nat (host netstack)": {"driver": "gvisor", "platform": "ptrace", "netstack": "host"},
            "kvm (accel tcg here)": {"driver": "kvm", "accel": "tcg"}}
    for label, opts in envs.items():
        kind = opts.pop("driver")
        subnet = cfg.network.get(f"{kind}_subnet")
        driver = drivers.create(EnvSpec("bench", kind, opts, Limits(1, 1024), subnet), cfg.paths, image)
        avail = driver.availability()
        if not avail.available:
            print(f"{label}: not available here: {avail.reason}")
            continue
        driver.provision()                  # e.g. the KVM guest's boot artifacts (cached)
        starts, stops = [], []
        for i in range(runs):
            t0 = time.perf_counter()
            inst = driver.start(f"isobench-bench-{i}")
            starts.append(time.perf_counter() - t0)
            inst.exec(["/bin/true"]).check()
            t0 = time.perf_counter()
            inst.stop()
            stops.append(time.perf_counter() - t0)
        target = {"lxc bridge": "<= 0.1 s", "lxc host": "<= 0.1 s", "kvm (accel tcg here)": "<= 3.5 s"}.get(label, "")
        report(f"start -> ready, {label}", starts, "s", target)
        report(f"teardown, {label}", stops, "s")


# -- rounds ------------------------------------------------------------------------------------------
def rounds_cost(runs: int) -> None:
    """Wall time of one round (round.json) of two default workloads on native, its A/A twin and two
    LXC variants, interleaved and sequential, and what of it the cells' own steps took."""
    for order in ("interleaved", "sequential"):
        wd = Path(tempfile.mkdtemp(prefix=f"isobench-rounds-{order}-"))
        envs = ["native", "native_aa", "lxc_host", "lxc_bridge"]
        cfg = {"order": order, "rounds": {"min": runs, "max": runs, "budget_minutes": 600},
               "run": {"environments": envs, "workloads": ["compression", "stream"],
                       "environments_for": {"compression": envs, "stream": envs}}}
        (wd / "rounds.yaml").write_text(yaml.safe_dump(cfg))
        subprocess.run([*SNAKEMAKE, "-d", str(wd), "--cores", "1", "--configfile", str(wd / "rounds.yaml"), "--",
                        "all"], check=True, capture_output=True)
        for wl in ("compression", "stream"):
            walls, starts = [], []
            for rec in sorted((wd / "results" / "raw" / wl).glob("round-*/round.json")):
                walls.append(read_json(rec)["wall_seconds"])
                for cell in rec.parent.glob("*/cell.json"):
                    meta = read_json(cell)
                    its = sum(i["seconds"] for i in meta["iterations"])
                    starts.append(meta["wall_seconds"] - its)   # start, preparation and stop of one cell
            report(f"one {order} round of {wl}, 4 environments (wall)", walls, "s")
            report(f"  per cell: start + preparation + stop ({order}, {wl})", starts, "s")
        shutil.rmtree(wd)


# -- planning ----------------------------------------------------------------------------------------
def planning(sizes: list[int], runs: int) -> None:
    """Configs of N cells: 5 environments x W workloads x R rounds, outputs faked with --touch."""
    for n in sizes:
        wd = Path(tempfile.mkdtemp(prefix=f"isobench-plan{n}-"))
        reps = 5
        n_workloads = max(1, n // (5 * reps))
        wls = {f"w{i:03d}": {"kind": "compression", "corpus_mib": 1, "seed": i} for i in range(n_workloads)}
        cfg = {"rounds": {"min": reps, "max": reps}, "workloads": wls,
               "run": {"environments": ["native", "lxc_bridge", "lxc_nat", "lxc_host", "lxc_volume"],
                       "workloads": list(wls)}}
        (wd / "plan.yaml").write_text(yaml.safe_dump(cfg))
        base = [*SNAKEMAKE, "-d", str(wd), "--cores", "1", "--configfile", str(wd / "plan.yaml"), "--"]
        fake_outputs(wd, configmod.load({**DEFAULT, **cfg}))
        subprocess.run([*SNAKEMAKE, "-d", str(wd), "--cores", "1", "--touch", "--configfile", str(wd / "plan.yaml"),
                        "--", "all"], check=True, capture_output=True)
        cells = 5 * n_workloads * reps
        dry = subprocess.run([*base[:-1], "-n", "--", "all"], capture_output=True, text=True)
        if "Nothing to be done" not in dry.stdout + dry.stderr:
            print(f"  (warning: the {cells}-cell no-op run is not a no-op: {dry.stdout[-300:]})")
        report(f"snakemake -n, {cells} cells", [timed([*base[:-1], "-n", "--", "all"]) for _ in range(runs)], "s")
        report(f"no-op snakemake --cores 1 all, {cells} cells", [timed([*base, "all"]) for _ in range(runs)], "s",
               "<= 5 s at 500" if cells == 500 else "")
        shutil.rmtree(wd)


def fake_outputs(wd: Path, cfg: configmod.Config) -> None:
    """Empty files and directories where every output of the DAG goes (so --touch can date them)."""
    envs, wls = cfg.run_environments, cfg.run_workloads
    cells = [(e, w, r) for w in wls for e in cfg.environments_of(w) for r in range(1, cfg.rounds["min"] + 1)]
    files = ["results/provision/workloads.json",
             *[f"results/provision/{e}.json" for e in envs], *[f"results/warmup/{e}.json" for e in envs],
             *[f"results/cells/{e}/{w}/round-{r}.parquet" for e, w, r in cells],
             *[f"results/aggregate/{n}" for n in ("cells.parquet", "summary.parquet", "summary.csv",
                                                   "overhead.parquet", "overhead.csv", "calibration.parquet",
                                                   "calibration.csv", "precision.parquet", "precision.csv",
                                                   "paper.parquet", "paper.csv", "missing.parquet", "missing.csv",
                                                   "aa_check.parquet", "aa_check.csv", "environments.parquet",
                                                   "environments.csv")],
             "results/report/report.html"]
    dirs = sorted({f"results/raw/{w}/round-{r}" for _, w, r in cells})
    image = wd / "results" / "provision" / "image.json"     # read while the DAG is built (the image param)
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_text(json.dumps({"key": "fake", "content_key": "fake"}))
    # the schedule is read while the DAG is built: it must be a real record
    records = {w: {"workload": w, "rounds": cfg.rounds["min"], "done": True, "next": 0,
                   "measure": list(cfg.environments_of(w))} for w in wls}
    batch = wd / "results" / "rounds" / "batch-0.json"
    batch.parent.mkdir(parents=True, exist_ok=True)
    batch.write_text(json.dumps({"batch": 0, "done": True, "workloads": records}))
    for w in wls:
        final = wd / "results" / "rounds" / w / "final.json"
        final.parent.mkdir(parents=True, exist_ok=True)
        final.write_text(json.dumps(records[w]))
    for d in [*dirs, "results/report/figures"]:
        (wd / d).mkdir(parents=True, exist_ok=True)
    for f in files:
        (wd / f).parent.mkdir(parents=True, exist_ok=True)
        (wd / f).touch()


# -- the whole matrix and the image build ------------------------------------------------------------
def matrix() -> None:
    wd = Path(tempfile.mkdtemp(prefix="isobench-matrix-"))
    t = timed([*SNAKEMAKE, "-d", str(wd), "--cores", "1", "--", "all"])
    report("default quick matrix, image cached (wall)", [t], "s", "<= 2700 s")
    state = Path(tempfile.mkdtemp(prefix="isobench-image-", dir="/var/tmp"))
    t0 = time.perf_counter()
    ensure_rootfs(configmod.load(DEFAULT).image_spec(), state / "images")
    report("image build from nothing (mmdebstrap)", [time.perf_counter() - t0], "s", "<= 300 s")
    shutil.rmtree(state)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--matrix", action="store_true", help="also time the default matrix and the image build")
    ap.add_argument("--only", choices=["overhead", "startstop", "rounds", "planning"], help="run one part only")
    args = ap.parse_args()
    if args.only in (None, "overhead"):
        harness_overhead(args.runs)
    if args.only in (None, "startstop"):
        start_stop(args.runs)
    if args.only in (None, "rounds"):
        rounds_cost(args.runs)
    if args.only in (None, "planning"):
        planning([50, 200, 500, 1000], 3)
    if args.matrix:
        matrix()
