"""`hyperalign doctor`: check the settings, the database, the embedding model, the safety spec and each
purpose's model on its server; print a table and a verdict; exit 1 on a blocking problem."""

from __future__ import annotations

import argparse

from assistant.config import Settings


def add_commands(commands) -> None:
    doctor_cmd = commands.add_parser("doctor", help="check the installation and each model; exit 1 if something blocks")
    doctor_cmd.add_argument("--json", action="store_true", help="print the checks as JSON")
    # Faulty settings are one of its findings, so it loads them itself (assistant.cli.main).
    doctor_cmd.set_defaults(run=doctor, loads_settings=True)


def doctor(settings: Settings | None, args: argparse.Namespace) -> int:
    from assistant import doctor as checks

    rows = checks.diagnose()
    print(checks.as_json(rows) if args.json else checks.render(rows), flush=True)
    return 1 if checks.blocked(rows) else 0
