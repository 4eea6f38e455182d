"""`hyperalign`: serve the app and administer it. Every command reads the same settings as the app.

Commands (each is documented in README; a test checks):
  hyperalign serve [--host HOST] [--port PORT]
  hyperalign deploy --out DIR [--replicas N] [--first-port PORT] [--listen PORT] [--server-name NAME] ...
  hyperalign doctor [--json]
  hyperalign worker [--once] [--poll SECONDS] [--concurrency N]
  hyperalign users add NAME [--operator] [--password-stdin]
  hyperalign users list
  hyperalign users set-role NAME operator|user
  hyperalign import NAME FILE... [--dry-run] | NAME --list | NAME --undo ID
  hyperalign profile show NAME
  hyperalign profile infer NAME
  hyperalign profile export NAME [--out FILE]
  hyperalign forget NAME [--yes]
  hyperalign reindex [--user NAME]
  hyperalign bench recall [FILE...] [--locomo FILE] [--preferences SEED] [--floor COSINE] [--json]
  hyperalign bench make-recall-set FILE [--people N] [--seed N]
  hyperalign bench turn [--json] [--sizes N,N,...] [--others N] [--latency-ms MS] [--part all|memory|ttft]
  hyperalign bench context [--json]
  hyperalign bench inference [--messages N] [--json]
  hyperalign bench load [--users N,N,...] [--messages N] [--latency-ms MS] [--url URL] [--workers N] [--replicas N] ...
  hyperalign bench voice --dataset ccat50|cmcc PATH [--ks N,N,...] [--seeds N] [--methods M,M] [--json]
  hyperalign spec check [PATH]
  hyperalign eval safety --dataset PATH --format FORMAT [--profile FILE] [--out DIR] [--concurrency N] [--limit N]
  hyperalign eval style --dataset ccat50|cmcc PATH [--k N] [--authors N] [--per-author N] [--judge] [--out DIR]
  hyperalign audit list|show|label|export [filters]

One module per command group; each adds its commands to the parser and sets `run(settings, args)`.
Everything heavy is imported inside the commands, so `--help` and a mistyped command stay fast.
"""

from __future__ import annotations

import argparse
import sys

from assistant.cli import audit, bench, deploy, doctor, imports, profile, reindex, safety, serve, users, worker
from assistant.cli.base import CommandError
from assistant.config import ConfigError, load_settings

# The order `hyperalign --help` lists them in.
COMMAND_GROUPS = (serve, worker, deploy, doctor, users, imports, profile, reindex, bench, safety, audit)


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code (argparse itself exits with 2 on a malformed command line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        # A command that reports faulty settings as a finding (doctor) loads them itself.
        settings = None if getattr(args, "loads_settings", False) else load_settings()
        return args.run(settings, args) or 0
    except (ConfigError, CommandError) as exc:
        print(f"hyperalign: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyperalign", description="A chat assistant that gets to know you.")
    commands = parser.add_subparsers(title="commands")
    for group in COMMAND_GROUPS:
        group.add_commands(commands)
    return parser
