"""The shape of the code: the package's modules import each other without a cycle, and no test module imports
another test module (shared helpers live in tests/helpers.py, shared fixtures in tests/conftest.py)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest_aigve

PACKAGE_DIR = Path(pytest_aigve.__file__).parent
TESTS_DIR = Path(__file__).parent


def module_name(path: Path, root: Path, package: str) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path, PACKAGE_DIR, "pytest_aigve"): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at module level or inside functions, except those under `if TYPE_CHECKING:`."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from runtime_imports(node.orelse)
        else:
            yield from runtime_imports(ast.iter_child_nodes(node))


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that the module `name` (file `path`) imports. `from .a import b` imports a.b where
    that is a module, else a; the parent packages a dotted import also runs are not counted (every submodule
    would otherwise form a cycle with its package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in runtime_imports([ast.parse(path.read_text(encoding="utf-8"), str(path))]):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[:len(anchor) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return (found & known) - {name}


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once every path from it was followed
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_one_and_only_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]


def test_imports_are_resolved_like_python_does(tmp_path: Path) -> None:
    source = tmp_path / "pkg" / "sub" / "mod.py"
    source.parent.mkdir(parents=True)
    source.write_text("from typing import TYPE_CHECKING\nfrom . import sibling\nfrom .. import top\n"
                      "from ..other import thing\nimport pkg.plain\n"
                      "if TYPE_CHECKING:\n    from ..typing_only import T\n"
                      "def late():\n    from ..lazy import x\n")
    known = {"pkg", "pkg.sub", "pkg.sub.mod", "pkg.sub.sibling", "pkg.top", "pkg.other", "pkg.plain",
             "pkg.typing_only", "pkg.lazy"}
    assert imported_modules("pkg.sub.mod", source, known) == {
        "pkg.sub.sibling", "pkg.top", "pkg.other", "pkg.plain", "pkg.lazy"}


def test_package_imports_have_no_cycle() -> None:
    graph = import_graph()
    assert {"pytest_aigve.options", "pytest_aigve.report.results"} <= graph["pytest_aigve.plugin"]
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_no_test_module_imports_another() -> None:
    tests = {module_name(path, TESTS_DIR, "tests") for path in TESTS_DIR.glob("test_*.py")}
    tests |= {"tests.conftest"}
    offenders = {
        path.name: sorted(imported_modules(module_name(path, TESTS_DIR, "tests"), path, tests))
        for path in sorted(TESTS_DIR.glob("test_*.py"))}
    assert {name: found for name, found in offenders.items() if found} == {}
