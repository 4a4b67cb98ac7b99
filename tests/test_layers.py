"""One-way layers: every import inside django_s3strata points down the layer table, and none closes a circle.

The whole source is read with ``ast``: every ``import`` anywhere in a module counts, inside
functions and ``if TYPE_CHECKING:`` blocks too, and so do ``importlib.import_module``,
``__import__`` and ``import_string`` calls with a literal name. A module missing from the table
fails the test, so a new module gets a place before it gets imports. The one sanctioned way up
is dependency inversion at run time: the model reaches the FileManager through its AppConfig
(``apps.get_app_config("s3strata").file_manager()``), which the top layer provides.
"""

from __future__ import annotations

import ast
import fnmatch
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import django_s3strata

PACKAGE = "django_s3strata"
ROOT = Path(django_s3strata.__file__).parent

#: The layers, bottom first: a module may import its own layer (without a cycle) and those below.
#: Names are relative to the package ("" is the package's ``__init__``); ``*`` matches as in fnmatch.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("core", "core.*")),
    ("settings", ("compat", "conf")),
    ("model", ("signals", "links", "querysets", "models", "migrations", "migrations.*")),
    ("adapter", ("events", "inserts", "adapters")),
    ("services", ("services",)),
    ("engines", ("uploads", "upload_*", "operations", "operations_*")),
    (
        "faces",
        (
            "middleware",
            "forms",
            "storage",
            "fields",
            "views",
            "downloads",
            "urls",
            "tasks",
            "beat",
            "checks",
            "admin",
            "admin_*",
            "management",
            "management.*",
            "contrib",
            "contrib.*",
        ),
    ),
    ("app", ("apps", "")),
]


def _modules() -> dict[str, Path]:
    """Return {dotted name: file} of every module of the package (a package is its ``__init__``)."""
    found: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([PACKAGE, *parts])] = path
    return found


MODULES = _modules()


def _short(module: str) -> str:
    return module.removeprefix(PACKAGE).removeprefix(".")


def layer_of(module: str) -> int | None:
    """Return the index in LAYERS of ``module``, or None when the table does not place it."""
    name = _short(module)
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return index
    return None


def _target(source: str, name: str | None = None) -> str:
    """Return the module that ``from source import name`` (``import source`` without a name) imports.

    ``name`` counts when it is a submodule; otherwise the import is of ``source`` itself, even
    when no such file exists (yet): it is never taken for its parent package.
    """
    if name is not None and name != "*" and f"{source}.{name}" in MODULES:
        return f"{source}.{name}"
    return source


#: Calls that import the module named by their first argument: they count as imports too.
_IMPORTERS = {"import_module", "__import__", "import_string"}


