"""The layers as drawn: api/ → deferred/ → pipeline → cache/, batching/, upstream/.

Each rule reads the imports of every module under ``src/frugal`` (with `ast`, so imports inside
functions and under ``TYPE_CHECKING`` count too) and fails naming the module and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import frugal

SRC = Path(frugal.__file__).parent
THE_THREE = ("frugal.cache", "frugal.batching", "frugal.upstream")
# What every layer may use: the words they share, and small helpers without dependencies.
VOCABULARY = ("frugal.errors", "frugal.provider", "frugal.outcome", "frugal.futures", "frugal.ids")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def frugal_imports(path: Path) -> list[str]:
    """Every ``frugal...`` module ``path`` imports (``from frugal.x import y`` gives
    ``frugal.x.y`` when ``y`` is a module, else ``frugal.x``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (SRC.parent / Path(*candidate.split("."))).with_suffix(".py").exists()
                found.append(candidate if is_module else node.module)
    return [name for name in found if name == "frugal" or name.startswith("frugal.")]


MODULES = {module_name(path): frugal_imports(path) for path in sorted(SRC.rglob("*.py"))}


def within(name: str, *packages: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def violations(rule: str) -> list[str]:
    broken = []
    for module, imports in MODULES.items():
        for imported in imports:
            if not RULES[rule](module, imported):
                broken.append(f"{module} imports {imported}")
    return broken


def the_three_keep_apart(module: str, imported: str) -> bool:
    """cache/, batching/ and upstream/ import only themselves and the vocabulary."""
    own = next((package for package in THE_THREE if within(module, package)), None)
    return own is None or within(imported, own, *VOCABULARY)


def the_pipeline_stays_below_the_api(module: str, imported: str) -> bool:
    return module != "frugal.pipeline" or not within(imported, "frugal.api", "frugal.cli")


def the_api_uses_public_faces(module: str, imported: str) -> bool:
    """api/, deferred/, the pipeline, the assembly and the library reach cache/, batching/
    and upstream/ through their packages."""
    users = ("frugal.api", "frugal.deferred", "frugal.pipeline", "frugal.assembly")
    if not within(module, *users, "frugal.library", "frugal.langchain"):
        return True
    return not any(within(imported, package) and imported != package for package in THE_THREE)


def the_deferred_tier_is_reached_through_its_package(module: str, imported: str) -> bool:
    """Outside deferred/, only its package is imported: its modules are private rooms."""
    if within(module, "frugal.deferred"):
        return True
    return not within(imported, "frugal.deferred") or imported == "frugal.deferred"


def the_deferred_tier_stays_below_the_api(module: str, imported: str) -> bool:
    """deferred/ is given what it needs from the API (the line schemas), never imports it."""
    return not within(module, "frugal.deferred") or not within(imported, "frugal.api", "frugal.cli")


def the_vocabulary_depends_on_nothing(module: str, imported: str) -> bool:
    return module not in VOCABULARY or imported == module


def the_simulator_is_a_program_of_its_own(module: str, imported: str) -> bool:
    return not within(module, "frugal.sim") or within(imported, "frugal.sim", "frugal.errors")


def nothing_below_imports_the_api(module: str, imported: str) -> bool:
    below = within(module, *THE_THREE, "frugal.pipeline", "frugal.observability", "frugal.sim")
    return not (below and within(imported, "frugal.api", "frugal.cli"))


def only_the_front_doors_import_the_library(module: str, imported: str) -> bool:
    """library/ is a face of frugal, not a part: only ``frugal`` (its lazy ``wrap``) and the
    LangChain cache reach it, through its package; it never reaches the command line."""
    if within(module, "frugal.library"):
        return not within(imported, "frugal.cli")
    if not within(imported, "frugal.library"):
        return True
    return module in ("frugal", "frugal.langchain") and imported == "frugal.library"


RULES = {
    rule.__name__: rule
    for rule in (
        the_three_keep_apart,
        the_pipeline_stays_below_the_api,
        the_api_uses_public_faces,
        the_vocabulary_depends_on_nothing,
        the_simulator_is_a_program_of_its_own,
        nothing_below_imports_the_api,
        the_deferred_tier_is_reached_through_its_package,
        the_deferred_tier_stays_below_the_api,
        only_the_front_doors_import_the_library,
    )
}


def test_the_modules_were_found() -> None:
    assert {"frugal.pipeline", "frugal.api.routes", "frugal.cache.semantic"} <= set(MODULES)
    assert "frugal.deferred.runner" in MODULES
    assert {"frugal.library.clients", "frugal.assembly"} <= set(MODULES)
    assert "frugal.cache" in MODULES["frugal.pipeline"]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_no_import_crosses_a_line(rule: str) -> None:
    assert violations(rule) == []


def test_a_crossing_import_is_caught() -> None:
    """The rules see what they are meant to see: a made-up import of each kind is refused."""
    assert not the_three_keep_apart("frugal.batching.coalescer", "frugal.cache.scope")
    assert not the_three_keep_apart("frugal.cache.semantic", "frugal.api.errors")
    assert not the_pipeline_stays_below_the_api("frugal.pipeline", "frugal.api.routes")
    assert not the_api_uses_public_faces("frugal.api.admin", "frugal.cache.store")
    assert not the_vocabulary_depends_on_nothing("frugal.errors", "frugal.config")
    assert not the_simulator_is_a_program_of_its_own("frugal.sim.app", "frugal.cache")
    assert not nothing_below_imports_the_api("frugal.observability.metrics", "frugal.api.state")
    assert not the_api_uses_public_faces("frugal.deferred.fold", "frugal.cache.semantic")
    assert not the_deferred_tier_is_reached_through_its_package(
        "frugal.api.batches", "frugal.deferred.runner"
    )
    assert not the_deferred_tier_stays_below_the_api("frugal.deferred.lines", "frugal.api.schemas")
    assert not the_api_uses_public_faces("frugal.library.engine", "frugal.cache.semantic")
    assert not only_the_front_doors_import_the_library("frugal.api.app", "frugal.library")
    assert not only_the_front_doors_import_the_library("frugal", "frugal.library.clients")
    assert not only_the_front_doors_import_the_library("frugal.library.clients", "frugal.cli")
