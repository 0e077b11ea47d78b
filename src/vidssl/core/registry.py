"""Extension points found by module: every module of an extension package (backbones, objectives, view sources)
registers itself by the literal constants it declares at its top (the names it provides, the file sets it reads, its
config schema fragment). They are read from the module's source without importing it, so Snakemake builds the DAG
and checks a config without torch; a module is imported only when a job runs it.

Adding a backbone, an objective or a view source is adding one module: nothing lists them.
"""
from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType


def _package_path(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def modules(package: str) -> tuple[str, ...]:
    """The public modules of `package` (its extension modules), sorted, without importing any of them."""
    return tuple(sorted(info.name for info in pkgutil.iter_modules([str(_package_path(package))])
                        if not info.name.startswith("_")))


@functools.cache
def declarations(package: str, module: str) -> dict:
    """The UPPER_CASE names `module` of `package` assigns a literal at its top level, and their values (a declaration
    must be a literal: one that names a variable is not read)."""
    tree = ast.parse((_package_path(package) / f"{module}.py").read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) and node.value is not None else None
        if isinstance(target, ast.Name) and target.id.isupper():
            try:
                found[target.id] = ast.literal_eval(node.value)
            except ValueError:  # not a literal (a computed constant): not a declaration
                continue
    return found


def load(package: str, module: str) -> ModuleType:
    return importlib.import_module(f"{package}.{module}")
