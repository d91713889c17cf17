"""What the Snakemake rules ask of the config: the matrix, availability, and per-rule params.

Built once when the workflow is parsed. Environments that cannot run on this host (KVM without
usable acceleration) are reported in one line each and left out of the matrix, so the rest runs.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from . import codehash, drivers, hostinfo, order
from . import config as configmod
from .drivers import KINDS as DRIVER_KINDS
from .errors import BenchError
from .workloads import KINDS as WORKLOAD_KINDS

log = logging.getLogger("isobench")

#: Snakemake priority of the set-up jobs (provision, warmup): above every measurement, so all
#: environments are warm before the interleaved measurement order starts
SETUP_PRIORITY = 1_000_000


@dataclass
class Plan:
    config: configmod.Config
    _availability: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the package directory whose code is hashed (None: this one; tests pass an edited copy)
    code_root: Any = None

    def availability(self, env: str) -> dict[str, Any]:
        if env not in self._availability:
            self._availability[env] = self.config.availability(env).as_dict()
        return self._availability[env]

    @property
    def environments(self) -> list[str]:
        """The environments of the run (run.environments) that some workload runs on: only those
        are provisioned and warmed up."""
        used = {e for w in self.config.run_workloads for e in self.config.environments_of(w)}
        return [e for e in self.config.run_environments if e in used]

    @property
    def available_environments(self) -> list[str]:
        """The environments measured: those that can run here, and those the config asked for by
        name that cannot (their provisioning fails with the reason, so the run does not pass
        without them)."""
        return [e for e in self.environments if self.availability(e)["available"] or self.availability(e)["required"]]

    def environments_of(self, workload: str) -> list[str]:
        """The environments ``workload`` is measured on: the available ones of its own list
        (run.environments_for, else run.environments), in run.environments order."""
        own = self.config.environments_of(workload)
        return [e for e in self.available_environments if e in own]

    @property
    def workloads(self) -> list[str]:
        return list(self.config.run_workloads)

    # -- layout: results/ on one machine; results/hosts/<host>/ per host on a cluster ------------
    @property
    def hosts(self) -> list[str]:
        return [h.name for h in self.config.hosts]

    @property
    def hosted(self) -> str:
        """The directory pattern of everything measured on one host (a {host} wildcard on a cluster)."""
        return "results/hosts/{host}" if self.config.cluster else "results"

    def base(self, host: str | None) -> str:
        """The results directory of one host (``host`` is None on one machine)."""
        return f"results/hosts/{host}" if self.config.cluster else "results"

    def per_host(self, pattern: str, **kw: Any) -> list[str]:
        """``pattern`` (relative to a host's directory) for every host, or once on one machine."""
        if not self.config.cluster:
            return [f"results/{pattern}".format(**kw)]
        return [f"results/hosts/{h}/{pattern}".format(**kw) for h in self.hosts]

    def cell_path(self, env: str, workload: str, rnd: int, host: str | None = None) -> str:
        return f"{self.base(host)}/cells/{env}/{workload}/round-{rnd}.parquet"

    def round_cells(self, workload: str, rnd: int, envs: list[str], host: str | None = None) -> list[str]:
        """The cells of round ``rnd`` of one workload on ``envs``."""
        return [self.cell_path(e, workload, rnd, host) for e in envs]

    @property
    def baseline(self) -> str:
        return configmod.BASELINE

    def host_groups(self) -> dict[str, str]:
        """host -> its group (hosts without one are their own group of one)."""
        return {h.name: h.group or h.name for h in self.config.hosts}

    def targets(self) -> list[str]:
        """What `snakemake all` makes: the report and the summary table (on a cluster: each host's,
        the host comparison and the cluster report)."""
        if not self.config.cluster:
            return ["results/report/report.html", "results/aggregate/summary.csv"]
        return ["results/report/report.html", "results/aggregate/hosts.csv",
                *self.per_host("report/report.html"), *self.per_host("aggregate/summary.csv")]

    def pin(self, host: str | None) -> str:
        """SLURM options of a job that must run on ``host`` alone (empty on one machine): pinned to
        its node, and exclusive, so nothing else runs there while it measures."""
        return f"--nodelist={host} --exclusive" if self.config.cluster and host else ""

    def round_order(self, workload: str, rnd: int) -> list[str]:
        """The workload's environments in one round, in the order they are started (isobench.order)."""
        return order.round_order(self.environments_of(workload), workload, rnd, self.config.seed)

    def round_priority(self, workload: str, rnd: int) -> int:
        """Snakemake priority of a round's measurement: round by round, within a round workload by
        workload (the environments of a round are measured together, in one job). All below
        SETUP_PRIORITY (the warmups run first) and above 0 (collecting and the round decisions wait
        for the measurements); no two rounds share a priority."""
        rank = (rnd - 1) * len(self.workloads) + self.workloads.index(workload)
        return max(1, SETUP_PRIORITY - 1 - rank)

    def announce(self, now: datetime | None = None) -> str:
        """What the run plans, in one line, with the latest it should end (the time box; set-up,
        collecting and the report come on top)."""
        c, now = self.config, now or datetime.now(UTC)
        envs = self.available_environments
        orders = sorted({c.measure(w).order for w in self.workloads})
        end = now + timedelta(seconds=c.budget_s)
        return (f"plan: {len(self.workloads)} workloads on {len(envs)} environments ({', '.join(envs)}), "
                f"{'/'.join(orders)} rounds: {c.rounds['min']} each, then more only where a comparison is "
                f"undecided, within {c.rounds['budget_minutes']:g} min of measuring: done by ~{end:%H:%M} UTC "
                f"plus set-up (a cached run: much sooner)")

    def emulated_environments(self) -> list[str]:
        return [e for e in self.available_environments if self.availability(e)["labels"].get("emulated")]

    def primary_metrics(self, workload: str) -> list[str]:
        cls = WORKLOAD_KINDS[self.config.workloads[workload]["kind"]]
        return sorted(m for m, spec in cls.METRICS.items() if spec.primary)

    def workload_params(self) -> list[dict[str, Any]]:
        return [self.config.workload_params(w) for w in self.workloads]

    def tool_checks(self) -> list[dict[str, Any]]:
        """One entry per workload kind in the matrix: the warmup checks tools by kind, so changing a
        workload's parameters does not re-run the warmup."""
        kinds = sorted({self.config.workloads[w]["kind"] for w in self.workloads})
        return [{"workload": k, "kind": k} for k in kinds]

    def run_record(self) -> dict[str, Any]:
        c = self.config
        return {"profile": c.profile, "seed": c.seed, "rounds": dict(c.rounds), "precision": dict(c.precision),
                "sentinel": dict(c.sentinel), "iterations": c.iterations,
                "warmup_iterations": c.warmup_iterations, "baseline": configmod.BASELINE,
                "environments": self.environments, "workloads": self.workloads,
                "environments_for": {w: list(c.environments_of(w)) for w in self.workloads},
                "hosts": [{"name": h.name, "group": h.group} for h in c.hosts],
                "limits": {"cpus": c.limits.cpus, "memory_mib": c.limits.memory_mib}}

    # -- cache identity: each a self-describing string, so `snakemake -n` says what changed ------
    @cached_property
    def host(self) -> dict[str, Any]:
        """This host's fingerprint (hostinfo.IDENTITY), taken once when the workflow is parsed."""
        return hostinfo.fingerprint()

    @property
    def host_key(self) -> str:
        return f"host:{self.host['fingerprint']}"

    def host_identity(self, host: str | None) -> str:
        """What a cell's numbers depend on about its host: this machine's fingerprint, taken when
        the workflow is parsed; on a cluster, the node's, as its provision_image job recorded it
        (read when the DAG is built, like the image key)."""
        if not self.config.cluster:
            return self.host_key
        try:
            with open(f"{self.base(host)}/provision/host.json") as f:
                return f"host:{host}:{json.load(f)['fingerprint']}"
        except FileNotFoundError:
            return f"host:{host}:not provisioned yet"

    def _modules(self, env: str | None, workload: str) -> list[str]:
        mods = [codehash.module_of(WORKLOAD_KINDS[self.config.workloads[workload]["kind"]])]
        if env is not None:
            mods.append(codehash.module_of(DRIVER_KINDS[self.config.environments[env]["driver"]]))
        return mods

    def round_code(self, envs: list[str], workload: str) -> str:
        """The code a round's numbers depend on: its workload module, the drivers of its environments
        and the native driver (host-side clients), the sentinel, with everything each imports from
        the project, less the parser code (codehash.measure_hash: a parser fix re-collects, never
        re-measures), plus the round runner's own source and the order it draws (not the runner's
        imports: it imports every workload and driver)."""
        mods = [codehash.module_of(WORKLOAD_KINDS[self.config.workloads[workload]["kind"]]),
                *sorted({codehash.module_of(DRIVER_KINDS[self.config.environments[e]["driver"]]) for e in envs}),
                codehash.module_of(drivers.HOST_CLIENT), "isobench.sentinel", "isobench.image"]
        r = self.code_root
        own = codehash.source_hash(["isobench.cell", "isobench.order", "isobench.measure"], root=r)
        return f"code:{codehash.measure_hash(*mods, root=r)}+{own}"

    def parser_code(self, workload: str) -> str:
        """The code a cell's rows depend on: the workload's parser (its module's import closure)
        and the collect step."""
        r = self.code_root
        own = codehash.source_hash(["isobench.collect", "isobench.schema"], root=r)  # collect imports every workload
        return f"parser:{codehash.closure_hash(*self._modules(None, workload), root=r)}+{own}"

    def stats_code(self) -> str:
        return f"code:{codehash.closure_hash('isobench.aggregate', 'isobench.schedule', root=self.code_root)}"

    @staticmethod
    def image_key(manifest_path: str) -> str:
        """The image's content key (installed package versions and the recipe), from its manifest.

        Read when the DAG is built (a params callable that takes ``input`` is not compared by
        Snakemake's params trigger); the cells are only planned once provision_image, a
        checkpoint, has written the manifest, so it is there when they are."""
        try:
            with open(manifest_path) as f:
                m = json.load(f)
        except FileNotFoundError:
            return "image:not built yet"
        return f"image:{m.get('content_key') or m['key']}"


def plan_or_exit(raw: dict[str, Any], *, quiet: bool = False) -> Plan:
    """Validate the config; on error print one line and exit non-zero before any job runs. Each
    unavailable environment is said in one line (not ``quiet``: jobs on cluster nodes parse too)."""
    try:
        plan = Plan(configmod.load(raw))
        for env in [] if quiet else plan.environments:
            a = plan.availability(env)
            if a["available"]:
                continue
            if a["required"]:
                print(f"isobench: environment {env} cannot run here, and the config asks for it by name: "
                      f"{a['reason']} (its jobs fail)", file=sys.stderr)
            else:
                print(f"isobench: environment {env} unavailable, skipped: {a['reason']}", file=sys.stderr)
        return plan
    except BenchError as e:
        print(f"isobench: {e}", file=sys.stderr)
        sys.exit(1)


def release_stale_lock(workdir: str = ".") -> None:
    """Remove Snakemake's lock when the run that held it is dead (killed, power loss).

    Snakemake refuses to start while .snakemake/locks holds entries and asks for --unlock; after a
    killed run that is only friction, so we remove the lock ourselves, but only when no other
    process that mentions snakemake has this working directory (a live run keeps its lock).
    """
    locks = os.path.join(workdir, ".snakemake", "locks")
    if not os.path.isdir(locks) or not os.listdir(locks):
        return
    here = os.path.realpath(workdir)
    me = {os.getpid(), os.getppid()}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) in me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if b"snakemake" in cmdline and os.path.realpath(cwd) == here:
            return
    for name in os.listdir(locks):
        os.unlink(os.path.join(locks, name))
    print("isobench: removed the lock of a Snakemake run that was killed", file=sys.stderr)


