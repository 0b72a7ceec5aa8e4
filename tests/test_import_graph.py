"""The floors of the house (docs/STYLE.md), read from the code's own imports.

Every project module is parsed with `ast`; every import counts, at module level or inside a
function, so a function-local import cannot hide an upward arrow or a cycle. The floors:

    web · review · data_browser · webhooks    top: may import every floor below, and each other
    active_selection                          may import ranking and labeling
    ranking                                   may import labeling, and only ALLOWED_SIDEWAYS
    labeling                                  ground: imports none of the others
    config                                    wires everything together: anything

and no cycle runs between project modules (imports under `if TYPE_CHECKING:` never run and do
not count). Run: .venv/bin/python -m pytest tests/test_import_graph.py
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOORS = {
    "labeling": 0,
    "ranking": 1,
    "active_selection": 2,
    "web": 3,
    "review": 3,
    "data_browser": 3,
    "webhooks": 3,
    "config": 4,
}

# ranking's training reads the pairs and implied grades active selection stores (their models
# live in active_selection, with their migrations), and the per-modality offset estimate of
# the pure calibration module. These are the only rooms of the floor above it may enter; any
# other import of active_selection from ranking fails below.
ALLOWED_SIDEWAYS = {
    ("ranking", "active_selection.models"),
    ("ranking", "active_selection.calibration"),
    ("ranking", "active_selection.strategies"),
}

Graph = dict[str, dict[str, int]]  # module -> imported module -> line of the first import


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file of every Python module of the project's packages."""
    modules = {}
    for package in FLOORS:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list:
    """The dotted names an import statement may load, most specific first for each alias."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base_parts = package[: len(package) - (node.level - 1)]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    # `from a.b import c` loads the module a.b.c if there is one, else it reads a name of a.b.
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def _is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`): imports for annotations, never run."""
    name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
    return name == "TYPE_CHECKING"


def build_graph(modules: dict[str, Path]) -> Graph:
    """Module -> the project modules it imports (anywhere in the file), with a line number."""
    graph: Graph = {name: {} for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        type_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and _is_type_checking(node.test)
            for statement in node.body
            for inner in ast.walk(statement)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in type_only:
                continue
            found = []
            names = _imported_names(node, name, is_package)
            for target in names:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target:
                    found.append(target)
            if isinstance(node, ast.ImportFrom):
                # The base counts only when some alias is not a module of its own.
                submodules = {f for f in found[:-1] if f != found[-1]} if found else set()
                if found and len(submodules) == len(node.names):
                    found = found[:-1]
            for target in found:
                if target != name:
                    graph[name].setdefault(target, node.lineno)
    return graph


def _app(module: str) -> str:
    return module.split(".")[0]


def layer_violations(graph: Graph, floors: dict[str, int] = FLOORS, allowed=ALLOWED_SIDEWAYS):
    """Every import that points up a floor (or sideways where not allowed), as sentences."""
    problems = []
    for module, targets in sorted(graph.items()):
        for target, line in sorted(targets.items()):
            here, there = _app(module), _app(target)
            if here == there or here not in floors or there not in floors:
                continue
            if floors[there] < floors[here] or floors[here] == max(floors.values()):
                continue
            if floors[there] == floors[here] and floors[here] == 3:
                continue  # the top floor's apps may use each other (no cycles, checked apart)
            if (here, target) in allowed:
                continue
            problems.append(f"{module} (line {line}) imports {target}: {here} is below {there}")
    return problems


def find_cycle(graph: Graph) -> list[str] | None:
    """A cycle of imports as a path [a, b, ..., a], or None (depth-first, iterative)."""
    colour: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if colour.get(start):
            continue
        path = [start]
        stack = [iter(sorted(graph.get(start, {})))]
        colour[start] = 1
        while stack:
            target = next(stack[-1], None)
            if target is None:
                colour[path.pop()] = 2
                stack.pop()
                continue
            if colour.get(target) == 1:
                return path[path.index(target) :] + [target]
            if not colour.get(target):
                colour[target] = 1
                path.append(target)
                stack.append(iter(sorted(graph.get(target, {}))))
    return None


# --- the project --------------------------------------------------------------------------


def test_each_floor_imports_only_the_floors_below():
    problems = layer_violations(build_graph(project_modules()))
    assert not problems, "Imports that point up a floor:\n" + "\n".join(problems)


def test_no_import_cycle_between_project_modules():
    cycle = find_cycle(build_graph(project_modules()))
    assert cycle is None, "Import cycle: " + " -> ".join(cycle)


def test_the_graph_sees_function_local_and_relative_imports():
    graph = build_graph(project_modules())
    assert "labeling.models" in graph["labeling.selectors"]  # from .models import ...
    assert "labeling.signals" in graph["active_selection.apps"]  # inside ready()
    assert "web.dashboard" in graph["web.views_lead"]  # from . import dashboard


# --- the checks themselves can fail -------------------------------------------------------


def test_a_synthetic_upward_import_and_cycle_are_reported(tmp_path):
    files = {
        "labeling/__init__.py": "",
        "labeling/models.py": "",
        "labeling/views.py": "def f():\n    from ranking.services import train\n",
        "ranking/__init__.py": "",
        "ranking/services.py": "from labeling import models\nfrom . import tasks\n",
        "ranking/tasks.py": "from ranking import services\n",
        "ranking/models.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import services\n",
        "web/__init__.py": "",
        "web/views.py": "import ranking.services\nfrom labeling.views import *\n",
    }
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    modules = {
        name: path
        for name, path in project_modules(tmp_path).items()
        if _app(name) in {"labeling", "ranking", "web"}
    }
    graph = build_graph(modules)
    assert graph["web.views"] == {"ranking.services": 1, "labeling.views": 2}
    assert graph["ranking.models"] == {}  # an import for annotations only never runs
    assert layer_violations(graph) == [
        "labeling.views (line 2) imports ranking.services: labeling is below ranking"
    ]
    assert find_cycle(graph) == ["ranking.services", "ranking.tasks", "ranking.services"]
    del graph["ranking.tasks"]["ranking.services"]
    assert find_cycle(graph) is None


def test_a_sideways_import_is_allowed_only_where_listed():
    graph = {
        "ranking.services": {"active_selection.models": 1, "active_selection.tasks": 2},
        "active_selection.models": {},
        "active_selection.tasks": {},
    }
    assert layer_violations(graph) == [
        "ranking.services (line 2) imports active_selection.tasks: ranking is below "
        "active_selection"
    ]


# --- tasks named rather than imported ---------------------------------------------------------


def _named_tasks(modules: dict[str, Path]) -> dict[str, str]:
    """Task name -> the module that queues it by name (`signature("app.tasks.name", ...)`)."""
    named = {}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "signature"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                named[node.args[0].value] = module
    return named


def test_every_task_queued_by_name_is_a_registered_task():
    # A module that a tasks module runs queues that task by its name, not by importing it (the
    # import would close a cycle); a wrong name would only fail in a worker, so it fails here.
    from config.celery import app

    named = _named_tasks(project_modules())
    assert {"ranking.tasks.retrain_reranker", "labeling.tasks.run_import"} <= set(named)
    unknown = {name: module for name, module in named.items() if name not in app.tasks}
    assert not unknown, f"Tasks queued by a name no task has: {unknown}"
