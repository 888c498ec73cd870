"""The dependency rule of docs/ARCHITECTURE.md, 'The layers': the domain is pure, nothing
imports app, and the rooms of app import only what their docstrings allow."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_IN_DOMAIN = {"domain", "eventsourcing", "pydantic", "numpy", "__future__"}
STDLIB_IO = {"os", "socket", "subprocess", "psycopg", "sqlalchemy", "requests", "pathlib"}


def imported_roots(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text())
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_domain_imports_only_itself_and_pure_libraries() -> None:
    for module, names in imported_roots("domain").items():
        third_party = {n for n in names if n not in sys.stdlib_module_names}
        assert third_party <= ALLOWED_IN_DOMAIN, (
            f"{module} imports {third_party - ALLOWED_IN_DOMAIN}"
        )
        assert not names & STDLIB_IO, f"{module} does I/O: {names & STDLIB_IO}"


@pytest.mark.parametrize("package", ["domain", "projections", "adapters"])
def test_nothing_but_app_imports_app(package: str) -> None:
    for module, names in imported_roots(package).items():
        assert "app" not in names, f"{module} imports app"


def test_domain_and_projections_do_not_import_adapters() -> None:
    for package in ("domain", "projections"):
        for module, names in imported_roots(package).items():
            assert "adapters" not in names, f"{module} imports adapters"


def test_every_source_package_is_listed_for_installation() -> None:
    # A package missing from pyproject's explicit list installs nothing, and only a clean
    # install (not an editable one) would notice.

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    for top in ("domain", "projections", "adapters", "app"):
        for init in (ROOT / top).rglob("__init__.py"):
            package = ".".join(init.parent.relative_to(ROOT).parts)
            assert package in listed, f"{package} is not in [tool.setuptools] packages"


WALL_CLOCK_READS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("time", "time"),
    ("date", "today"),
}


def test_only_app_clock_reads_the_wall_clock() -> None:
    # One clock, injected everywhere: a test (or a skewed host) can move it, and no module
    # can date an event by a clock the others do not see. Monotonic timers measure durations
    # and are not domain time.
    readers = []
    for package in ("domain", "projections", "adapters", "app"):
        for path in (ROOT / package).rglob("*.py"):
            module = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and (node.value.id, node.attr) in WALL_CLOCK_READS
                    and module != "adapters/clock.py"
                ):
                    readers.append(f"{module}:{node.lineno}")
    assert readers == []


def module_imports(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Each module of ``packages`` (dotted name) -> the modules of ``packages`` it imports,
    at any depth of its code (TYPE_CHECKING blocks and function bodies included)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets |= {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_no_two_modules_import_each_other_even_through_others() -> None:
    # A cycle means neither module can be read (or changed) without the other: the audit
    # and the incident report were one. Found by depth-first search for a back edge.
    graph = module_imports(("domain", "projections", "adapters", "app"))
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name)
            assert cycle is None, " -> ".join(cycle)


ROOMS = ("commands", "processes", "queries", "entrypoints")


def room_of(module: str) -> str:
    """``app.<room>`` for a module inside a room of ``app``, else the module itself."""
    parts = module.split(".")
    if parts[0] == "app" and len(parts) > 1 and parts[1] in ROOMS:
        return f"app.{parts[1]}"
    return module


def app_room_imports() -> list[tuple[str, str, str]]:
    """(room of the importer, imported module, importer) for every import of an ``app``
    module by a module in a room of ``app``."""
    graph = module_imports(("domain", "projections", "adapters", "app"))
    return [
        (room_of(source), target, source)
        for source, targets in graph.items()
        for target in targets
        if source.startswith("app.") and target.startswith("app")
    ]


def test_app_has_only_its_rooms_bootstrap_and_config_at_its_top() -> None:
    top = {p.name for p in (ROOT / "app").iterdir() if p.name != "__pycache__"}
    assert top <= {"__init__.py", "py.typed", "bootstrap.py", "config.py", *ROOMS}, top
    for room in ROOMS:
        doc = ast.get_docstring(ast.parse((ROOT / "app" / room / "__init__.py").read_text()))
        assert doc and "May import" in doc, f"app/{room}/__init__.py must say what it may import"


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [
        ("app.commands", ("app.entrypoints", "app.processes")),
        ("app.processes", ("app.entrypoints",)),
        ("app.queries", ("app.entrypoints", "app.processes", "app.commands")),
    ],
)
def test_a_room_never_imports_the_rooms_above_it(room: str, forbidden: tuple[str, ...]) -> None:
    # Commands and processes are driven by entrypoints, never the other way; the read side
    # answers from read models and the log, never through the write side's internals.
    wrong = [
        f"{source} imports {target}"
        for importer_room, target, source in app_room_imports()
        if importer_room == room and room_of(target) in forbidden
    ]
    assert not wrong, wrong


def test_nothing_outside_the_entrypoints_imports_them() -> None:
    wrong = [
        f"{source} imports {target}"
        for importer_room, target, source in app_room_imports()
        if room_of(target) == "app.entrypoints" and importer_room != "app.entrypoints"
    ]
    assert not wrong, wrong
