"""codehash: the import closure of a module (by ast, never by importing) and the hash of its
source, on the real package and on synthetic packages built in tmp_path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from isobench import codehash
from isobench.drivers import KINDS as DRIVER_KINDS
from isobench.workloads import KINDS as WORKLOAD_KINDS


@pytest.fixture(autouse=True)
def _fresh_cache():
    codehash.cache_clear()
    yield
    codehash.cache_clear()


def write(root: Path, files: dict[str, str]) -> Path:
    """Create a package tree: {"pkg/__init__.py": "...", ...}; returns the package directory."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "pkg"


# --- the real package -------------------------------------------------------------------------------

def test_real_compression_closure():
    c = codehash.closure("isobench.workloads.compression")
    # compression imports ..drivers.base, ..errors, ..util, .base; drivers/base imports ..errors.
    for m in ("isobench.workloads.compression", "isobench.workloads.base", "isobench.drivers.base",
              "isobench.errors", "isobench.util",
              # implied parents
              "isobench", "isobench.workloads", "isobench.drivers"):
        assert m in c
    # workloads/__init__.py imports redis, but compression only lives next to it.
    for m in ("isobench.workloads.redis", "isobench.workloads.servers", "isobench.report",
              "isobench.cell", "isobench.drivers.kvm", "isobench.codehash"):
        assert m not in c
    assert c == sorted(c)


def test_real_server_workloads_include_servers():
    src = (codehash.ROOT / "workloads" / "redis.py").read_text()
    assert re.search(r"^from \.servers import", src, re.M)  # the premise of this test
    assert "isobench.workloads.servers" in codehash.closure("isobench.workloads.redis")
    for kind in ("mysql", "net_bandwidth", "net_latency"):
        assert "isobench.workloads.servers" in codehash.closure(f"isobench.workloads.{kind}")
    assert "isobench.workloads.servers" not in codehash.closure("isobench.workloads.stream")


def test_real_hpcc_based_workloads_include_hpcc():
    for kind in ("linpack", "randomaccess"):
        src = (codehash.ROOT / "workloads" / f"{kind}.py").read_text()
        assert re.search(r"^from \.hpcc import", src, re.M)
        c = codehash.closure(f"isobench.workloads.{kind}")
        assert "isobench.workloads.hpcc" in c
        assert f"isobench.workloads.{kind}" in c
    assert "isobench.workloads.hpcc" not in codehash.closure("isobench.workloads.stream")


def test_real_every_kind_has_a_closure_with_itself_and_distinct_hashes():
    hashes = {}
    for kinds in (WORKLOAD_KINDS, DRIVER_KINDS):
        for cls in kinds.values():
            m = codehash.module_of(cls)
            assert m in codehash.closure(m)
            hashes[m] = codehash.closure_hash(m)
            assert re.fullmatch(r"[0-9a-f]{12}", hashes[m])
    assert len(set(hashes.values())) == len(hashes)


def test_module_of():
    from isobench.drivers.native import NativeDriver
    from isobench.workloads.compression import Compression
    from isobench.workloads.linpack import Linpack
    assert codehash.module_of(Compression) == "isobench.workloads.compression"
    assert codehash.module_of(Linpack) == "isobench.workloads.linpack"  # not hpcc, its base
    assert codehash.module_of(NativeDriver) == "isobench.drivers.native"
    assert codehash.module_of(codehash) == "isobench.codehash"
    assert codehash.module_of(codehash.closure) == "isobench.codehash"


def test_no_import_happens(monkeypatch):
    """Closures are found by parsing: a module whose import would fail is still handled."""
    import sys
    monkeypatch.delitem(sys.modules, "isobench.workloads.hpcc", raising=False)
    monkeypatch.setitem(sys.modules, "isobench.workloads.hpcc", None)  # importing it would raise
    assert "isobench.workloads.hpcc" in codehash.closure("isobench.workloads.linpack")


# --- synthetic packages ------------------------------------------------------------------------------

