"""`hyperalign bench recall|turn|context|load|import|voice|inference`: benchmarks that print figures (JSON with `--json`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from assistant.cli.base import CommandError
from assistant.config import Settings


def add_commands(commands) -> None:
    bench_cmd = commands.add_parser("bench", help="benchmarks that print figures").add_subparsers(title="benchmarks")
    bench_recall = bench_cmd.add_parser("recall", help="turn-level evidence recall on LoCoMo-format data, set by set")
    bench_recall.add_argument("files", nargs="*", type=Path, metavar="FILE", help="JSON files in LoCoMo's format")
    bench_recall.add_argument("--locomo", action="append", default=[], type=Path, metavar="FILE",
                              help="a JSON file in LoCoMo's format (the same as naming it; may repeat)")
    bench_recall.add_argument("--preferences", type=int, metavar="SEED",
                              help="also a generated set of preferences stated once (make-recall-set, this seed)")
    bench_recall.add_argument("--floor", type=float, metavar="COSINE",
                              help="measure with this cosine floor instead of the app's")
    bench_recall.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench_recall.set_defaults(run=bench_recall_command)
    make_set = bench_cmd.add_parser("make-recall-set", help="write a LoCoMo-format set of preferences stated once")
    make_set.add_argument("out", type=Path, metavar="FILE", help="where to write it (JSON)")
    make_set.add_argument("--people", type=int, default=20, help="conversations, one person each (default 20)")
    make_set.add_argument("--seed", type=int, default=1, help="the same seed writes the same set (default 1)")
    make_set.set_defaults(run=make_recall_set_command)
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
    bench_context = bench_cmd.add_parser("context", help="prompt tokens per purpose fitted to 4k, 8k and 128k "
                                         "windows, and what fitting costs")
    bench_context.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench_context.set_defaults(run=bench_context_command)
    bench_load = bench_cmd.add_parser("load", help="many simulated users at once through the real socket protocol")
    bench_load.add_argument("--users", default="1,10,40", help="simultaneous users per level, comma-separated")
    bench_load.add_argument("--messages", type=int, default=4, help="messages each user sends back to back (default 4)")
    bench_load.add_argument("--latency-ms", type=float, default=300.0, help="the stand-in model's time to its first "
                            "token, every call (default 300)")
    bench_load.add_argument("--tokens", type=int, default=40, help="words in each streamed reply (default 40)")
    bench_load.add_argument("--token-rate", type=float, default=200.0, help="streamed words per second (default 200)")
    bench_load.add_argument("--url", help="a running app instead of one started here (its own model answers)")
    bench_load.add_argument("--database-url", help="the database to check (and, without --url, to run the app on); "
                            "default: a fresh SQLite file")
    bench_load.add_argument("--port", type=int, default=8765, help="port of the app started here (default 8765)")
    bench_load.add_argument("--timeout", type=float, default=120.0, help="seconds a turn may take (default 120)")
    bench_load.add_argument("--workers", type=int, default=0, help="run hypothesis jobs in this many `hyperalign "
                            "worker` processes instead of the app (the CPU figure is the app's alone)")
    bench_load.add_argument("--replicas", type=int, default=1, help="serve replicas behind nginx with `hyperalign "
                            "deploy`'s site (needs --database-url on PostgreSQL, and nginx; default 1: no proxy)")
    bench_load.add_argument("--png", type=Path, help="draw latency and throughput against users into this PNG")
    bench_load.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench_load.set_defaults(run=bench_load_command)
    bench_import = bench_cmd.add_parser("import", help="messages/s, peak memory and time to the first profile "
                                        "for generated ChatGPT exports")
    bench_import.add_argument("--sizes", default="10000,100000", help="messages per export, comma-separated")
    bench_import.add_argument("--latency-ms", type=float, default=300.0,
                              help="the stand-in model's latency for the profile's call (default 300)")
    bench_import.add_argument("--embed", action="store_true", help="also embed everything for recall (minutes)")
    bench_import.add_argument("--database-url", help="a PostgreSQL database to import into (default: fresh SQLite)")
    bench_import.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench_import.set_defaults(run=bench_import_command)
    bench_voice = bench_cmd.add_parser("voice", help="how well the authorship verifier tells a person's writing from "
                                       "others', with k of their texts (CCAT50 or CMCC, as DITTO packages them)")
    bench_voice.add_argument("--dataset", required=True, choices=["ccat50", "cmcc"], help="which set PATH holds")
    bench_voice.add_argument("path", type=Path, metavar="PATH", help="its folder (e.g. ../shared/data/cmcc)")
    bench_voice.add_argument("--ks", default="1,2,3,4,5,6,7", help="texts learned from per author, comma-separated")
    bench_voice.add_argument("--seeds", type=int, default=5, help="draws of demonstrations averaged (default 5)")
    bench_voice.add_argument("--methods", default="verifier,verifier-plain,tfidf-char,tfidf-word,tfidf-char-log,"
                             "tfidf-word-log", help="which of these to measure (default all)")
    bench_voice.add_argument("--json", action="store_true", help="print JSON instead of tables")
    bench_voice.set_defaults(run=bench_voice_command)
    bench_inference = bench_cmd.add_parser("inference", help="model calls and tokens per user message, by purpose")
    bench_inference.add_argument("--messages", type=int, default=200, help="simulated user messages (default 200)")
    bench_inference.add_argument("--json", action="store_true", help="print JSON instead of lines")
    bench_inference.set_defaults(run=bench_inference_command)


def bench_recall_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.measure.prefset import make_recall_set
    from assistant.measure.recall import render_recall_tables, run_recall_bench

    files = [*args.files, *args.locomo]
    if not files and args.preferences is None:
        raise CommandError("name at least one LoCoMo-format file, or --preferences SEED for a generated set")
    for path in files:
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
    sets = {path.name: json.loads(path.read_text()) for path in files}
    if args.preferences is not None:
        sets[f"preferences (seed {args.preferences})"] = make_recall_set(seed=args.preferences)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    results = {name: run_recall_bench(data, floor=args.floor, say=say) for name, data in sets.items()}
    print(json.dumps(results, indent=2) if args.json else render_recall_tables(results))
    return 0


def make_recall_set_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.measure.prefset import make_recall_set

    if args.people < 1:
        raise CommandError("--people must be at least 1")
    data = make_recall_set(people=args.people, seed=args.seed)
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    questions = sum(len(person["qa"]) for person in data)
    print(f"wrote {args.out}: {len(data)} conversations, {questions} questions (seed {args.seed})")
    return 0


def bench_context_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.measure.context import render_context_table, run_context_bench

    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    result = run_context_bench(say=say)
    print(json.dumps(result, indent=2) if args.json else render_context_table(result))
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


def bench_import_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.measure.imports import render, run_import_bench

    try:
        sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    except ValueError:
        raise CommandError("--sizes takes whole numbers separated by commas, e.g. 10000,100000") from None
    if not sizes or min(sizes) < 1 or args.latency_ms < 0:
        raise CommandError("--sizes must be positive, and --latency-ms not negative")
    result = run_import_bench(sizes=sizes, latency_ms=args.latency_ms, embed=args.embed,
                              database_url=args.database_url, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


def bench_voice_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.measure.voice import METHODS, as_json, render, run, splits
    from assistant.measure.voice_data import DatasetError, load

    try:
        ks = sorted({int(n) for n in args.ks.split(",") if n.strip()})
    except ValueError:
        raise CommandError("--ks takes whole numbers separated by commas, e.g. 1,3,7") from None
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not ks or ks[0] < 1 or args.seeds < 1 or not methods or set(methods) - set(METHODS):
        raise CommandError(f"--ks and --seeds must be positive, and --methods some of {', '.join(METHODS)}")
    try:
        authors = load(args.dataset, args.path)
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    say(f"{args.dataset}: {len(authors)} authors, {sum(len(a.held_out) for a in authors)} held-out texts")
    measured = splits(args.dataset, authors)
    rows = [row for split in measured for row in run(split, ks=ks, seeds=args.seeds, methods=methods, progress=say)]
    print(json.dumps(as_json(rows), indent=2) if args.json else render(rows, {s.name: s.pools for s in measured}))
    return 0


def bench_load_command(settings: Settings, args: argparse.Namespace) -> int:
    import json
    from importlib.util import find_spec

    if find_spec("socketio") is None:  # the simulated users' client
        raise CommandError("bench load needs python-socketio's client: pip install -e '.[eval]'")
    from assistant.measure.load import draw, render, run_load

    try:
        levels = [int(n) for n in args.users.split(",")]
    except ValueError:
        raise CommandError("--users is a comma-separated list of numbers, e.g. 1,10,40") from None
    if args.replicas < 1 or (args.replicas > 1 and args.url):
        raise CommandError("--replicas is at least 1, and starts the replicas itself: not with --url")
    if args.replicas > 1 and "postgresql" not in (args.database_url or ""):
        raise CommandError("--replicas shares one database between processes: give --database-url postgresql://...")
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    result = run_load(levels=levels, messages=args.messages, latency_ms=args.latency_ms, tokens=args.tokens,
                      tokens_per_s=args.token_rate, url=args.url, database_url=args.database_url, port=args.port,
                      timeout=args.timeout, workers=args.workers, replicas=args.replicas, say=say)
    if args.png:
        draw(result, args.png)
        say(f"chart: {args.png}")
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 1 if result.get("storage_problems") or any(level["errors"] for level in result["levels"]) else 0
