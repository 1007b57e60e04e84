"""Importing echo_ray is cheap and acyclic.

(a) No import cycles: the graph of every module's imports, built with ast over echo_ray/,
    has no cycle. Imports inside functions count (a lazy import still ties two modules
    together; it only hides the cycle until the function runs); those under
    `if TYPE_CHECKING:` do not (they never run). An edge goes to the module imported (`from echo_ray.a import b` goes to echo_ray.a.b when that is a
    module, else to echo_ray.a); the parent packages Python initialises on the way are not
    edges, as they are already initialising when a submodule imports its siblings.
(b) The pure packages (dtesn, cache, routing, autoscaling, cognitive) import without Ray.
(c) Importing any module, in a fresh interpreter, runs nothing heavy: no ray.init, no Serve
    application built (`.bind()`), no FastAPI app made, no thread started.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "echo_ray"
PURE = ("dtesn", "cache", "routing", "autoscaling", "cognitive")

# Known cycles and modules that do work at import, listed so that this test shows everything
# else. An entry that no longer happens fails the test too, so the lists cannot go stale; both
# are empty, and should stay so: settings imports the pure packages' config types, and those
# packages never import settings back (their Ray adapters and the app builder do).
KNOWN_CYCLES: set[frozenset[str]] = set()
KNOWN_IMPORT_WORK: dict[str, set[str]] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(nodes):
    """Every import statement among `nodes` and below, in functions too, but not under
    `if TYPE_CHECKING:` (those never run)."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _imports(node.orelse)
        else:
            yield from _imports(ast.iter_child_nodes(node))


def _resolve(name: str, level: int, importer: str) -> str:
    if not level:
        return name
    is_package = MODULES[importer].name == "__init__.py"
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = graph.setdefault(name, set())
        for node in _imports([ast.parse(path.read_text(), str(path))]):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(node.module or "", node.level, name)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                           for a in node.names]
            edges.update(t for t in targets if t in MODULES and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_imports_it_should():
    """The walker itself: relative, absolute, `from pkg import module` and function-level
    imports all count."""
    graph = import_graph()
    assert "echo_ray.autoscaling.cost" in graph["echo_ray.sim.queueing"]  # absolute
    assert "echo_ray.dtesn.reservoir" in graph["echo_ray.dtesn"]  # relative, package
    assert "echo_ray.checks" in graph["echo_ray.autoscaling.cost"]
    assert "echo_ray.routing.registry" in graph["echo_ray.routing.sim"]  # inside run_all
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n"
                     "else:\n    import b\ndef f():\n    import c\n")
    assert [getattr(n, "module", None) or n.names[0].name for n in _imports([tree])] == [
        "typing", "b", "c"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycles():
    found = {frozenset(c) for c in cycles(import_graph())}
    assert not found - KNOWN_CYCLES, f"import cycles: {[sorted(c) for c in found - KNOWN_CYCLES]}"
    assert not KNOWN_CYCLES - found, f"gone, remove from KNOWN_CYCLES: {KNOWN_CYCLES - found}"


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_import_without_ray(package):
    out = _run(f"""
        import sys
        import echo_ray.{package}
        print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
    """)
    assert out.strip() == "[]", f"importing echo_ray.{package} imported {out.strip()}"


def test_importing_any_module_runs_nothing_heavy():
    """Every module imported in one fresh interpreter, with the heavy calls replaced by ones
    that record who made them (ray.init refuses, so nothing can start a cluster)."""
    out = _run(f"""
        import importlib, json, sys, threading
        import fastapi, ray
        from ray.serve.deployment import Deployment

        events, current = {{}}, [None]

        def record(what):  # charged to the innermost echo_ray frame that made the call
            frame, where = sys._getframe(1), current[0]
            while frame is not None:
                if frame.f_globals.get("__name__", "").startswith("echo_ray"):
                    where = frame.f_globals["__name__"]
                    break
                frame = frame.f_back
            events.setdefault(where, []).append(what)

        def refuse_init(*args, **kwargs):
            record("ray.init")
            raise RuntimeError("ray.init at import")

        ray.init = refuse_init
        bind = Deployment.bind
        Deployment.bind = lambda self, *a, **k: (record("Deployment.bind"), bind(self, *a, **k))[1]
        fastapi_init = fastapi.FastAPI.__init__
        def fastapi_app(self, *a, **k):
            record("FastAPI()")
            fastapi_init(self, *a, **k)
        fastapi.FastAPI.__init__ = fastapi_app

        for name in {sorted(MODULES)!r}:
            current[0] = name
            before = set(threading.enumerate())
            try:
                importlib.import_module(name)
            except Exception as exc:
                record(f"import failed: {{type(exc).__name__}}: {{exc}}")
            started = [t.name for t in set(threading.enumerate()) - before]
            if started:
                record(f"threads started: {{started}}")
        print(json.dumps(events))
    """)
    events = {m: set(e) for m, e in json.loads(out.strip().splitlines()[-1]).items()}
    unexpected = {m: sorted(e - KNOWN_IMPORT_WORK.get(m, set())) for m, e in events.items()}
    unexpected = {m: e for m, e in unexpected.items() if e}
    assert not unexpected, f"work done at import: {unexpected}"
    stale = {m: sorted(e - events.get(m, set())) for m, e in KNOWN_IMPORT_WORK.items()}
    stale = {m: e for m, e in stale.items() if e}
    assert not stale, f"no longer done at import, remove from KNOWN_IMPORT_WORK: {stale}"