#: the host-wide lock one measuring run holds from onstart to its end, in a directory only root can
#: write (made 0700 on first use), never in the world-writable /run/lock, where a user's symlink
#: would make root write through it. ISOBENCH_HOST_LOCK overrides the path (tests), with the same
#: checks.
HOST_LOCK = "/run/isobench/host.lock"
#: where earlier versions took the lock: held too when it is root's regular file, so a run of an
#: older checkout and a run of this one never measure on the host at once (opened read-only,
#: never created or written)
LEGACY_HOST_LOCK = "/run/lock/isobench.lock"
REFUSED = "(this run changed nothing)"

#: the open lock files while this process holds the host lock; the kernel releases the lock when
#: the process ends, however it ends (killed included)
_host_lock_fds: list[int] = []


class UnsafeLock(BenchError):
    """The lock path is not a file only this project (root) could have made."""


def host_lock_path() -> str:
    return os.environ.get("ISOBENCH_HOST_LOCK") or HOST_LOCK


def _unsafe(path: str, why: str) -> UnsafeLock:
    return UnsafeLock(f"the host lock {path} {why}; remove it (as root) if a user made it, and run again {REFUSED}")


def open_lock_file(path: str) -> int:
    """Open (creating) the lock file without ever following a symlink or writing into a file or
    directory root does not own: its directory is made 0700 if missing, opened with O_NOFOLLOW and
    must belong to this user and be writable by no one else; the file is opened relative to it with
    O_NOFOLLOW and must be a regular file of this user with one link. Raises UnsafeLock (one line)."""
    directory, name = os.path.split(os.path.abspath(path))
    euid = os.geteuid()
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise _unsafe(path, f"cannot be made: {directory}: {e.strerror}") from None
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        what = "is a symbolic link or not a directory" if e.errno in (errno.ELOOP, errno.ENOTDIR) else e.strerror
        raise _unsafe(path, f"is not in a directory of its own: {directory} {what}") from None
    try:
        st = os.fstat(dfd)
        if st.st_uid != euid:
            raise _unsafe(path, f"is in {directory}, owned by uid {st.st_uid} (not {euid})")
        if st.st_mode & 0o022:
            raise _unsafe(path, f"is in {directory}, which others can write (mode {stat.S_IMODE(st.st_mode):04o})")
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600,
                         dir_fd=dfd)
        except OSError as e:
            what = "is a symbolic link" if e.errno == errno.ELOOP else f"cannot be opened: {e.strerror}"
            raise _unsafe(path, what) from None
    finally:
        os.close(dfd)
    st = os.fstat(fd)
    why = ("is not a regular file" if not stat.S_ISREG(st.st_mode) else
           f"is owned by uid {st.st_uid} (not {euid})" if st.st_uid != euid else
           "has other hard links" if st.st_nlink != 1 else None)
    if why:
        os.close(fd)
        raise _unsafe(path, why)
    return fd


