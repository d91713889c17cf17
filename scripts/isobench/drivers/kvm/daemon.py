"""The libvirt daemons: use a running libvirtd as it is, or start virtlogd + libvirtd and remember it.

On a systemd host libvirtd is already there (or socket-activated) and the pipeline neither starts
nor stops it. On a host without systemd (this project's machines) nothing runs at boot:
``ensure_running`` starts ``virtlogd -d`` (QEMU's logs go through it) and ``libvirtd -d``, and
records their PIDs in a state file, so ``stop_started`` later stops exactly those processes.
"""

from __future__ import annotations

import fcntl
import grp
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ...errors import InstanceError
from ...util import read_json, run, write_json

try:
    import libvirt
    import libvirt_qemu
except ImportError:  # KvmDriver.availability() says so; native and LXC must import without it
    libvirt = libvirt_qemu = None

log = logging.getLogger("isobench")

URI = "qemu:///system"
STATE_FILE = "libvirtd-started.json"
#: (daemon, pid file) in start order; stopped in reverse order
DAEMONS = (("virtlogd", Path("/run/virtlogd.pid")), ("libvirtd", Path("/run/libvirtd.pid")))
#: host-wide, like the daemons and libvirt's networks and domains
LOCK_DIR = Path("/run")
KVM_DEVICE = Path("/dev/kvm")


