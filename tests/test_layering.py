"""The import rule: one direction of dependency, no cycles.

Every module of the platform's packages is read with `ast` (function-local imports and imports under
`TYPE_CHECKING` included). Packages form layers, lowest first:

    beffroi (kernel) <- simulators <- ingest <- analytics <- api <- tower (composition)

A module may import its own layer and the layers below it, never one above. The simulators stand
for the outside world: only the composition imports them (analytics reads their ground truth as
data). No two modules may import each other, directly or through others.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS: tuple[str, ...] = ("beffroi", "simulators", "ingest", "analytics", "api", "tower")
# below a layer but still out of its reach
APART: frozenset[tuple[str, str]] = frozenset(
    {("ingest", "simulators"), ("analytics", "simulators"), ("api", "simulators")}
)


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted (the most specific module that exists in the tree)
    path: Path
    line: int

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _statements(node: ast.AST) -> Iterator[ast.AST]:
    """Every statement, however nested (imports are statements: expressions need no visit)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
            yield child
            yield from _statements(child)


def scan(root: Path, packages: tuple[str, ...]) -> tuple[set[str], list[Import]]:
    """All modules under `packages` and every import among them (imports of other packages dropped)."""
    files = {module_name(root, p): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    modules = set(files)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    imports: list[Import] = []
    seen: set[Import] = set()
    for source, path in files.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _statements(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = source.split(".") if is_pkg else source.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join([*base, node.module] if node.module else base)
                else:
                    mod = node.module or ""
                # `from pkg import sub` imports the submodule when there is one
                names = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
            for name in names:
                if name.split(".")[0] not in packages:
                    continue
                target = resolve(name)
                imp = Import(source, target, path, node.lineno) if target else None
                if imp is not None and target != source and imp not in seen:
                    seen.add(imp)
                    imports.append(imp)
    return modules, imports


def direction_violations(
    root: Path, imports: list[Import], layers: tuple[str, ...], apart: frozenset[tuple[str, str]] = APART
) -> list[str]:
    rank = {pkg: i for i, pkg in enumerate(layers)}
    bad = []
    for imp in imports:
        src, dst = imp.source.split(".")[0], imp.target.split(".")[0]
        if rank[dst] > rank[src]:
            bad.append(f"{imp.where(root)}: {imp.source} imports {imp.target} (layer {dst} is above {src})")
        elif (src, dst) in apart:
            bad.append(f"{imp.where(root)}: {imp.source} imports {imp.target} ({src} never imports {dst})")
    return bad


def cycles(root: Path, modules: set[str], imports: list[Import]) -> list[str]:
    """One line per strongly connected group of modules: a cycle through it, each step with file:line."""
    edges: dict[str, dict[str, Import]] = {m: {} for m in modules}
    for imp in imports:
        edges[imp.source].setdefault(imp.target, imp)

    # Tarjan's strongly connected components, iterative
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(modules):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    reports = []
    for group in groups:
        members = set(group)
        # shortest way back to the first member, breadth first inside the group
        first = group[0]
        parent: dict[str, str] = {}
        frontier = [first]
        found = False
        while frontier and not found:
            nxt = []
            for node in frontier:
                for child in sorted(edges[node]):
                    if child not in members:
                        continue
                    if child == first:
                        parent[first] = node
                        found = True
                        break
                    if child not in parent:
                        parent[child] = node
                        nxt.append(child)
                if found:
                    break
            frontier = nxt
        path = [first]
        node = parent[first]
        while node != first:
            path.append(node)
            node = parent[node]
        path.append(first)
        path.reverse()
        steps = [f"{a} -> {b} ({edges[a][b].where(root)})" for a, b in itertools.pairwise(path)]
        reports.append("cycle: " + "; ".join(steps))
    return reports


@functools.cache
def _real_tree() -> tuple[set[str], list[Import]]:
    return scan(ROOT, LAYERS)


def test_imports_follow_the_layers() -> None:
    _, imports = _real_tree()
    bad = direction_violations(ROOT, imports, LAYERS)
    assert not bad, "imports against the direction of dependency:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    modules, imports = _real_tree()
    found = cycles(ROOT, modules, imports)
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_kernel_and_composition_packages_exist() -> None:
    modules, imports = _real_tree()
    assert {"beffroi.events", "beffroi.records", "tower.cli", "tower.settings"} <= modules
    assert len(imports) > 100  # the scan sees the real tree, not an empty one


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_rule_catches_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/ok.py": "import os\n",
            "low/bad.py": "def f():\n    from high.top import thing\n    return thing\n",
            "high/__init__.py": "",
            "high/top.py": "from low.ok import *\nthing = 1\n",
            "side/__init__.py": "",
            "side/s.py": "import low.ok\n",
            "high/d.py": "import side.s\n",
            "high/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from high import b\n",
            "high/b.py": "from . import c\n",
            "high/c.py": "import high.a\n",
        },
    )
    layers = ("low", "side", "high")
    modules, imports = scan(tmp_path, layers)
    bad = direction_violations(tmp_path, imports, layers, frozenset({("high", "side")}))
    assert sorted(bad) == [
        "high/d.py:1: high.d imports side.s (high never imports side)",
        "low/bad.py:2: low.bad imports high.top (layer high is above low)",
    ]
    found = cycles(tmp_path, modules, imports)
    assert found == [
        "cycle: high.a -> high.b (high/a.py:3); high.b -> high.c (high/b.py:1); "
        "high.c -> high.a (high/c.py:1)"
    ]


def test_the_rule_accepts_a_clean_tree(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/ok.py": "import os\n",
            "high/__init__.py": "from low import ok\n",
            "high/top.py": "from low.ok import os\nfrom . import __name__ as n\n",
        },
    )
    layers = ("low", "high")
    modules, imports = scan(tmp_path, layers)
    assert direction_violations(tmp_path, imports, layers) == []
    assert cycles(tmp_path, modules, imports) == []
    assert any(i.source == "high.top" and i.target == "low.ok" for i in imports)


@pytest.mark.parametrize("level", [1, 2])
def test_relative_imports_resolve(tmp_path: Path, level: int) -> None:
    _write(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/sub/__init__.py": "",
            "low/sub/m.py": f"from {'.' * level}x import y\n",
            "low/x.py": "y = 1\n",
            "low/sub/x.py": "y = 1\n",
        },
    )
    _, imports = scan(tmp_path, ("low",))
    expected = "low.sub.x" if level == 1 else "low.x"
    assert [i.target for i in imports if i.source == "low.sub.m"] == [expected]
