"""DESIGN.md's import rules and "nothing built at import time", checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("assistant", "memory", "hypotheses")

# Which of our packages each package may import (dependencies point down only).
ALLOWED = {"assistant": {"assistant", "hypotheses", "memory"}, "hypotheses": {"hypotheses", "memory"},
           "memory": {"memory"}}
# Third-party packages with exactly one home.
SOLE_IMPORTER = {
    "openai": lambda module: module == "assistant.llm",
    "chainlit": lambda module: module.startswith("assistant.ui."),
    "faiss": lambda module: module == "memory.index",
    "sentence_transformers": lambda module: module == "memory.embed",
}
# Parts of our own packages with few importers: nothing the app runs depends on a measurement.
RESTRICTED = {
    "assistant.measure": lambda module: within(module, "assistant.cli") or within(module, "assistant.measure"),
}
# Calls that build a client, an engine, a model or the settings: never at import time.
BUILDERS = {"create_engine", "make_engine", "build_engine", "build_app", "build_gateway", "AsyncOpenAI", "OpenAI",
            "SentenceTransformer", "Settings", "load_settings", "Session", "IndexFlatIP", "load_model"}


def modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = ast.parse(path.read_text(), filename=str(path))
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def private_imports(tree: ast.Module) -> list[str]:
    """Underscore names taken from one of our modules: a helper another module needs is made public."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] in PACKAGES:
            found += [f"{node.module}.{alias.name}" for alias in node.names
                      if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def import_time_builders(tree: ast.Module) -> list[str]:
    """Builder calls in statements that run at import (not inside a function body)."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for decorator in getattr(node, "decorator_list", []):
                visit(decorator)
            return
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in BUILDERS:
                found.append(f"line {node.lineno}: {name}()")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_dependencies_point_down_only():
    wrong = []
    for module, tree in modules().items():
        ours = {name.split(".")[0] for name in imported(tree)} & set(PACKAGES)
        forbidden = ours - ALLOWED[module.split(".")[0]]
        wrong += [f"{module} imports {name}" for name in sorted(forbidden)]
    assert wrong == []


def test_each_heavy_dependency_has_one_importer():
    wrong = []
    for module, tree in modules().items():
        for name in imported(tree):
            top = name.split(".")[0]
            if top in SOLE_IMPORTER and not SOLE_IMPORTER[top](module):
                wrong.append(f"{module} imports {top}")
    assert wrong == []


def test_only_the_command_line_imports_the_measurements():
    wrong = []
    for module, tree in modules().items():
        for name in imported(tree):
            for package, may_import in RESTRICTED.items():
                if within(name, package) and not may_import(module):
                    wrong.append(f"{module} imports {name}")
    assert wrong == []


def test_no_module_imports_another_modules_private_helpers():
    wrong = {module: names for module, tree in modules().items() if (names := private_imports(tree))}
    assert wrong == {}


def test_nothing_is_built_at_import_time():
    wrong = {module: calls for module, tree in modules().items() if (calls := import_time_builders(tree))}
    assert wrong == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import openai\nclient = openai.AsyncOpenAI()", ["line 2: AsyncOpenAI()"]),
        ("from memory.db import make_engine\nENGINE = make_engine('sqlite://')", ["line 2: make_engine()"]),
        ("class A:\n    settings = Settings()", ["line 2: Settings()"]),
        ("def f():\n    return make_engine('x')", []),
        ("@app.route(make_engine('x'))\ndef f():\n    pass", ["line 1: make_engine()"]),
    ],
)
def test_the_import_time_check_catches_what_it_should(source, expected):
    assert import_time_builders(ast.parse(source)) == expected


def test_the_import_rules_catch_a_wrong_arrow():
    tree = ast.parse("from assistant.llm import Purpose\nimport chainlit")
    assert imported(tree) == {"assistant.llm", "chainlit"}


def test_the_restricted_and_private_import_rules_catch_what_they_should():
    tree = ast.parse("from assistant.measure.recall import _store, percentile\nfrom os import _exit\n"
                     "from memory import __version__\nimport assistant.measure")
    assert private_imports(tree) == ["assistant.measure.recall._store"]
    assert [name for name in sorted(imported(tree)) if within(name, "assistant.measure")] == [
        "assistant.measure", "assistant.measure.recall"]
    assert RESTRICTED["assistant.measure"]("assistant.cli.bench")
    assert not RESTRICTED["assistant.measure"]("assistant.client")
    assert not RESTRICTED["assistant.measure"]("assistant.turn")


# The vocabularies of our columns (memory/models.py): outside that module a status, source, actor,
# decision or label is named by its enum member, never spelt as a string in code that compares or sets it.
VOCABULARY_FIELDS = {"status", "source", "actor", "decision", "label", "action", "role", "author"}


def vocabulary_values() -> set[str]:
    from enum import StrEnum

    from memory import models

    enums = [v for v in vars(models).values() if isinstance(v, type) and issubclass(v, StrEnum) and v is not StrEnum]
    # "user" and "assistant" are also the chat API's roles, spelt as strings where messages are built.
    return {member.value for enum in enums for member in enum} - {"user", "assistant", "system"}


def spelt_vocabulary(tree: ast.Module, values: set[str]) -> list[str]:
    """Lines that compare with, or set a vocabulary field to, a string spelling of an enum value."""
    def spelt(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in values
        return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(spelt(e) for e in node.elts)

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(spelt(n) for n in [node.left, *node.comparators]):
            found.append(f"line {node.lineno}")
        elif isinstance(node, ast.keyword) and node.arg in VOCABULARY_FIELDS and spelt(node.value):
            found.append(f"line {node.value.lineno}")
    return found


def test_vocabularies_are_named_by_their_enums_outside_the_models():
    values = vocabulary_values()
    wrong = {module: lines for module, tree in modules().items()
             if module != "memory.models" and (lines := spelt_vocabulary(tree, values))}
    assert wrong == {}


def test_the_vocabulary_check_catches_what_it_should():
    values = vocabulary_values()
    tree = ast.parse('if job.status == "done": pass\nx = Job(status="queued")\nif s in ("active", "x"): pass\n'
                     'y = Job(status=JobStatus.DONE)\nz = {"rejected": []}\nif role == "user": pass')
    assert sorted(spelt_vocabulary(tree, values)) == ["line 1", "line 2", "line 3"]