def test_closure_hash_changes_with_files_in_the_closure_only(tmp_path):
    pkg = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": "import json\nimport pkg.c\n",
        "pkg/c.py": "X = 1\n",
        "pkg/outside.py": "Y = 1\n",
    })
    assert codehash.closure("pkg.a", root=pkg, package="pkg") == ["pkg", "pkg.a", "pkg.b", "pkg.c"]
    before = codehash.closure_hash("pkg.a", root=pkg, package="pkg")

    (pkg / "outside.py").write_text("Y = 2\n")
    codehash.cache_clear()
    assert codehash.closure_hash("pkg.a", root=pkg, package="pkg") == before

    (pkg / "c.py").write_text("X = 1  # a comment counts\n")
    codehash.cache_clear()
    after = codehash.closure_hash("pkg.a", root=pkg, package="pkg")
    assert after != before

    (pkg / "__init__.py").write_text('"""doc"""\n')  # a parent __init__ is in every closure
    codehash.cache_clear()
    assert codehash.closure_hash("pkg.a", root=pkg, package="pkg") != after


def test_closure_hash_is_the_union(tmp_path):
    pkg = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .shared import S\n",
        "pkg/b.py": "",
        "pkg/shared.py": "",
    })
    kw = dict(root=pkg, package="pkg")
    union = codehash.closure_hash("pkg.a", "pkg.b", **kw)
    assert union == codehash.closure_hash("pkg.b", "pkg.a", **kw)
    assert union == codehash.source_hash(["pkg", "pkg.a", "pkg.b", "pkg.shared"], **kw)
    assert union not in (codehash.closure_hash("pkg.a", **kw), codehash.closure_hash("pkg.b", **kw))


def test_source_hash_definition(tmp_path):
    import hashlib
    pkg = write(tmp_path, {"pkg/__init__.py": "I\n", "pkg/z.py": "Z\n"})
    expect = hashlib.sha256(b"pkg\0I\n\0" + b"pkg.z\0Z\n\0").hexdigest()[:12]
    assert codehash.source_hash(["pkg.z", "pkg", "pkg.z"], root=pkg, package="pkg") == expect
    # the name is part of the hash: the same bytes under another module name differ
    (pkg / "y.py").write_text("Z\n")
    assert codehash.source_hash(["pkg", "pkg.y"], root=pkg, package="pkg") != expect


def test_relative_imports_two_levels_and_package_init(tmp_path):
    pkg = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/errors.py": "",
        "pkg/drivers/__init__.py": "from .kvm import Kvm\n",  # a registry, not followed when implied
        "pkg/drivers/base.py": "from ..errors import E\n",
        "pkg/drivers/kvm.py": "",
        "pkg/workloads/__init__.py": "from .base import W\nfrom .other import O\n",
        "pkg/workloads/base.py": "from ..drivers.base import Limits\n",
        "pkg/workloads/other.py": "",
        "pkg/workloads/deep/__init__.py": "",
        "pkg/workloads/deep/leaf.py": "from ... import errors\nfrom ..base import W\n",
    })
    kw = dict(root=pkg, package="pkg")
    assert codehash.closure("pkg.workloads.base", **kw) == [
        "pkg", "pkg.drivers", "pkg.drivers.base", "pkg.errors", "pkg.workloads", "pkg.workloads.base"]
    assert codehash.closure("pkg.workloads.deep.leaf", **kw) == [
        "pkg", "pkg.drivers", "pkg.drivers.base", "pkg.errors", "pkg.workloads", "pkg.workloads.base",
        "pkg.workloads.deep", "pkg.workloads.deep.leaf"]
    # A package's __init__ resolves "." against the package itself, and is followed when it is
    # the module asked for (or imported as such).
    assert codehash.closure("pkg.workloads", **kw) == [
        "pkg", "pkg.drivers", "pkg.drivers.base", "pkg.errors", "pkg.workloads", "pkg.workloads.base",
        "pkg.workloads.other"]