@contextmanager
def host_lock(name: str) -> Iterator[None]:
    """Serialize a check-then-act on host-wide libvirt state across pipeline processes."""
    with open(LOCK_DIR / f"isobench-{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def connect():
    """An open connection to the system QEMU driver, without libvirt's stderr error printing."""
    # libvirt prints every error to stderr besides raising it: each guest-ping of a booting guest
    # would print "Guest agent is not responding"
    libvirt.registerErrorHandler(lambda *_: None, None)
    return libvirt.open(URI)


def answers() -> bool:
    try:
        connect().close()
        return True
    except libvirt.libvirtError:
        return False


def daemon_pid(name: str, pidfile: Path) -> int | None:
    """The PID in ``pidfile`` if that process is alive and is ``name`` (not a recycled PID)."""
    try:
        pid = int(pidfile.read_text().strip())
        state = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    comm, _, rest = state.partition(") ")
    return pid if comm.endswith(f"({name}") and not rest.startswith("Z") else None


def running() -> dict[str, int]:
    """The libvirt daemons running now, by name: their pid."""
    return {name: pid for name, pidfile in DAEMONS if (pid := daemon_pid(name, pidfile)) is not None}


def ensure_kvm_device_group() -> None:
    """Give /dev/kvm the owner udev gives it (root:kvm 0660) on a host where no udev ran.

    libvirt checks at every capability lookup whether its QEMU user (group kvm) can open /dev/kvm.
    With a root-only node that check contradicts libvirt's own QEMU probe, so each domain start
    re-probes QEMU about 16 times: 68 s instead of 0.4 s, for TCG guests too.
    """
    try:
        st = KVM_DEVICE.stat()
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except (OSError, KeyError):
        return
    if st.st_gid != kvm_gid or st.st_mode & 0o060 != 0o060:
        os.chown(KVM_DEVICE, -1, kvm_gid)
        KVM_DEVICE.chmod(st.st_mode & 0o777 | 0o060)
        log.info("gave %s group kvm read/write, as udev does (libvirt re-probes QEMU otherwise)", KVM_DEVICE)


def ensure_running(state_dir: Path, timeout: float = 20) -> None:
    """Make ``qemu:///system`` answer; record in ``state_dir`` which daemons this call started."""
    if libvirt is None:
        raise InstanceError("libvirt-python is not installed in the pipeline's environment")
    with host_lock("libvirtd"):
        ensure_kvm_device_group()
        if answers():
            return
        started = {}
        for name, pidfile in DAEMONS:
            if daemon_pid(name, pidfile) is None:
                _launch(name)
                pid = _wait_pid(name, pidfile)
                started[name] = pid
                log.info("started %s (pid %d)", name, pid)
        if started:
            state_dir.mkdir(parents=True, exist_ok=True)
            record = state_dir / STATE_FILE
            # libvirt adds LIBVIRT_* chains when a network starts and leaves them empty after;
            # if none existed before we started it, ours is the run that should remove them
            started["firewall_was_clean"] = not libvirt_chains()
            write_json(record, {**(read_json(record) if record.exists() else {}), **started})
        end = time.monotonic() + timeout
        while not answers():
            if time.monotonic() > end:
                raise InstanceError(f"libvirtd does not answer on {URI} {timeout:.0f} s after starting it; "
                                    f"run `libvirtd` in a terminal to see why")
            time.sleep(0.1)


def _launch(name: str) -> None:
    """Start a daemon in the background. libvirtd runs under ``tini -s`` (a child subreaper) when
    tini is installed: libvirtd double-forks each QEMU, whose orphan otherwise goes to PID 1; where
    PID 1 reaps late (containers, microVM inits) a dead QEMU stays a zombie that libvirt's
    destroy() waits out, 1.2-2 s per guest. Under tini it is reaped at once."""
    if name == "libvirtd" and shutil.which("tini"):
        subprocess.Popen(["tini", "-s", "--", name], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    else:
        run([name, "-d"], timeout=30)


def _wait_pid(name: str, pidfile: Path) -> int:
    """``-d`` forks and the child writes the pid file a moment later."""
    for _ in range(100):
        pid = daemon_pid(name, pidfile)
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise InstanceError(f"{name} -d did not leave a live process in {pidfile}")


def stop_started(state_dir: Path, timeout: float = 10) -> list[str]:
    """Stop (by PID) only the daemons ``ensure_running`` started; return what was stopped."""
    record = state_dir / STATE_FILE
    if not record.exists():
        return []
    stopped = []
    with host_lock("libvirtd"):
        pids = read_json(record)
        for name, pidfile in reversed(DAEMONS):
            pid = pids.get(name)
            # only if the pid file still names the process we started (not a later restart)
            if pid is None or daemon_pid(name, pidfile) != pid:
                continue
            os.kill(pid, signal.SIGTERM)
            end = time.monotonic() + timeout
            while daemon_pid(name, pidfile) == pid and time.monotonic() < end:
                time.sleep(0.05)
            if daemon_pid(name, pidfile) == pid:
                os.kill(pid, signal.SIGKILL)
            stopped.append(f"{name} (pid {pid})")
        if pids.get("firewall_was_clean") and "libvirtd" in pids:
            stopped += remove_empty_libvirt_chains()
        record.unlink()
    return stopped


def libvirt_chains() -> list[tuple[str, str]]:
    """(table, chain) of every LIBVIRT_* iptables chain on the host."""
    found = []
    for table in ("filter", "nat", "mangle"):
        proc = run(["iptables", "-w", "5", "-t", table, "-S"], check=False)
        for line in proc.stdout.decode().splitlines():
            if line.startswith("-N LIBVIRT_"):
                found.append((table, line.split()[1]))
    return found


def remove_empty_libvirt_chains() -> list[str]:
    """Remove the LIBVIRT_* chains (and the jumps to them) once they hold no rule."""
    removed = []
    for table, chain in libvirt_chains():
        rules = run(["iptables", "-w", "5", "-t", table, "-S", chain], check=False).stdout.decode().splitlines()
        if any(r.startswith("-A ") for r in rules):
            continue
        listing = run(["iptables", "-w", "5", "-t", table, "-S"], check=False).stdout.decode().splitlines()
        for rule in listing:
            if rule.startswith("-A ") and rule.endswith(f"-j {chain}"):
                run(["iptables", "-w", "5", "-t", table, "-D", *rule.split()[1:]], check=False)
        run(["iptables", "-w", "5", "-t", table, "-X", chain], check=False)
        removed.append(f"empty libvirt chain {table}/{chain}")
    return removed
