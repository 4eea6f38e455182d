"""`hyperalign bench recall|turn|inference`: benchmarks that print figures (JSON with `--json`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from assistant.cli.base import CommandError
from assistant.config import Settings


def add_commands(commands) -> None:
    bench_cmd = commands.add_parser("bench", help="benchmarks that print figures").add_subparsers(title="benchmarks")
    bench_recall = bench_cmd.add_parser("recall", help="turn-level evidence recall on LoCoMo-format data")
    bench_recall.add_argument("--locomo", required=True, type=Path, help="a JSON file in LoCoMo's format")
    bench_recall.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench_recall.set_defaults(run=bench_recall_command)
    bench_turn = bench_cmd.add_parser("turn", help="memory overhead of one chat turn (everything but the model)")
    bench_turn.add_argument("--json", action="store_true", help="print JSON instead of lines")
    bench_turn.add_argument("--sizes", default="1000,10000,100000", help="messages of the measured user, comma-separated")
    bench_turn.add_argument("--others", type=int, default=1000, help="other users in the database")
    bench_turn.add_argument("--turns", type=int, default=60, help="turns measured per size (and per TTFT variant)")
    bench_turn.add_argument("--latency-ms", type=float, default=300.0,
                            help="the stand-in model's latency per call, for time to first token (default 300)")
    bench_turn.add_argument("--part", choices=["all", "memory", "ttft"], default="all",
                            help="memory overhead, time to first token with and without deliberation, or both")
    bench_turn.set_defaults(run=bench_turn_command)
    bench_inference = bench_cmd.add_parser("inference", help="model calls and tokens per user message, by purpose")
    bench_inference.add_argument("--messages", type=int, default=200, help="simulated user messages (default 200)")
    bench_inference.add_argument("--json", action="store_true", help="print JSON instead of lines")
    bench_inference.set_defaults(run=bench_inference_command)


def bench_recall_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.measure.recall import render_recall_table, run_recall_bench

    if not args.locomo.is_file():
        raise CommandError(f"{args.locomo} is not a file")
    result = run_recall_bench(args.locomo, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2) if args.json else render_recall_table(result))
    return 0


def bench_turn_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.measure.turn import run_turn_bench

    try:
        sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    except ValueError:
        raise CommandError("--sizes takes whole numbers separated by commas, e.g. 1000,10000") from None
    if args.latency_ms <= 0:
        raise CommandError("--latency-ms must be positive")
    say = lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True)  # noqa: E731
    result = {}
    if args.part in ("all", "memory"):
        result["memory"] = run_turn_bench(sizes=sizes, others=args.others, turns=args.turns, say=say)
    if args.part in ("all", "ttft"):
        from assistant.measure.ttft import run_ttft_bench

        result["time_to_first_token"] = run_ttft_bench(latency_ms=args.latency_ms, turns=args.turns, say=say)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def bench_inference_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.measure.inference import run_inference_bench

    if args.messages < 1:
        raise CommandError("--messages must be at least 1")
    result = run_inference_bench(messages=args.messages,
                                 say=lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0