def _dynamic_import(node: ast.AST) -> str | None:
    """Return the package module a call like ``importlib.import_module("django_s3strata.x")`` imports, or None."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    first = node.args[0]
    if name not in _IMPORTERS or not isinstance(first, ast.Constant) or not isinstance(first.value, str):
        return None
    dotted: str = first.value
    if name == "import_string":  # "pkg.module.attr": the module is all but the last part
        dotted = dotted.rpartition(".")[0]
    return dotted if dotted == PACKAGE or dotted.startswith(PACKAGE + ".") else None


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """Yield (imported package module, line) for every import statement anywhere in ``module``."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        dynamic = _dynamic_import(node)
        if dynamic is not None:
            yield _target(dynamic), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    yield _target(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # "from . import x" in a package is relative to the package itself, in a module to its parent.
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source != PACKAGE and not source.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                # "from pkg import submodule" imports the submodule; "from pkg import name" the package.
                yield _target(source, alias.name), node.lineno


def _graph() -> dict[str, dict[str, int]]:
    """Return {module: {imported module: first line}} for the whole package, self-imports left out."""
    graph: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for module in MODULES:
        for target, line in imports_of(module):
            if target != module:
                graph[module].setdefault(target, line)
    for targets in list(graph.values()):
        for target in targets:
            graph.setdefault(target, {})  # a module imported but not on disk: reported by the tests below
    return graph


def _components(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """Return the strongly connected components of ``graph`` that have more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan; the package is small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(set(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Return one shortest cycle through each strongly connected component of ``graph``."""
    return [_cycle_in(graph, c) for c in _components(graph)]


def _cycle_in(graph: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """Return a shortest cycle through the first (sorted) module of ``component``, start repeated at the end."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node]):
                if nxt == start:
                    return [*paths[node], start]
                if nxt in component and nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # unreachable for a strongly connected component


def _edge(graph: dict[str, dict[str, int]], a: str, b: str) -> str:
    return f"{_short(a) or '__init__'} -> {_short(b) or '__init__'} (line {graph[a][b]})"


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(_short(m) for m in MODULES if layer_of(m) is None)
    assert not unplaced, f"Place these modules in LAYERS of tests/test_layers.py: {', '.join(unplaced)}"


def test_every_import_names_a_module_of_the_package() -> None:
    graph = _graph()
    missing = sorted(
        f"{_short(m)} imports {_short(t)} (line {line})" for m, ts in graph.items() for t, line in ts.items() if t not in MODULES
    )
    assert not missing, "Imports of modules that do not exist:\n  " + "\n  ".join(missing)


def test_imports_never_point_up() -> None:
    graph = _graph()
    upward = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{_edge(graph, module, target)}: {LAYERS[mine][0]} imports {LAYERS[theirs][0]}")
    assert not upward, "Imports of a higher layer:\n  " + "\n  ".join(upward)


def test_no_import_cycles() -> None:
    graph = _graph()
    shown = []
    for component in _components(graph):
        cycle = _cycle_in(graph, component)
        edges = ", ".join(_edge(graph, a, b) for a, b in itertools.pairwise(cycle))
        members = ", ".join(sorted(_short(m) or "__init__" for m in component))
        shown.append(f"{edges}\n    (the circle's modules: {members})")
    assert not shown, "Import cycles:\n  " + "\n  ".join(shown)


def test_the_checker_sees_function_level_and_relative_imports() -> None:
    graph = _graph()
    # A function-level relative import (apps.ready) and a parent-relative one (management.commands).
    assert f"{PACKAGE}.checks" in graph[f"{PACKAGE}.apps"]
    assert f"{PACKAGE}.services" in graph[f"{PACKAGE}.management.base"]
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c", "a"]]


# -- the wiring that keeps the arrows down -------------------------------------------------------


@pytest.fixture
def no_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any use of the FileManager fail: what runs under it needs only the layout and the ORM."""
    from django_s3strata.apps import DjangoS3StrataConfig

    def refuse(self: Any) -> Any:
        raise AssertionError("the FileManager was asked for")

    monkeypatch.setattr(DjangoS3StrataConfig, "file_manager", refuse)


@pytest.mark.django_db
def test_visibility_and_its_filters_need_no_manager(no_manager: None) -> None:
    from django_s3strata.adapters import DjangoORMSyncAdapter
    from django_s3strata.core import FileVisibility, StorageTier
    from django_s3strata.models import PhysicalFile

    adapter = DjangoORMSyncAdapter()
    public = adapter.create(StorageTier.HOT, "a", "public/a", None)
    private = adapter.create(StorageTier.COLD, "b", "private/b", None)
    adapter.update(private.pk, path="public/b")
    adapter.update(private.pk, path="private/b")
    assert public.visibility is FileVisibility.PUBLIC and private.visibility is FileVisibility.PRIVATE
    assert list(PhysicalFile.objects.public()) == [public] and list(PhysicalFile.objects.private()) == [private]


def test_the_model_layer_reaches_the_manager_through_the_app_config() -> None:
    from django.apps import apps

    from django_s3strata.models import file_manager
    from django_s3strata.services import get_file_manager

    assert file_manager() is get_file_manager() is apps.get_app_config("s3strata").file_manager()


@pytest.mark.django_db
def test_the_storage_cache_forgets_rows_through_its_subscription(no_manager: None) -> None:
    from django_s3strata import events, storage
    from django_s3strata.adapters import DjangoORMSyncAdapter
    from django_s3strata.core import StorageTier

    assert storage.forget_changed in [entry[1]() for entry in events.rows_changed.receivers]  # connected in ready()
    adapter = DjangoORMSyncAdapter()
    record = adapter.create(StorageTier.HOT, "a", "private/a", None)
    storage._records()["a"] = record
    adapter.create(StorageTier.HOT, "b", "private/b", None)
    assert storage._records() == {"a": record}  # a new row makes no cached record stale
    for change in (
        lambda: adapter.update(record.pk, path="public/a"),
        lambda: adapter.update_if(record.pk, StorageTier.HOT, "public/a", storage_tier=StorageTier.COLD),
        lambda: adapter.update_many_if([(adapter.find_by_id(record.pk), {"path": "private/a"})]),
        lambda: adapter.delete(record.pk),
    ):
        storage._records()["a"] = record
        change()
        assert storage._records() == {}  # at once, not on commit


@pytest.mark.django_db
def test_a_batch_nobody_listens_to_registers_no_commit_hook(no_manager: None, django_capture_on_commit_callbacks: Any) -> None:
    from django_s3strata import signals
    from django_s3strata.adapters import DjangoORMSyncAdapter
    from django_s3strata.core import StorageTier

    adapter = DjangoORMSyncAdapter()
    records = [adapter.create(StorageTier.HOT, f"f{i}", f"private/f{i}", None) for i in range(20)]
    moves: list[Any] = [(r, {"storage_tier": StorageTier.COLD, "hot_until": None}) for r in records]
    with django_capture_on_commit_callbacks() as callbacks:
        assert all(adapter.update_many_if(moves[:10]))
    assert callbacks == []  # the storage cache listens, the public signals do not: no hooks

    def receiver(**kwargs: Any) -> None:
        seen.append(kwargs["file"].pk)

    seen: list[int] = []
    signals.file_tier_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert all(adapter.update_many_if(moves[10:]))
    finally:
        signals.file_tier_changed.disconnect(receiver)
    assert len(callbacks) == 10 and seen == [r.pk for r in records[10:]]


def test_dynamic_imports_count() -> None:
    tree = ast.parse(
        "import importlib\n"
        "importlib.import_module('django_s3strata.storage')\n"
        "__import__('django_s3strata.services')\n"
        "import_string('django_s3strata.admin_orphans.OrphansPage')\n"
        "import_module(name)\n"
    )
    found = [_dynamic_import(node) for node in ast.walk(tree)]
    assert {f for f in found if f} == {"django_s3strata.storage", "django_s3strata.services", "django_s3strata.admin_orphans"}
