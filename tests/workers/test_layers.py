"""The import contracts of pyproject.toml (`[tool.importlinter]`): the layers of DESIGN.md (tasks import the domain,
never the reverse) and no import cycle between the modules of a package. `lint-imports` checks them as `make lint`
does; grimp, on the same import graph, shows that each contract breaks when an upward import or a cycle is added."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

from workers.chain.artifacts import project_root


def contract(kind: str) -> dict:
    config = tomllib.loads((project_root() / "pyproject.toml").read_text())["tool"]["importlinter"]
    (found,) = [c for c in config["contracts"] if c["type"] == kind]
    return found


def layers() -> list[grimp.Layer]:
    return [
        grimp.Layer(*(name.strip() for name in layer.split("|")), independent=True)
        for layer in contract("layers")["layers"]
    ]


@pytest.fixture
def graph() -> grimp.ImportGraph:
    """The package's import graph, built afresh for each test (tests add imports to it)."""
    return grimp.build_graph("workers", cache_dir=None)


def test_lint_imports_keeps_every_contract():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports)], cwd=project_root(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_package_of_workers_has_a_layer(graph):
    placed = {name.strip() for layer in contract("layers")["layers"] for name in layer.split("|")}
    top_level = {module for module in graph.find_children("workers") if not module.endswith("__main__")}
    assert top_level == placed


def test_an_upward_import_breaks_the_layers(graph):
    assert graph.find_illegal_dependencies_for_layers(layers=layers()) == set()
    graph.add_import(importer="workers.rounds.steps", imported="workers.tasks.runner")  # a step calling its task
    graph.add_import(importer="workers.rounds.chain", imported="workers.data.chain")  # two sides of one layer
    illegal = graph.find_illegal_dependencies_for_layers(layers=layers())
    assert {(d.importer, d.imported) for d in illegal} == {
        ("workers.rounds", "workers.tasks"),
        ("workers.rounds", "workers.data"),
    }


def test_a_cycle_between_modules_of_a_package_is_found(graph):
    assert contract("acyclic_siblings")["ancestors"] == ["workers"]
    assert graph.nominate_cycle_breakers("workers.data") == set()
    graph.add_import(importer="workers.data.records", imported="workers.data.steps")  # steps -> chain -> records
    assert graph.nominate_cycle_breakers("workers.data") != set()
