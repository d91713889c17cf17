"""A throwaway SLURM cluster on this one machine, for tests (issue #13; recipe in
shared/notes/slurm.md): munged, slurmctld and one slurmd per fake node, all under `lab_dir`,
started without systemd and stopped by their PID files.

    with SlurmCluster(tmp_path / "lab", {"hostA": "benchA", "hostB": "benchB"}, cpus=4) as c:
        subprocess.run(["sbatch", "-C", "benchA", "--wrap", "hostname"], env=c.env)

Nodes are `NodeName=<name> NodeHostname=<hostname -s> NodeAddr=127.0.0.1 Feature=<feature>` (a
list of names uses each name as its feature), all in partition `bench` (as in profiles/slurm).
Every daemon gets a free port, so two clusters (two test runs) do not clash on ports; but there is
one /etc/slurm/slurm.conf, where the Snakemake jobstep plugin needs the config (it drops
SLURM_CONF before its nested srun), so only one cluster can serve Snakemake at a time. Needs root:
munged runs as root (with --force, so `lab_dir` may sit in a 0700 tree such as pytest's tmp_path;
only root clients, which all of ours are, can then reach its socket). The daemons run in the
foreground as children of this process (so they are reaped: PID 1 here may not reap orphans).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

ETC_CONF = Path("/etc/slurm/slurm.conf")
BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scontrol", "srun")
PARTITION = "bench"  # the one partition, default; profiles/slurm submits to it


def available() -> tuple[bool, str]:
    """(True, "") when a cluster can be started here, else (False, why): for pytest.skip."""
    if os.geteuid() != 0:
        return False, "SLURM test cluster needs root (daemons, /etc/slurm/slurm.conf)"
    missing = [b for b in BINARIES if not _which(b)]
    if missing:
        return False, f"SLURM/munge not installed (missing {', '.join(missing)}; see install.sh)"
    if ETC_CONF.exists() and not ETC_CONF.is_symlink():
        return False, f"{ETC_CONF} is a real file (a real SLURM install?): not touching it"
    return True, ""


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    """Running (a zombie counts as gone: PID 1 here may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class SlurmCluster:
    def __init__(self, lab_dir: Path, nodes: dict[str, str] | list[str], cpus: int | None = None,
                 start_timeout: float = 30.0):
        self.lab = Path(lab_dir).resolve()
        self.nodes = dict(nodes) if isinstance(nodes, dict) else {n: n for n in nodes}
        self.cpus = cpus  # declared CPUs per node (more than the machine has: config_overrides)
        self.start_timeout = start_timeout
        self.conf = self.lab / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.pids: dict[str, int] = {}  # daemon name -> PID read from its PID file
        self._procs: dict[str, subprocess.Popen] = {}
        self._prev_link: str | None = None  # what /etc/slurm/slurm.conf pointed to before us
        self._linked = False
        self.strays: list[int] = []  # PIDs of job processes that stop() found still running

    # ---- configuration -------------------------------------------------------------------------
    def _pidfile(self, daemon: str) -> Path:
        return self.lab / "run" / f"{daemon}.pid"

    def _write_conf(self) -> None:
        fields = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout.split()
        keep = ("CPUs=", "Boards=", "SocketsPerBoard=", "CoresPerSocket=", "ThreadsPerCore=")
        hw = f"CPUs={self.cpus}" if self.cpus else " ".join(f for f in fields if f.startswith(keep))
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        mem = int(mem_kb / 1024 * 0.9 / len(self.nodes))  # the nodes share this machine's memory
        host = socket.gethostname().split(".")[0]
        lab = self.lab
        lines = [
            "ClusterName=isobench-ci", f"SlurmctldHost={host}", "SlurmUser=root",
            f"SlurmctldPort={_free_port()}",
            "AuthType=auth/munge", f"AuthInfo=socket={lab}/munge/munge.socket.2", "CredType=cred/munge",
            f"StateSaveLocation={lab}/state", f"SlurmdSpoolDir={lab}/spool/%n",
            f"SlurmctldPidFile={self._pidfile('slurmctld')}", f"SlurmdPidFile={lab}/run/slurmd-%n.pid",
            f"SlurmctldLogFile={lab}/log/slurmctld.log", f"SlurmdLogFile={lab}/log/slurmd-%n.log",
            # no cgroups, no systemd: plain process tracking
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            # a pending job pinned to a busy node blocks later jobs of the partition (other nodes)
            # from the main scheduler; only backfill starts them, every bf_interval (default 30 s)
            "SchedulerParameters=bf_interval=1", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
            "ReturnToService=2", "MpiDefault=none", "SwitchType=switch/none", "InactiveLimit=0",
            "KillWait=5", "MinJobAge=300",  # squeue must still see finished jobs (Snakemake polls it)
            "DefMemPerCPU=512",  # else a job without --mem takes the whole node's memory
            "SlurmctldTimeout=30", "SlurmdTimeout=30", "Waittime=0",
        ]
        if self.cpus:
            lines.append("SlurmdParameters=config_overrides")
        for name, feature in self.nodes.items():
            lines.append(f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={_free_port()} "
                         f"{hw} RealMemory={mem} Feature={feature} State=UNKNOWN")
        lines.append(f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO")
        self.conf.write_text("\n".join(lines) + "\n")

    def _link_conf(self) -> None:
        ETC_CONF.parent.mkdir(parents=True, exist_ok=True)
        if ETC_CONF.is_symlink():
            target = os.readlink(ETC_CONF)
            self._prev_link = target if Path(target).exists() else None  # a dangling one is a stale leftover
            ETC_CONF.unlink()
        elif ETC_CONF.exists():
            raise RuntimeError(f"{ETC_CONF} is a real file, not ours: refusing to replace it")
        ETC_CONF.symlink_to(self.conf)
        self._linked = True

    def _unlink_conf(self) -> None:
        if self._linked and ETC_CONF.is_symlink() and os.readlink(ETC_CONF) == str(self.conf):
            ETC_CONF.unlink()
            if self._prev_link:
                ETC_CONF.symlink_to(self._prev_link)
        self._linked = False

    # ---- daemons -------------------------------------------------------------------------------
    def _start(self, name: str, argv: list[str], pidfile: Path) -> None:
        """Run one daemon in the foreground as our child (so we reap it), wait for its PID file."""
        pidfile.unlink(missing_ok=True)  # a stale one (a crashed earlier run in this lab_dir)
        with open(self.lab / "log" / f"{name}.out", "ab") as out:
            proc = subprocess.Popen([_which(argv[0]), *argv[1:]], env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)  # Ctrl-C: we stop it
        self._procs[name] = proc
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if pidfile.exists() and pidfile.read_text().strip():
                self.pids[name] = int(pidfile.read_text().split()[0])
                return
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"{name} did not start (exit {proc.poll()}):\n{self.logs()}")

    def node_states(self) -> dict[str, str]:
        r = subprocess.run([_which("sinfo"), "-h", "-N", "-o", "%N %t"], env=self.env, capture_output=True, text=True,
                           check=False)
        return dict(line.split() for line in r.stdout.splitlines() if line.strip()) if r.returncode == 0 else {}

    def start(self) -> Self:
        ok, why = available()
        if not ok:
            raise RuntimeError(why)
        for d in ("state", "log", "run", "munge", *(f"spool/{n}" for n in self.nodes)):
            (self.lab / d).mkdir(parents=True, exist_ok=True)
        try:
            self._write_conf()
            self._link_conf()
            m = self.lab / "munge"
            m.chmod(0o755)  # munged wants o+x on its socket dir
            if not (m / "munge.key").exists():
                subprocess.run([_which("mungekey"), "-c", "-k", str(m / "munge.key")], check=True)
            self._start("munged", ["munged", "-F", "--force", f"--socket={m}/munge.socket.2",
                                   f"--key-file={m}/munge.key", f"--pid-file={m}/munged.pid",
                                   f"--seed-file={m}/munged.seed"], m / "munged.pid")
            self._start("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)], self._pidfile("slurmctld"))
            for node in self.nodes:
                self._start(f"slurmd-{node}", ["slurmd", "-D", "-f", str(self.conf), "-N", node],
                            self._pidfile(f"slurmd-{node}"))
            deadline = time.monotonic() + self.start_timeout
            while (states := self.node_states()) != {n: "idle" for n in self.nodes}:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nodes not idle after {self.start_timeout} s: {states}\n{self.logs()}")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """TERM every daemon by its PID, up to 10 s, then KILL; unlink the config; check nothing is left."""
        pids = {name: self.pids.get(name, proc.pid) for name, proc in self._procs.items()}
        for pid in pids.values():
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
            for proc in self._procs.values():
                proc.poll()  # reap our children
            time.sleep(0.05)
        for pid in pids.values():
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._unlink_conf()
        # processes still running with our config, e.g. job processes that outlived their job
        # (proctrack/linuxproc loses them when a node goes down mid-job): KILL them too, and keep
        # their PIDs in self.strays for the caller to check
        self.strays = self.leftovers()
        for pid in self.strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1 if self.strays else 0)
        left = [f"{n}={p}" for n, p in pids.items() if _alive(p)] + [f"pid {p}" for p in self.leftovers()]
        assert not left, f"SLURM test cluster left processes running: {left}"

    def leftovers(self) -> list[int]:
        """PIDs of live processes started with our config (daemons, slurmstepd, job steps)."""
        marker = f"SLURM_CONF={self.conf}".encode()
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if int(proc.name) != os.getpid() and _alive(int(proc.name)) and (
                        marker in (proc / "environ").read_bytes().split(b"\0")
                        or str(self.lab).encode() in (proc / "cmdline").read_bytes()):
                    found.append(int(proc.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
        return found

    def logs(self, lines: int = 20) -> str:
        """The last lines of every daemon log (for failure messages)."""
        out = []
        for f in sorted((self.lab / "log").glob("*")):
            out.append(f"==> {f.name} <==\n" + "\n".join(f.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
