#!/usr/bin/env bash
# Installs everything isobench needs on a Debian 12 host, as root: Debian packages (LXC, libvirt,
# QEMU, mmdebstrap, Chromium for the report test) and a Python venv in .venv with pinned
# requirements. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (the pipeline drives LXC, libvirt, mounts and iptables)" >&2
  exit 1
fi

PACKAGES=(
  # environments
  lxc mmdebstrap debootstrap uidmap iproute2 iptables
  # OCI containers (drivers/oci.py): rootful podman 4.3 with netavark, crun and runc; gVisor's runsc
  podman netavark crun runc runsc
  libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils dnsmasq-base
  # reaps QEMU at once when the pipeline starts libvirtd itself (hosts without systemd)
  tini
  # the KVM guest's initramfs
  busybox-static cpio
  # building libvirt-python in the venv
  python3-venv python3-dev gcc pkg-config libvirt-dev
  # the report test renders the HTML in headless Chromium
  chromium
  # SLURM (Running on a cluster; tests/slurm_cluster.py starts munged, slurmctld and slurmd itself
  # under a temporary directory and stops them by PID file): Debian's slurm 22.05 + munge
  slurmctld slurmd slurm-client munge
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # no systemd here: policy-rc.d may refuse to start services during install (libvirtd, slurm,
  # munge); the pipeline and the tests start what they need themselves
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's interpreter, not whatever python3 is first on PATH: the venv must work on a plain host
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt .venv/.requirements.txt; then
  echo "install.sh: creating .venv from requirements.txt"
  rm -rf .venv
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  cp requirements.txt .venv/.requirements.txt
fi
echo "install.sh: ready. Activate with: . .venv/bin/activate"
