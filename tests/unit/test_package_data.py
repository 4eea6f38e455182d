"""What a fresh install needs: every file our packages read at run time, and every package our code imports."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("assistant", "memory", "hypotheses")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_data_file_in_our_packages_is_listed_as_package_data():
    listed = PYPROJECT["tool"]["setuptools"]["package-data"]
    shipped = {path for package, patterns in listed.items() for pattern in patterns
               for path in (ROOT / package.replace(".", "/")).glob(pattern)}
    data = {path for package in PACKAGES for path in (ROOT / package).rglob("*")
            if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts}
    assert {ROOT / "assistant/safety/spec.yaml", ROOT / "assistant/ui/templates/console/detail.html"} <= data
    assert sorted(str(p.relative_to(ROOT)) for p in data - shipped) == []


def _name(requirement: str) -> str:
    """A requirement's distribution name in normal form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group()).lower()


def _imported(folders: tuple[str, ...]) -> set[str]:
    """Top-level names our code imports that are neither ours nor the standard library's."""
    names = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {*PACKAGES, "tests"}


def _undeclared(imported: set[str], requirements: list[str]) -> list[str]:
    declared = {_name(r) for r in requirements}
    owners = packages_distributions()
    return sorted(name for name in imported if not {_name(d) for d in owners.get(name, [name])} & declared)


def test_every_package_our_code_imports_is_a_declared_dependency():
    """A dependency, or an extra for an optional feature (matplotlib: `eval`, imported only when it runs)."""
    project = PYPROJECT["project"]
    extras = [r for name, requirements in project["optional-dependencies"].items() if name != "test"
              for r in requirements]
    assert _undeclared(_imported(PACKAGES), project["dependencies"] + extras) == []


def test_every_package_the_tests_import_is_declared_for_them():
    project = PYPROJECT["project"]
    assert _undeclared(_imported(("tests",)), project["dependencies"] + project["optional-dependencies"]["test"]) == []
