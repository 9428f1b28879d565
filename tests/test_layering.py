"""Layers: each package imports only packages below it (so there are no import cycles), config is pure data,
the instruments (simulator, bench client) never load the gateway's database or Redis clients, and a package
imports another through its `__init__`, not its submodules.

The import graph is read from the source with `ast`. Imports inside functions count: they run, only later.
Imports under `if TYPE_CHECKING:` never run and do not count, so an annotation may name a type from above
(the stage protocol's `RequestContext`). `python tests/test_layering.py` prints the graph and its numbers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"

# Low to high: a package imports only packages in the layers below its own (docs/architecture.md#layers).
LAYERS: tuple[tuple[str, ...], ...] = (
    # the version, error types, the finished request's record, names loaded on first use, small statistics,
    # a LoRA adapter's files and content hash (served by backends/, recorded by registry/), the registries' name
    # rules and their key-by-key diff (models and prompts alike)
    ("sluice", "sluice.errors", "sluice.records", "sluice.lazy", "sluice.stats", "sluice.lora_files", "sluice.names",
     "sluice.json_diff"),
    ("sluice.config", "sluice.catalog"),  # data: the config models, the GPU/model/price catalog
    ("sluice.plan", "sluice.store", "sluice.backends", "sluice.state"),
    ("sluice.telemetry", "sluice.cost", "sluice.cache", "sluice.routing", "sluice.tags", "sluice.structured",
     "sluice.registry", "sluice.prompts"),
    ("sluice.rollout", "sluice.sim", "sluice.loadtest", "sluice.safety"),
    ("sluice.evals",),  # eval suites: the unsafe scorer builds the safety layers' guards in-process
    ("sluice.gateway",),  # the request path (the chain runner, the routing terminal) and the start-up checks
    ("sluice.compose",),  # the composition root: builds everything from config, starts and closes it in order
    ("sluice.api",),  # the app: routes, error mapping
    ("sluice.cli",),
    ("sluice.__main__",),
    ("sluice.client",),  # the typed client helper, a user's library: it imports no other package, none imports it
)
CONFIG_MAY_IMPORT = ("sluice.config", "sluice.errors")
HEAVY_CLIENTS = ("alembic", "redis", "sqlalchemy")  # the gateway's store and shared state
# "importer -> imported submodule of another package": why it cannot go through that package's `__init__`.
SUBMODULE_IMPORTS_ALLOWED: dict[str, str] = {}


@dataclass(slots=True, frozen=True)
class Import:
    importer: str  # module name
    imported: str  # the module it loads (the nearest one that exists: `from sluice.cost import x` -> sluice.cost)
    line: int
    in_function: bool  # runs when the function is called, not when the module loads
    type_checking: bool = False  # under `if TYPE_CHECKING:`: never runs
    via_package: bool = False  # `from sluice.store import request_log`: a submodule, named through its package

    def where(self) -> str:
        return f"{self.importer}:{self.line}"


@cache
def modules() -> Mapping[str, Path]:
    """Every module of the `sluice` package by dotted name (a package's `__init__` by the package's name)."""
    found = {}
    for path in sorted((SRC / "sluice").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def package_of(module: str) -> str:
    """`sluice.cost.tokens` -> `sluice.cost`; top-level modules (`sluice.errors`) are packages of their own."""
    return ".".join(module.split(".")[:2])


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    """Every import of a `sluice` module in `module`, type-checking ones included (marked)."""
    path = modules()[module]
    is_package = path.name == "__init__.py"
    found: dict[tuple[str, int], Import] = {}  # one per imported module and line (`from x import a, b`: one)

    def targets(node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, bool]]:
        if isinstance(node, ast.Import):
            yield from ((alias.name, False) for alias in node.names)
            return
        base = node.module or ""
        if node.level:  # relative: from the package (or its parents)
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            yield (submodule, True) if submodule in modules() else (base, False)

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target, via_package in targets(child):
                    if target.split(".")[0] != "sluice":
                        continue
                    while target not in modules():  # `import sluice.x.name`: the module that holds the name
                        target = target.rpartition(".")[0]
                    found.setdefault((target, child.lineno), Import(module, target, child.lineno, in_function,
                                                                    type_checking, via_package))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.body:
                    visit(ast.Module(body=[statement], type_ignores=[]), in_function, True)
                for statement in child.orelse:
                    visit(ast.Module(body=[statement], type_ignores=[]), in_function, type_checking)
            else:
                visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda),
                      type_checking)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False, False)
    return tuple(found.values())


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports() -> Iterator[Import]:
    """Imports that run: at module level or inside functions; not those under `if TYPE_CHECKING:`."""
    for module in modules():
        yield from (found for found in imports_of(module) if not found.type_checking)


def package_graph() -> dict[str, set[str]]:
    """Package -> the other packages it imports at run time."""
    graph: dict[str, set[str]] = {package_of(module): set() for module in modules()}
    for found in runtime_imports():
        importer, imported = package_of(found.importer), package_of(found.imported)
        if importer != imported:
            graph[importer].add(imported)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan): each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def layer_of(package: str) -> int | None:
    return next((level for level, packages in enumerate(LAYERS) if package in packages), None)


@cache
def exports_of(package: str) -> frozenset[str]:
    """The names a package's `__init__` lists in `__all__`."""
    tree = ast.parse(modules()[package].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None and any(
                isinstance(target, ast.Name) and target.id == "__all__"
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


def reaches_into(found: Import) -> bool:
    """An import of another package's submodule, not of a name its `__init__` exports: `from sluice.backends.sse
    import DONE` does; `from sluice.backends import DONE` and `from sluice.store import request_log` do not."""
    package = package_of(found.imported)
    if package in (package_of(found.importer), found.imported):
        return False
    parent, _, name = found.imported.rpartition(".")
    return not (found.via_package and parent == package and name in exports_of(package))


def _edges_within(component: list[str]) -> list[str]:
    members = set(component)
    return sorted(f"{found.where()} imports {found.imported}" for found in runtime_imports()
                  if package_of(found.importer) in members and package_of(found.imported) in members
                  and package_of(found.importer) != package_of(found.imported))


# --- the graph check itself ---------------------------------------------------------------------------------

def test_the_cycle_check_finds_a_cycle_and_accepts_a_chain() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_module_level_lazy_and_type_checking_imports() -> None:
    compose = {found.imported: found for found in imports_of("sluice.compose")}
    assert not compose["sluice.gateway"].in_function
    common = {found.imported: found for found in imports_of("sluice.cli.common")}
    assert common["sluice.gateway"].in_function
    shadow = {found.imported: found for found in imports_of("sluice.rollout.shadow")}
    assert shadow["sluice.gateway.context"].type_checking
    assert "sluice.routing" in package_graph()["sluice.gateway"]


# --- the rules --------------------------------------------------------------------------------------------

def test_no_import_cycles_between_packages() -> None:
    found = cycles(package_graph())
    assert not found, "import cycles between packages:\n" + "\n".join(
        " <-> ".join(component) + "\n    " + "\n    ".join(_edges_within(component)) for component in found)


def test_every_package_has_a_layer() -> None:
    packages = {package_of(module) for module in modules()}
    layered = {package for layer in LAYERS for package in layer}
    assert not packages - layered, f"add these to LAYERS (and docs/architecture.md): {sorted(packages - layered)}"
    assert not layered - packages, f"LAYERS names packages that do not exist: {sorted(layered - packages)}"


def test_packages_import_only_from_the_layers_below() -> None:
    upward = []
    for found in runtime_imports():
        importer, imported = package_of(found.importer), package_of(found.imported)
        if importer == imported:
            continue
        importer_layer, imported_layer = layer_of(importer), layer_of(imported)
        if importer_layer is not None and imported_layer is not None and imported_layer >= importer_layer:
            kind = " (inside a function)" if found.in_function else ""
            upward.append(f"{found.where()} imports {found.imported}{kind}: layer {imported_layer} is not "
                          f"below {importer}'s layer {importer_layer}")
    assert not upward, "imports that are not down the layers:\n" + "\n".join(upward)


def test_config_is_pure_data_and_imports_no_runtime_package() -> None:
    found = [f"{found.where()} imports {found.imported}"
             for module in modules() if package_of(module) == "sluice.config"
             for found in imports_of(module)  # type-checking ones too: config names no runtime type
             if package_of(found.imported) not in CONFIG_MAY_IMPORT]
    assert not found, "config/ may import only itself and sluice.errors:\n" + "\n".join(found)


def test_cross_package_imports_go_through_package_init() -> None:
    found = [f for f in runtime_imports() if reaches_into(f)]
    reaching = [f"{modules()[f.importer].relative_to(SRC.parent)}:{f.line} imports {f.imported}: import the name "
                f"from {package_of(f.imported)} instead, and export it from "
                f"{modules()[package_of(f.imported)].relative_to(SRC.parent)} and its __all__ (loaded on first use, "
                "as in src/sluice/cost/__init__.py, if it pulls a heavy dependency); "
                "or, where that makes a cycle or loads what cannot wait, add "
                f"'{f.importer} -> {f.imported}' with its reason to SUBMODULE_IMPORTS_ALLOWED"
                for f in found if f"{f.importer} -> {f.imported}" not in SUBMODULE_IMPORTS_ALLOWED]
    assert not reaching, "imports that reach into another package's submodule:\n" + "\n".join(reaching)
    stale = sorted(set(SUBMODULE_IMPORTS_ALLOWED) - {f"{f.importer} -> {f.imported}" for f in found})
    assert not stale, f"SUBMODULE_IMPORTS_ALLOWED names imports that no longer reach into a submodule: {stale}"


@pytest.mark.parametrize("package", ["sluice.sim", "sluice.loadtest"])
def test_the_simulator_and_the_bench_client_load_no_database_or_redis_client(package: str) -> None:
    code = ("import importlib, pkgutil, sys\n"
            f"package = importlib.import_module({package!r})\n"
            "for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
            "    importlib.import_module(module.name)\n"
            f"print(sorted({{name.partition('.')[0] for name in sys.modules}} & {set(HEAVY_CLIENTS)!r}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"importing {package} (all its modules) loaded {result.stdout.strip()}"


def main() -> None:
    """Print the package graph, its layers and numbers: module-level and in-function imports counted apart."""
    graph = package_graph()
    found = list(runtime_imports())
    crossing = [f for f in found if package_of(f.importer) != package_of(f.imported)]
    lazy = defaultdict(int)
    for f in crossing:
        if f.in_function:
            lazy[(package_of(f.importer), package_of(f.imported))] += 1
    type_only = sorted({(package_of(f.importer), package_of(f.imported)) for module in modules()
                        for f in imports_of(module) if f.type_checking
                        and package_of(f.importer) != package_of(f.imported)})
    print(f"{len(modules())} modules, {len(graph)} packages, {sum(map(len, graph.values()))} package edges")
    print(f"cross-package imports: {len(crossing)} ({sum(lazy.values())} inside functions)")
    for level, packages in enumerate(LAYERS):
        for package in packages:
            print(f"  {level} {package} -> {', '.join(sorted(graph.get(package, ()))) or '-'}")
    print("inside functions:", ", ".join(f"{a} -> {b} ({n})" for (a, b), n in sorted(lazy.items())) or "none")
    print("type-checking only:", ", ".join(f"{a} -> {b}" for a, b in type_only) or "none")
    print("cycles:", cycles(graph) or "none")


if __name__ == "__main__":
    main()
