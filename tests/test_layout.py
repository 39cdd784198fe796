"""The layout's rules, read from the source: dependencies point one way (cli and web, then
deployments, flows, tasks, then the plain packages), and no module imports itself in a circle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("upload_jobs", "tasks", "flows", "deployments", "bench")


def layer(module: str) -> int:
    """Higher may import lower, never the other way. `deployments` itself only names what the
    project registers (the sweep's tasks start runs of those names); its modules serve them."""
    if module.startswith(("upload_jobs.cli", "upload_jobs.web")):
        return 5
    if module == "deployments":
        return 1
    # upload_jobs: settings, errors, media, storage, jobs: plain Python, no Prefect.
    return {"upload_jobs": 0, "tasks": 2, "flows": 3, "deployments": 4, "bench": 6}[
        module.split(".")[0]
    ]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(
    path: Path, packages: tuple[str, ...] = PACKAGES, *, for_types: bool = False
) -> Iterator[str]:
    """The modules of `packages` that `path` imports when it runs (at the top or inside
    functions), and with `for_types` those only type checkers read too."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in type_only and not for_types:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from upload_jobs.media import samples` imports upload_jobs.media.samples.
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        yield from (name for name in names if name.split(".")[0] in packages)


def import_graph(*, for_types: bool = False) -> dict[str, set[str]]:
    modules = {
        module_name(path): path
        for package in PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
    }
    return {
        name: {target for target in runtime_imports(path, for_types=for_types) if target in modules}
        - {name}
        for name, path in modules.items()
    }


def test_dependencies_point_one_way() -> None:
    wrong = sorted(
        f"{source} ({layer(source)}) imports {target} ({layer(target)})"
        for source, targets in import_graph().items()
        for target in targets
        if layer(target) > layer(source)
    )
    assert wrong == []


def test_the_plain_packages_never_import_prefect() -> None:
    plain = [
        path for path in (REPO_ROOT / "upload_jobs").rglob("*.py") if layer(module_name(path)) == 0
    ]
    assert plain, "the layout changed: update this test"
    assert [str(p) for p in plain if any(runtime_imports(p, ("prefect",)))] == []


@pytest.mark.parametrize("for_types", [False, True], ids=["at-run-time", "for-type-checkers"])
def test_no_module_imports_itself_in_a_circle(for_types: bool) -> None:
    # Imports only type checkers read count too: a circle hidden behind TYPE_CHECKING is still
    # two modules that cannot change apart.
    graph = import_graph(for_types=for_types)
    seen: set[str] = set()

    def walk(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in seen:
            return None
        seen.add(module)
        for target in sorted(graph.get(module, ())):
            # A package's __init__ runs when any of its modules is imported: not a circle.
            if module.startswith(target + "."):
                continue
            if circle := walk(target, [*path, module]):
                return circle
        return None

    circles = [circle for module in sorted(graph) if (circle := walk(module, []))]
    assert circles == []


def test_plain_packages_say_what_they_hold() -> None:
    for package in ("media", "storage", "jobs", "cli", "web"):
        init = REPO_ROOT / "upload_jobs" / package / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init} has no docstring"
