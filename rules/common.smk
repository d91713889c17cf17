# Shared definitions: the validated config (CFG), the matrix, and the params each rule passes on.
# Helpers stay thin; the logic lives in scripts/isobench.

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from isobench import pipeline  # noqa: E402

PLAN = pipeline.plan_or_exit(config)
pipeline.release_stale_lock()
CFG = PLAN.config
STATE_DIR = str(CFG.paths.root)
SETUP_PRIORITY = pipeline.SETUP_PRIORITY

REPORT_HTML = "results/report/report.html"
SUMMARY_CSV = "results/aggregate/summary.csv"


wildcard_constraints:
    env="|".join(CFG.environments),
    workload="|".join(CFG.workloads),
    round=r"\d+",
    batch=r"\d+",


def cell_settings(wildcards):
    """Everything a cell's numbers depend on: a change here reruns exactly that cell."""
    return CFG.cell_settings(wildcards.env, wildcards.workload)


def parser_version(wildcards):
    """The workload module's source hash: a parser fix re-collects without re-measuring."""
    return PLAN.parser_version(wildcards.workload)


def on_start():
    """Preflight checks and removal of what a crashed earlier run left behind."""
    pipeline.start(CFG)


def on_finish(success):
    pipeline.finish(CFG, success, REPORT_HTML)
