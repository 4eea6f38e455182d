"""A non-editable install ships every file our packages read at run time, not only the Python modules."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("assistant", "memory", "hypotheses")


def test_every_data_file_in_our_packages_is_listed_as_package_data():
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {path for package, patterns in listed.items() for pattern in patterns
               for path in (ROOT / package.replace(".", "/")).glob(pattern)}
    data = {path for package in PACKAGES for path in (ROOT / package).rglob("*")
            if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts}
    assert {ROOT / "assistant/safety/spec.yaml", ROOT / "assistant/ui/templates/console/detail.html"} <= data
    assert sorted(str(p.relative_to(ROOT)) for p in data - shipped) == []
