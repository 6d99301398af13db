"""The layering rules, checked on the source: every module under src/tierstore is parsed with ``ast`` and its
imports (module level and inside functions; ``if TYPE_CHECKING:`` blocks excluded, they never run) form a
graph of tierstore modules.

1. No import cycle spans two packages. A package is one folder of modules (``tierstore/model/``,
   ``tierstore/stores/sql/`` …); the modules directly under ``tierstore/`` (repository, db, session, joins …)
   are separate layers, so each counts as a package of its own there. Cycles inside one folder are allowed
   (the model's entity/schema pair: a class's metaclass builds its schema).
2. ``tierstore.routing`` is a leaf: everything it imports, directly or not, is in ``tierstore.errors``,
   ``tierstore.model``, ``tierstore.routing`` or ``tierstore.expressions.ast`` (the attribute paths an entity
   class hands out, which import only the errors).
3. A module over 600 lines says in its docstring why it is one piece: the docstring must contain the words
   "one piece" (for example "This module is one piece because …"). ``KNOWN_PENDING`` lists the long modules
   being split while this test was written; the list must only shrink, and an entry that is gone or short
   enough must be removed.
"""

from __future__ import annotations

import ast
import pathlib
import re
from collections.abc import Iterator

SRC = pathlib.Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "tierstore"
MAX_LINES = 600
MARKER = re.compile(r"\bone piece\b", re.IGNORECASE)
ALLOWED_UNDER_ROUTING = ("tierstore.errors", "tierstore.model", "tierstore.routing", "tierstore.expressions.ast")

# Long modules another change is splitting right now (paths relative to src/tierstore). Empty it as they land.
KNOWN_PENDING: set[str] = set()


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str, is_package: bool) -> str:
    """The package a module belongs to for the cycle rule (see the module docstring)."""
    if is_package:
        return module
    parent = module.rsplit(".", 1)[0]
    return module if parent == "tierstore" else parent


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rsplit(".", 1)[0]
        self.found: list[tuple[str, str | None]] = []  # (module, imported name or None)

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.extend((alias.name, None) for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        self.found.extend((base, alias.name) for alias in node.names)


def build_graph() -> tuple[dict[str, set[str]], dict[str, pathlib.Path], set[str]]:
    paths = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    packages = {m for m, p in paths.items() if p.name == "__init__.py"}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        visitor = _Imports(module, module in packages)
        visitor.visit(ast.parse(path.read_text(), str(path)))
        edges: set[str] = set()
        for base, name in visitor.found:
            target = f"{base}.{name}" if name is not None and f"{base}.{name}" in paths else base
            while target and target not in paths:  # `import tierstore.a.b` names a module; keep the deepest known
                target = target.rpartition(".")[0]
            if target and target != module:
                edges.add(target)
        graph[module] = edges
    return graph, paths, packages


def strongly_connected(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Tarjan's algorithm, iterative (the graph is small, but recursion limits are not a test's business)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                yield sorted(component)


def test_the_graph_sees_the_imports_it_should() -> None:
    """Control: the parser finds module-level, function-level and re-exported imports, and skips
    TYPE_CHECKING ones."""
    graph, _, _ = build_graph()
    assert "tierstore.model.schema" in graph["tierstore.routing.slots"]
    assert "tierstore.reshard" in graph["tierstore.cli"]  # `from tierstore import reshard`, in a function
    assert "tierstore.model.schema" in graph["tierstore.model.entity"]  # inside the metaclass
    assert "tierstore.db" not in graph["tierstore.session"]  # only under TYPE_CHECKING
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert any({"tierstore.model.entity", "tierstore.model.schema"} <= set(c) for c in cycles)


def test_cycles_are_found_and_told_apart_by_package() -> None:
    """Control on a made-up graph: a two-package cycle is one component with two units."""
    toy = {"tierstore.a.x": {"tierstore.b.y"}, "tierstore.b.y": {"tierstore.a.x"}, "tierstore.a.z": set()}
    components = sorted(strongly_connected(toy))
    assert components == [["tierstore.a.x", "tierstore.b.y"], ["tierstore.a.z"]]
    assert {unit_of(m, False) for m in components[0]} == {"tierstore.a", "tierstore.b"}
    assert unit_of("tierstore.db", False) == "tierstore.db" and unit_of("tierstore.model", True) == "tierstore.model"


def test_no_import_cycle_spans_two_packages() -> None:
    graph, _, packages = build_graph()
    bad = []
    for component in strongly_connected(graph):
        units = {unit_of(m, m in packages) for m in component}
        if len(component) > 1 and len(units) > 1:
            bad.append(" <-> ".join(component))
    assert not bad, "import cycles across packages:\n" + "\n".join(bad)


def test_routing_is_a_leaf() -> None:
    graph, _, _ = build_graph()
    seen: set[str] = set()
    todo = [m for m in graph if m == "tierstore.routing" or m.startswith("tierstore.routing.")]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(graph[module])
    outside = sorted(m for m in seen if not any(m == a or m.startswith(a + ".") for a in ALLOWED_UNDER_ROUTING))
    assert not outside, f"tierstore.routing reaches {outside}"


def test_long_modules_say_why_they_are_one_piece() -> None:
    _, paths, _ = build_graph()
    unexplained = []
    for path in paths.values():
        rel = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text().splitlines())
        if lines <= MAX_LINES or rel in KNOWN_PENDING:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if not MARKER.search(doc):
            unexplained.append(f"{rel} ({lines} lines)")
    assert not unexplained, (
        f"modules over {MAX_LINES} lines whose docstring does not say why they are one piece: {unexplained}"
    )


def test_known_pending_only_lists_long_modules() -> None:
    stale = []
    for rel in sorted(KNOWN_PENDING):
        path = PACKAGE / rel
        if not path.exists() or len(path.read_text().splitlines()) <= MAX_LINES:
            stale.append(rel)
    assert not stale, f"remove from KNOWN_PENDING (split or short now): {stale}"
