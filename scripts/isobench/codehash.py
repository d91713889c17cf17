"""Hashes of the source code a measurement or a parser depends on, for a cell's cache identity.

A cell's result is valid only for the code that produced it. Snakemake re-runs a job when its
params change, so the Snakefile puts a hash of the relevant source into the params: editing a
workload's command or its parser, ``workloads/servers.py``, ``workloads/base.py``, a driver or
``cell.py`` must change the hash of exactly the cells that use that code, and leave every other
cell's hash (and result) alone.

What is hashed
--------------
:func:`closure` finds, by parsing source with :mod:`ast` (never by importing), the modules of the
``isobench`` package that a module imports, transitively, including itself. :func:`source_hash`
hashes the bytes of those files: sha256 over ``name NUL bytes NUL`` per module, sorted by name,
first 12 hex digits. :func:`closure_hash` is the hash of the union of several closures (say a
workload's module and a driver's module).

Which imports count
-------------------
* ``import isobench.x.y``, ``from isobench.x import y``, and relative imports (``from . import x``,
  ``from .x import y``, ``from ..drivers.base import Limits``) resolved against the importing
  module's package (a package's ``__init__.py`` is the package itself, so its ``.x`` is a child).
* ``from P import x``: if ``P.x`` is a module (``x.py`` or ``x/__init__.py`` exists) that module
  is the dependency, otherwise ``x`` is a name defined in ``P``'s ``__init__`` and ``P`` is.
* Imports anywhere in the file count (inside functions, ``try``, ``if TYPE_CHECKING``): a lazy
  import still runs code in the measurement. Only modules inside the package count; the standard
  library and third-party packages are not hashed (their versions belong in the environment).
* Importing ``isobench.a.b`` executes ``isobench/__init__.py`` and ``isobench/a/__init__.py``, so
  every parent package's ``__init__`` of a module in the closure is in the closure too. Such an
  *implied* parent's file is hashed, but its own imports are followed only when some module
  imports the package itself (``from isobench.workloads import KINDS``, ``from . import PREFIX``).
  This is deliberate: ``workloads/__init__.py`` imports every workload to build its registry, and
  following it from ``workloads/compression.py`` would make every workload depend on every other.
  The price: code that a parent ``__init__`` pulls in only for a sibling's sake (a registry) is
  not hashed for a module that merely lives next to it.

Known limits (all conservative, or out of scope)
------------------------------------------------
* Comments, docstrings and formatting are changes too: the bytes are hashed, not the AST. A
  reformat re-measures the cells it touches. Accepted: a stale result is worse than a re-run.
* Dynamic imports (``importlib.import_module`` with a computed name) are not seen.
* A module that imports a package registry (``cell.py`` imports ``workloads.KINDS`` and
  ``drivers.KINDS``) depends, by the rules above, on every workload and driver. Hash such a module
  by its own bytes (``source_hash(["isobench.cell"])``) when that is what is meant.
* Results are cached per process (Snakemake evaluates params once per job at parse time): each
  file is read and parsed at most once, and an edit made while the process runs is not seen until
  :func:`cache_clear`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PACKAGE = "isobench"
ROOT = Path(__file__).resolve().parent  # the package directory (scripts/isobench)

__all__ = ["closure", "closure_hash", "source_hash", "measure_hash", "module_of", "cache_clear", "PACKAGE", "ROOT",
           "PARSER_DECORATOR"]

#: a function with this decorator (or named ``parse``) is parser code: editing it re-parses the kept
#: raw output (the collect step) but never re-measures (see measure_hash)
PARSER_DECORATOR = "parser_helper"


def _root(root: Path | str | None) -> Path:
    return ROOT if root is None else Path(root).resolve()


def _in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@functools.cache
def _path(module: str, root: Path, package: str) -> Path | None:
    """The source file of ``module`` (a package's ``__init__.py`` wins over a same-named ``.py``,
    as in Python), or None if it is not a module of the package."""
    if not _in_package(module, package):
        return None
    parts = module.split(".")[1:]
    pkg = root.joinpath(*parts, "__init__.py")
    if pkg.is_file():
        return pkg
    if parts:
        mod = root.joinpath(*parts[:-1], parts[-1] + ".py")
        if mod.is_file():
            return mod
    return None


def _read_bytes(path: Path) -> bytes:
    """One file read; a seam so tests can count reads."""
    return path.read_bytes()


@functools.cache
def _imports(module: str, root: Path, package: str) -> tuple[str, ...]:
    """The package modules ``module`` imports directly (not its implied parents), from its AST."""
    path = _path(module, root, package)
    if path is None:
        raise ModuleNotFoundError(f"{module}: no {package} module under {root}")
    tree = ast.parse(_read_bytes(path), filename=str(path))
    # The package relative imports resolve against: the module itself for an __init__.py.
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def add(name: str) -> None:
        if _path(name, root, package) is not None:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".") if here else []
                if node.level - 1 > len(base) - 1:  # beyond the top of the package
                    continue
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not _in_package(source, package):
                continue
            if _path(source, root, package) is None:
                continue
            # ``from P import x``: a submodule P.x when one exists, else a name of P.
            names_of_source = False
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if alias.name != "*" and _path(sub, root, package) is not None:
                    found.add(sub)
                else:
                    names_of_source = True
            if names_of_source:
                found.add(source)
    found.discard(module)
    return tuple(sorted(found))


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.cache
def _closure(module: str, root: Path, package: str) -> tuple[str, ...]:
    if _path(module, root, package) is None:
        raise ModuleNotFoundError(f"{module}: no {package} module under {root}")
    followed: set[str] = set()
    todo = [module]
    while todo:  # the seen-set makes import cycles terminate
        m = todo.pop()
        if m in followed:
            continue
        followed.add(m)
        todo.extend(i for i in _imports(m, root, package) if i not in followed)
    out = set(followed)
    for m in followed:  # implied parent packages: hashed, their imports not followed
        out.update(p for p in _parents(m) if _path(p, root, package) is not None)
    return tuple(sorted(out))


def closure(module: str, root: Path | str | None = None, package: str = PACKAGE) -> list[str]:
    """Sorted names of the package modules ``module`` imports, transitively, including itself and
    the parent package ``__init__`` of each. ``root`` is the package directory (default: this
    package's); tests pass a synthetic one."""
    return list(_closure(module, _root(root), package))


def source_hash(modules: Iterable[str], root: Path | str | None = None, package: str = PACKAGE) -> str:
    """sha256 over ``name NUL file-bytes NUL`` of each distinct module, sorted by name; 12 hex."""
    r = _root(root)
    h = hashlib.sha256()
    for name in sorted(set(modules)):
        path = _path(name, r, package)
        if path is None:
            raise ModuleNotFoundError(f"{name}: no {package} module under {r}")
        h.update(name.encode() + b"\0" + _read_bytes(path) + b"\0")
    return h.hexdigest()[:12]


@functools.cache
def _closure_hash(modules: frozenset[str], root: Path, package: str) -> str:
    union: set[str] = set()
    for m in modules:
        union.update(_closure(m, root, package))
    return source_hash(union, root, package)


def closure_hash(*modules: str, root: Path | str | None = None, package: str = PACKAGE) -> str:
    """The :func:`source_hash` of the union of the closures of ``modules`` (order-insensitive).
    Cached per process: repeated calls read no file."""
    if not modules:
        raise ValueError("closure_hash needs at least one module")
    return _closure_hash(frozenset(modules), _root(root), package)


def _is_parser(node: ast.AST) -> bool:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    if node.name == "parse":
        return True
    for d in node.decorator_list:
        name = d.id if isinstance(d, ast.Name) else d.attr if isinstance(d, ast.Attribute) else ""
        if name == PARSER_DECORATOR:
            return True
    return False


def _without_parsers(tree: ast.Module) -> ast.Module:
    tree.body = [n for n in tree.body if not _is_parser(n)]
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            node.body = [n for n in node.body if not _is_parser(n)] or [ast.Pass()]
    return tree


@functools.cache
def _measure_hash(modules: frozenset[str], root: Path, package: str) -> str:
    union: set[str] = set()
    for m in modules:
        union.update(_closure(m, root, package))
    h = hashlib.sha256()
    for name in sorted(union):
        path = _path(name, root, package)
        tree = _without_parsers(ast.parse(_read_bytes(path), filename=str(path)))
        h.update(name.encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    return h.hexdigest()[:12]


def measure_hash(*modules: str, root: Path | str | None = None, package: str = PACKAGE) -> str:
    """Like :func:`closure_hash`, but of the code that *measures*: the syntax tree of each module in
    the closures without its parser code (every function named ``parse``, and every function
    decorated with ``@parser_helper``). So a parser fix re-collects and does not re-measure, and a
    change to comments or formatting changes nothing. Module-level constants that only a parser
    uses still count (conservative: they re-measure)."""
    if not modules:
        raise ValueError("measure_hash needs at least one module")
    return _measure_hash(frozenset(modules), _root(root), package)


def module_of(obj: Any) -> str:
    """The module name defining ``obj`` (a class, an instance, a function) or of a module object:
    ``module_of(Compression) == "isobench.workloads.compression"``."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    cls = obj if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__") else type(obj)
    return cls.__module__


def cache_clear() -> None:
    """Forget every cached path, parse and hash (after editing files in the same process)."""
    for f in (_path, _imports, _closure, _closure_hash, _measure_hash):
        f.cache_clear()
