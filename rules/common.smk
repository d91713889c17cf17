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
IMAGE_JSON = "results/provision/image.json"
SUMMARY_CSV = "results/aggregate/summary.csv"


wildcard_constraints:
    env="|".join(CFG.environments),
    workload="|".join(CFG.workloads),
    round=r"\d+",
    batch=r"\d+",


def image_manifest(wildcards):
    """The image manifest, once the image exists (provision_image is a checkpoint, so the cells'
    params can name the image by its content: the package versions it holds)."""
    return ancient(checkpoints.provision_image.get().output[0])


def on_start():
    """Preflight checks (root, the host the results were measured on, the host-wide lock) and
    removal of what a crashed earlier run left behind."""
    pipeline.start(CFG, PLAN.host)


def on_finish(success):
    pipeline.finish(CFG, success, REPORT_HTML)
