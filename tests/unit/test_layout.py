"""The package's shape, read from its own source: no import circles, no reaching into another module's privates,
and every public name the README and docs use importable.

The import graph is built with ``ast`` from every module under ``src/offload``: module-level and function-level
imports alike (a lazy import is still a dependency), and ``importlib.import_module("offload....")`` with a literal
name. Imports under ``if TYPE_CHECKING:`` are left out: they never run. A package's ``__init__`` is not counted as a
dependency of its submodules (Python runs it first whatever the order), only where a module imports a name from it.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "offload"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    found: list[ast.AST] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def _known(name: str) -> str | None:
    """The module of ours that importing ``name`` runs last: ``name`` itself or its longest known prefix."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _base(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if module in PACKAGES else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


class Imports:
    """What one module imports: the modules it depends on, and the private names it takes from others."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.edges: dict[str, set[str]] = {}  # target module -> names taken from it
        self.private: list[str] = []
        aliases: dict[str, str] = {}  # local name -> module of ours it stands for
        tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
        nodes = _runtime_nodes(tree)
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _known(alias.name)
                    if target:
                        self._add(target, "*")
                        aliases[alias.asname or alias.name.split(".")[0]] = target if alias.asname else "offload"
            elif isinstance(node, ast.ImportFrom):
                base = _base(module, node)
                if _known(base) is None and not base.startswith("offload"):
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in MODULES:
                        self._add(sub, "*")
                        aliases[alias.asname or alias.name] = sub
                        continue
                    target = _known(base)
                    if target is None:
                        continue
                    self._add(target, alias.name)
                    if alias.name.startswith("_") and not alias.name.startswith("__") and target != module:
                        self.private.append(f"{alias.name} from {target}")
            elif isinstance(node, ast.Call) and _is_import_module(node):
                target = _known(node.args[0].value)  # type: ignore[attr-defined]
                if target:
                    self._add(target, "*")
        for node in nodes:  # module._private, for modules of ours imported whole
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                target = aliases[node.value.id]
                if target != module and f"{target}.{node.attr}" not in MODULES:
                    self.private.append(f"{node.attr} of {target}")

    def _add(self, target: str, name: str) -> None:
        if target != self.module:
            self.edges.setdefault(target, set()).add(name)


def _is_import_module(node: ast.Call) -> bool:
    func = node.func
    named = (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module")
    return named and bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(
        node.args[0].value, str)


def import_graph() -> dict[str, Imports]:
    return {name: Imports(name) for name in MODULES}


def cycles(graph: dict[str, Imports]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node].edges:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def test_graph_sees_imports() -> None:
    """The graph is not empty by accident: known edges are there."""
    graph = import_graph()
    assert "offload.jobs" in graph["offload.app"].edges
    assert "offload.codec" in graph["offload.jobs"].edges
    assert len(graph) > 40


def test_no_import_circles() -> None:
    graph = import_graph()
    found = cycles(graph)
    described = []
    for component in found:
        members = set(component)
        arrows = [f"  {a} -> {b}: {', '.join(sorted(graph[a].edges[b]))}"
                  for a in component for b in sorted(graph[a].edges) if b in members]
        described.append(f"circle of {len(component)}:\n" + "\n".join(arrows))
    assert not found, "\n".join(described)


def test_no_private_names_from_other_modules() -> None:
    offenders = {name: imports.private for name, imports in import_graph().items() if imports.private}
    assert not offenders, "\n".join(f"{name} takes {', '.join(found)}" for name, found in sorted(offenders.items()))


# -- every public name the README and docs use ----------------------------------------------------------------------
_FROM_IMPORT = re.compile(r"^\s*from (offload(?:\.\w+)*) import ([\w, ()]+)", re.M)
_DOTTED = re.compile(r"(?<![\w./-])(offload(?:\.[A-Za-z_]\w*)+)(\()?")


def documented_names() -> set[str]:
    """``offload.x.y`` names the docs call or name as classes, and ``from offload... import`` lines."""
    names: set[str] = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for module, imported in _FROM_IMPORT.findall(text):
            for name in imported.replace("(", "").replace(")", "").split(","):
                if name.strip():
                    names.add(f"{module}.{name.strip()}")
        for dotted, call in _DOTTED.findall(text):
            last = dotted.rsplit(".", 1)[1]
            if call or (last[:1].isupper() and not last.isupper()):
                names.add(dotted)
    return names


def resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            target = getattr(target, attr)
        return target
    raise ModuleNotFoundError(dotted)


def test_docs_name_public_things() -> None:
    names = documented_names()
    assert "offload.enqueue" in names and "offload.webhooks.verify" in names  # the scan reads what it should


@pytest.mark.parametrize("dotted", sorted(documented_names()))
def test_documented_name_imports(dotted: str) -> None:
    if dotted.startswith("offload.web"):
        pytest.importorskip("flask")
    if dotted.startswith("offload.contrib.ckan"):
        pytest.importorskip("ckan")  # tests/ckan checks these in the CKAN venv
    assert resolve(dotted) is not None


# -- docs/architecture.md's layout section matches the tree ----------------------------------------------------------
def documented_layout() -> list[list[str]]:
    """The layout block of docs/architecture.md as a list of rows, each the files or folders one line names
    first (``stores/``, ``jobs.py``; a row may name several, comma-separated)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## How the code is laid out", 1)[1].split("```", 2)[1]
    rows = []
    for line in block.splitlines()[1:]:
        if not line.startswith("  ") or line.startswith("   "):
            continue  # the heading line, or a continuation
        names = line.strip().split("  ")[0]
        rows.append([name.strip() for name in names.split(",") if name.strip()])
    return rows


def _row_of(module: str, rows: list[list[str]]) -> int | None:
    relative = module.removeprefix("offload").lstrip(".").replace(".", "/")
    for index, row in enumerate(rows):
        for name in row:
            if name.endswith("/") and (relative + "/").startswith(name):
                return index
            if not name.endswith("/") and (relative + ".py" == name or (relative == "" and name == "__init__.py")):
                return index
    return None


def test_architecture_layout_names_every_module() -> None:
    rows = documented_layout()
    missing = [name for name in MODULES if _row_of(name, rows) is None]
    assert not missing, f"docs/architecture.md's layout leaves out: {missing}"
    named = [name for row in rows for name in row]
    gone = [name for name in named if not (PACKAGE / name.rstrip("/")).exists()]
    assert not gone, f"docs/architecture.md's layout names what is not in src/offload: {gone}"


def test_modules_import_only_what_the_layout_lists_before_them() -> None:
    """The layout is in dependency order: a module imports only from its own row or rows above it."""
    rows = documented_layout()
    upward = []
    for name, imports in import_graph().items():
        here = _row_of(name, rows)
        for target in imports.edges:
            there = _row_of(target, rows)
            if here is not None and there is not None and there > here:
                upward.append(f"{name} (row {here}) imports {target} (row {there})")
    assert not upward, "\n".join(upward)
