"""Layering (docs/architecture.md): each layer imports only the layers above it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import windalign

ROOT = Path(windalign.__file__).parent
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("windalign.games", "torch"),
        ("windalign.cli", "torch"),
        ("windalign.registry", "numpy"),
        ("windalign.config", "numpy"),
        ("windalign.resources", "numpy"),
        ("windalign.cli.options", "numpy"),
        ("windalign.objectives", "transformers"),
        ("windalign.preferences", "transformers"),
        ("windalign.llm", "transformers"),  # lazy: only a used name imports the trainer
        ("windalign.llm.data", "torch"),
    ],
)
def test_module_does_not_import(module: str, forbidden: str) -> None:
    code = f"import sys, {module}; bad = {forbidden!r} in sys.modules; sys.exit(3 if bad else 0)"
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == 0, f"importing {module} pulled in {forbidden}"


def test_wind_solve_runs_without_torch(tmp_path) -> None:
    """`wind solve` end to end in a process where importing torch fails."""
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from windalign.cli import main\n"
        f"sys.exit(main(['solve', '--size', '5', '--contexts', '2', '--max-iter', '50',"
        " '--allow-unconverged',"
        f" '--no-progress', '--out', {str(tmp_path)!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "gap.png").is_file()


def module_name(path: Path) -> str:
    """``windalign/bandit/config.py`` -> ``windalign.bandit.config`` (a package is its folder)."""
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, package: str, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that module ``name`` (in ``package``) imports in ``source``, at
    any level: top level, inside functions, under ``if TYPE_CHECKING``. ``from pkg import sub``
    imports ``sub`` when it is a module, else ``pkg``; the parent packages that every import
    runs first are not counted."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..y import z
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            subs = {f"{base}.{alias.name}" for alias in node.names} & modules
            found |= subs or {base}
    return (found & modules) - {name}


def import_graph(package: str) -> dict[str, set[str]]:
    """``module -> the modules of the same subpackage it imports`` for ``windalign.<package>``."""
    files = sorted((ROOT / package).rglob("*.py"))
    modules = {module_name(f) for f in files}
    graph = {}
    for f in files:
        name = module_name(f)
        home = name if f.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = imported_modules(f.read_text(encoding="utf-8"), name, home, modules)
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` (``module -> modules it imports``) as a path, or ``[]``."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for other in sorted(graph[node]):
            if state.get(other) == "open":
                return [*path[path.index(other) :], other]
            if other not in state and (cycle := visit(other)):
                return cycle
        state[node] = "done"
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_inside_a_package(package: str) -> None:
    """No module of a subpackage imports, at any level, a module that imports it back (directly
    or through others): imports inside a package point one way."""
    cycle = import_cycle(import_graph(package))
    assert not cycle, f"import cycle in windalign.{package}: {' -> '.join(cycle)}"


def test_the_cycle_check_sees_every_import() -> None:
    """The check itself: imports inside functions and relative imports are edges; a submodule
    named in ``from package import submodule`` is an edge to it, not to the package."""
    modules = {"w.b", "w.b.config", "w.b.benchmark", "w.b.env"}
    hidden = "def f():\n    from w.b.benchmark import check_runs\n"
    assert imported_modules(hidden, "w.b.config", "w.b", modules) == {"w.b.benchmark"}
    relative = "from .env import EnvConfig\nfrom . import benchmark\nfrom w.b import X\n"
    found = imported_modules(relative, "w.b.config", "w.b", modules)
    assert found == {"w.b.env", "w.b.benchmark", "w.b"}
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycle(graph) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
