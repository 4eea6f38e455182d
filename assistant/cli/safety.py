"""`hyperalign spec check`, `hyperalign eval safety` and `hyperalign eval style`."""

from __future__ import annotations

import argparse
from pathlib import Path

from assistant.cli.base import CommandError, progress_bar
from assistant.config import Settings
from memory.models import Decision


def add_commands(commands) -> None:
    spec_cmd = commands.add_parser("spec", help="the safety specification").add_subparsers(title="spec commands")
    check = spec_cmd.add_parser("check", help="validate a spec file (default: the configured one)")
    check.add_argument("path", nargs="?", type=Path, help="a spec YAML file (default: HYPERALIGN_SAFETY_SPEC or the bundled one)")
    check.set_defaults(run=spec_check)

    eval_cmd = commands.add_parser("eval", help="evaluations against the configured model").add_subparsers(
        title="evaluations")
    safety = eval_cmd.add_parser("safety", help="decision rates of the real turn over a prompt set")
    safety.add_argument("--dataset", required=True, type=Path, help="a CSV prompt file")
    safety.add_argument("--format", required=True, choices=["xstest", "strongreject", "harmbench", "advbench", "csv"])
    safety.add_argument("--profile", type=Path, help="a JSON list of profile entries: run with and without it")
    safety.add_argument("--out", type=Path, default=Path("safety-eval"), help="results folder (resumable; default safety-eval)")
    safety.add_argument("--concurrency", type=int, default=4, help="prompts in flight at once (default 4)")
    safety.add_argument("--limit", type=int, help="only the first N prompts")
    safety.set_defaults(run=eval_safety)
    style = eval_cmd.add_parser("style", help="does the model write like a person? the paper's authorship protocol, "
                                "scored by the verifier (and optionally a model judge)")
    style.add_argument("--dataset", required=True, choices=["ccat50", "cmcc"], help="which set PATH holds")
    style.add_argument("path", type=Path, metavar="PATH", help="its folder (e.g. ../shared/data/cmcc)")
    style.add_argument("--k", type=int, default=7, help="texts of each author the model may know (default 7)")
    style.add_argument("--authors", type=int, help="only the first N authors are written for (all are scored)")
    style.add_argument("--per-author", type=int, help="only the first N held-out prompts of each author")
    style.add_argument("--judge", action="store_true", help="also ask a model judge, both orders, as DITTO does")
    style.add_argument("--out", type=Path, default=Path("style-eval"), help="results folder (resumable; default style-eval)")
    style.add_argument("--concurrency", type=int, default=4, help="model calls in flight at once (default 4)")
    style.set_defaults(run=eval_style)


def eval_style(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.measure.safety_eval import MissingExtra
    from assistant.measure.style_eval import evaluate, render
    from assistant.measure.voice_data import DatasetError

    if settings.offline:
        raise CommandError("the style evaluation needs a model: set OPENAI_API_KEY or OPENAI_BASE_URL")
    if args.k < 1 or args.concurrency < 1 or any(n is not None and n < 1 for n in (args.authors, args.per_author)):
        raise CommandError("--k, --concurrency, --authors and --per-author must be at least 1")
    try:
        report = evaluate(settings, dataset=args.dataset, path=args.path, out=args.out, k=args.k, authors=args.authors,
                          per_author=args.per_author, judge=args.judge, concurrency=args.concurrency,
                          progress=progress_bar)
    except (DatasetError, MissingExtra) as exc:
        raise CommandError(str(exc)) from None
    print(f"\n{render(report)}")
    print(f"report: {args.out / 'report.json'}  chart: {args.out / 'chart.png'}")
    return 0


def spec_check(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.safety.spec import SpecError, load_spec

    try:
        spec = load_spec(args.path or settings.safety_spec)
    except SpecError as exc:
        raise CommandError(str(exc)) from None
    rules = spec.rules
    print(f"{spec.name}: valid, version {spec.version}, {len(spec.categories)} categories, {len(rules)} rules")
    for category in spec.categories:
        counts = {d: sum(1 for r in category.rules if r.decision == d) for d in Decision}
        print(f"  {category.id} ({category.severity}): {counts[Decision.COMPLY]} allowed, "
              f"{counts[Decision.SAFE_COMPLETE]} safe completion, {counts[Decision.REFUSE]} refused")
    return 0


def eval_safety(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.measure.safety_eval import DatasetError, MissingExtra, evaluate, render_summary

    if settings.offline:
        raise CommandError("the safety evaluation needs a model: set OPENAI_API_KEY or OPENAI_BASE_URL")
    if args.concurrency < 1 or (args.limit is not None and args.limit < 1):
        raise CommandError("--concurrency and --limit must be at least 1")
    try:
        report = evaluate(settings, dataset=args.dataset, fmt=args.format, profile_path=args.profile, out=args.out,
                          concurrency=args.concurrency, limit=args.limit, progress=progress_bar)
    except (DatasetError, MissingExtra) as exc:
        raise CommandError(str(exc)) from None
    print(f"\n{render_summary(report['conditions'])}")
    print(f"report: {args.out / 'report.json'}  chart: {args.out / 'chart.png'}  results: {args.out / 'results.jsonl'}")
    return 0