def test_from_package_import_module_vs_name(tmp_path):
    pkg = write(tmp_path, {
        "pkg/__init__.py": "from .registry import ALL\nNAME = 1\n",
        "pkg/registry.py": "",
        "pkg/sub.py": "",
        "pkg/subpkg/__init__.py": "",
        "pkg/uses_module.py": "from pkg import sub, subpkg\n",
        "pkg/uses_name.py": "from pkg import NAME\n",
        "pkg/uses_name_rel.py": "from . import NAME\n",
        "pkg/uses_star.py": "from pkg import *\n",
        "pkg/dotted.py": "import pkg.subpkg\nimport os.path\n",
    })
    kw = dict(root=pkg, package="pkg")
    # sub and subpkg are modules: they are the dependencies; pkg is only an implied parent, so its
    # own import of registry is not followed.
    assert codehash.closure("pkg.uses_module", **kw) == ["pkg", "pkg.sub", "pkg.subpkg", "pkg.uses_module"]
    # NAME is a name of pkg's __init__: pkg is imported for itself, and its imports followed.
    for m in ("pkg.uses_name", "pkg.uses_name_rel", "pkg.uses_star"):
        assert codehash.closure(m, **kw) == sorted(["pkg", "pkg.registry", m])
    assert codehash.closure("pkg.dotted", **kw) == ["pkg", "pkg.dotted", "pkg.subpkg"]


def test_only_the_package_counts(tmp_path):
    pkg = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": ("import os, json\nimport numpy as np\nfrom collections import abc\n"
                     "import pkgother\nfrom pkgother import x\nfrom . import missing\n"
                     "def f():\n    from .lazy import g\n"),
        "pkg/lazy.py": "",
        "pkgother.py": "",
    })
    assert codehash.closure("pkg.a", root=pkg, package="pkg") == ["pkg", "pkg.a", "pkg.lazy"]


def test_import_cycle_terminates(tmp_path):
    pkg = write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": "from .a import f\nimport pkg.c\n",
        "pkg/c.py": "from pkg import a\n",
        "pkg/selfish.py": "from . import selfish\n",
    })
    kw = dict(root=pkg, package="pkg")
    for m in ("pkg.a", "pkg.b", "pkg.c"):
        assert codehash.closure(m, **kw) == ["pkg", "pkg.a", "pkg.b", "pkg.c"]
    assert codehash.closure("pkg.selfish", **kw) == ["pkg", "pkg.selfish"]
    assert codehash.closure_hash("pkg.a", **kw) == codehash.closure_hash("pkg.c", **kw)


def test_unknown_module_raises(tmp_path):
    pkg = write(tmp_path, {"pkg/__init__.py": ""})
    with pytest.raises(ModuleNotFoundError):
        codehash.closure("pkg.nope", root=pkg, package="pkg")
    with pytest.raises(ModuleNotFoundError):
        codehash.closure("other.mod", root=pkg, package="pkg")
    with pytest.raises(ModuleNotFoundError):
        codehash.source_hash(["pkg.nope"], root=pkg, package="pkg")


# --- caching -----------------------------------------------------------------------------------------

def test_500_calls_read_each_file_once(monkeypatch):
    reads: list[Path] = []
    real = codehash._read_bytes

    def counting(path: Path) -> bytes:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(codehash, "_read_bytes", counting)
    modules = [codehash.module_of(w) for w in WORKLOAD_KINDS.values()]
    drivers = [codehash.module_of(d) for d in DRIVER_KINDS.values()]
    first = {}
    for i in range(500):
        w, d = modules[i % len(modules)], drivers[i % len(drivers)]
        h = codehash.closure_hash(w, d)
        assert first.setdefault((w, d), h) == h
    # Each followed module is parsed once (one read), and each distinct (workload, driver) hash
    # reads the files of its closure once; nothing else is read.
    parses = codehash._imports.cache_info()
    assert parses.misses == parses.currsize  # no module parsed twice
    assert parses.currsize <= len(set(reads))
    n_hash = sum(len(set().union(*(codehash.closure(m) for m in key))) for key in first)
    assert len(reads) == parses.currsize + n_hash
    assert codehash._closure_hash.cache_info().misses == len(first)
    assert codehash._closure_hash.cache_info().hits == 500 - len(first)

    before = len(reads)
    for i in range(500):
        codehash.closure_hash(modules[i % len(modules)], drivers[i % len(drivers)])
    assert len(reads) == before  # fully cached: no file read at all


def test_cache_clear_sees_edits(tmp_path):
    pkg = write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": ""})
    h = codehash.closure_hash("pkg.a", root=pkg, package="pkg")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("")
    assert codehash.closure_hash("pkg.a", root=pkg, package="pkg") == h  # cached for the process
    codehash.cache_clear()
    assert codehash.closure("pkg.a", root=pkg, package="pkg") == ["pkg", "pkg.a", "pkg.b"]
    assert codehash.closure_hash("pkg.a", root=pkg, package="pkg") != h
