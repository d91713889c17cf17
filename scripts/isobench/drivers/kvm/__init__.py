"""KVM virtual machines through libvirt: everything KVM-specific lives in this package.

``domain`` holds the pure decisions and the libvirt XML, ``agent`` commands and files through the
QEMU guest agent, ``image`` the guest's boot artifacts (kernel, initramfs, base disk), ``daemon``
the libvirt daemons (used as they are, or started and stopped by the pipeline), ``driver`` the
driver and its instances.
"""

from .driver import KvmDriver

__all__ = ["KvmDriver"]
