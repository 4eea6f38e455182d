"""README documents every setting and command, and CI runs README's own test command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from assistant.cli import build_parser
from assistant.config import setting_names

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def fenced_after(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```", README, re.S)
    assert match, f"README has no command after <!-- {marker} -->"
    return match.group(1).strip()


def documented_settings() -> set[str]:
    return set(re.findall(r"^\| `([A-Z_]+)` \|", README, re.M))


def commands(parser: argparse.ArgumentParser, prefix: str = "hyperalign") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = commands(sub, f"{prefix} {name}")
                found += nested or [f"{prefix} {name}"]
    return found


def test_every_setting_is_in_the_configuration_table_and_nothing_else_is():
    assert documented_settings() == set(setting_names())


def test_every_command_is_documented():
    listed = commands(build_parser())
    assert {"hyperalign serve", "hyperalign users add", "hyperalign users list"} <= set(listed)
    missing = [c for c in listed if f"| `{c}" not in README]
    assert missing == []


def test_readme_has_exactly_the_two_commands():
    assert README.count("<!-- run command -->") == 1 and README.count("<!-- test command -->") == 1
    assert fenced_after("run command").endswith("hyperalign serve")
    assert "pytest" in fenced_after("test command")


def test_the_run_command_says_what_it_installs_and_shows_pips_progress():
    # Before: `pip install -q` printed nothing for the ~2.5 minutes of a first install.
    command = fenced_after("run command")
    assert "\n" not in command and command.startswith("python3.11 -m venv .venv && ")
    said, installed = command.find("echo "), command.find("pip install")
    assert -1 < said < installed and "minutes" in command[said:installed]
    assert " -q" not in command and "--quiet" not in command


def test_the_test_command_runs_the_linter_and_the_type_checker_before_the_tests():
    command = fenced_after("test command")
    lint, types, tests = (command.find(part) for part in ("ruff check assistant memory hypotheses", "mypy", "pytest"))
    assert -1 < lint < tests and -1 < types < tests


def test_ci_runs_the_readme_test_command_with_ci_true():
    script = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test command -->" in script and "export CI=true" in script
    assert "apt-get install" in script and "chromium" in script and "postgresql" in script


def test_every_setting_has_help_text():
    from assistant.config import Settings

    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def test_every_spec_category_is_in_the_readme_with_its_severity():
    from assistant.safety.spec import load_spec

    missing = [f"{c.id} ({c.severity})" for c in load_spec().categories
               if f"| `{c.id}` | {c.severity} |" not in README]
    assert missing == []