def _legacy_lock_file() -> int | None:
    """The lock file of earlier versions, read-only, if it is root's regular file (else None)."""
    try:
        fd = os.open(LEGACY_HOST_LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_uid == 0 and st.st_nlink == 1:
        return fd
    os.close(fd)
    return None


def _lock_holder(fd: int) -> dict[str, Any]:
    """Who holds the host lock: the JSON line the holder wrote, read back (retried briefly: the
    holder writes it just after taking the lock), else the pid from /proc/locks."""
    for _ in range(20):
        try:
            line = os.pread(fd, 4096, 0).decode(errors="replace").splitlines()[0]
            holder = json.loads(line)
            if isinstance(holder, dict) and "pid" in holder:
                return holder
        except (OSError, IndexError, ValueError):
            pass
        time.sleep(0.05)
    found: dict[str, Any] = {"pid": "?", "cwd": "?", "started": "?"}
    try:
        ino = os.fstat(fd).st_ino
        with open("/proc/locks") as f:
            entries = f.read().splitlines()
        for entry in entries:
            e = entry.split()       # "1: FLOCK ADVISORY WRITE <pid> <maj:min:inode> 0 EOF"
            if len(e) >= 6 and e[1] == "FLOCK" and e[5].rsplit(":", 1)[-1] == str(ino):
                found["pid"] = int(e[4])
                found["cwd"] = os.readlink(f"/proc/{e[4]}/cwd")
                break
    except (OSError, ValueError):
        pass
    return found


def _ancestors() -> set[int]:
    """The PIDs of this process's parents, up to PID 1."""
    found, pid = set(), os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def _refuse(holder: dict[str, Any]) -> None:
    print(f"isobench: another run is measuring on this host (pid {holder.get('pid', '?')}, in "
          f"{holder.get('cwd', '?')}, since {holder.get('started', '?')}); wait for it to finish or stop it "
          f"{REFUSED}", file=sys.stderr)
    sys.exit(1)


def take_host_lock(state_dir: str, *, within_run: bool = False) -> None:
    """Take the host-wide lock (non-blocking) and record this run as its holder; if another run
    holds it, say which in one line and exit, having changed nothing. ``within_run``: a job of a
    run (``snakemake cleanup``) goes ahead when the holder is the run it belongs to (an ancestor)."""
    if _host_lock_fds:                  # this process holds it already
        return
    path = host_lock_path()
    try:
        fd = open_lock_file(path)
    except UnsafeLock as e:
        print(f"isobench: {e}", file=sys.stderr)
        sys.exit(1)
    fds = [fd]
    legacy = None if os.environ.get("ISOBENCH_HOST_LOCK") else _legacy_lock_file()
    fds += [legacy] if legacy is not None else []
    for f in fds:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(f)
            for g in fds:
                os.close(g)
            if within_run and holder.get("pid") in _ancestors():
                return
            _refuse(holder)
    holder = {"pid": os.getpid(), "cwd": os.getcwd(), "state_dir": str(state_dir),
              "started": datetime.now(UTC).isoformat(timespec="seconds")}
    data = (json.dumps(holder) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    _host_lock_fds.extend(fds)


def release_host_lock() -> None:
    while _host_lock_fds:
        os.close(_host_lock_fds.pop())   # releases the flock; the file (and its last holder line) stays


#: the fingerprint of the host the results in this working directory were measured on
HOST_RECORD = "results/host.json"


def host_check(cfg: configmod.Config, host: dict[str, Any], record: str = HOST_RECORD) -> None:
    """A host change is a decision, not an accident: when this host differs from the one the results
    here were measured on, stop with one line, unless the config says to re-measure for this host
    (``host_change: remeasure``; every cell's params carry the host, so all of them rerun)."""
    try:
        with open(record) as f:
            old = json.load(f)
    except FileNotFoundError:
        old = None
    if old is not None and old.get("fingerprint") != host["fingerprint"]:
        what = "; ".join(hostinfo.differences(old, host)) or "fingerprint differs"
        if cfg.host_change != "remeasure":
            print(f"isobench: this host differs from the one results/ was measured on ({what}): re-measure "
                  f"everything here with --config host_change=remeasure, or keep the old cells apart: "
                  f"mv results results-{old.get('fingerprint')} (or run in another directory with -d)",
                  file=sys.stderr)
            sys.exit(1)
        print(f"isobench: host changed ({what}): re-measuring every cell for this host", file=sys.stderr)
    if old is None or old.get("fingerprint") != host["fingerprint"]:
        os.makedirs(os.path.dirname(record) or ".", exist_ok=True)
        with open(record + ".tmp", "w") as f:
            json.dump(host, f, indent=2, sort_keys=True)
        os.replace(record + ".tmp", record)


def start(cfg: configmod.Config, host: dict[str, Any] | None = None) -> None:
    """Before any job of a real run: check we may drive the host, take the host-wide lock (one
    measuring run per host, whatever its working directory), then remove what a crashed earlier
    run of this state_dir left behind (only objects carrying its ownership marker, see
    drivers.base.owner_marker): with the lock held, nothing of it is running."""
    if os.geteuid() != 0:
        print("isobench: must run as root (it starts containers and guests, mounts overlays and edits "
              "iptables); run it with sudo or as root", file=sys.stderr)
        sys.exit(1)
    if cfg.cluster:
        # this machine only submits: each host's jobs are pinned to it and exclusive there (SLURM),
        # and a host's leftovers go with its jobs (start() removes a stale instance of a name) or
        # with `snakemake cleanup` (one job per host)
        return
    take_host_lock(str(cfg.paths.root))         # first: a refused run changes nothing, not even its own results/
    if host is not None:
        host_check(cfg, host)
    removed = drivers.cleanup_all(cfg.paths)
    for what in removed:
        print(f"isobench: removed leftover {what}", file=sys.stderr)


def finish(cfg: configmod.Config, success: bool, report: str) -> None:
    try:
        if not cfg.cluster:
            drivers.release_all(cfg.paths)
    finally:
        release_host_lock()
    if success and os.path.exists(report):
        print(f"isobench: report: {os.path.abspath(report)}", file=sys.stderr)
