"""`hyperalign audit list|show|label|export`: the operator console's records, for scripts and terminals."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from assistant.cli.base import CommandError, opened_engine
from assistant.config import Settings


def add_commands(commands) -> None:
    audit_cmd = commands.add_parser("audit", help="refusals, safe completions and failed deliberations").add_subparsers(
        title="audit commands")
    audit_list = audit_cmd.add_parser("list", help="filtered records, newest first, without message text")
    _audit_filters(audit_list)
    audit_list.add_argument("--page", type=int, default=1)
    audit_list.add_argument("--page-size", type=int, default=50)
    audit_list.add_argument("--json", action="store_true", help="print JSON instead of lines")
    audit_list.set_defaults(run=audit_list_command)
    audit_show = audit_cmd.add_parser("show", help="one record with its request, reply and cited rules")
    audit_show.add_argument("id", type=int)
    audit_show.add_argument("--as", dest="operator", default=os.environ.get("USER") or "cli", help="logged as who viewed it")
    audit_show.add_argument("--json", action="store_true")
    audit_show.set_defaults(run=audit_show_command)
    audit_label = audit_cmd.add_parser("label", help="label a record: correct, over_refusal or under_refusal")
    audit_label.add_argument("id", type=int)
    audit_label.add_argument("label")
    audit_label.add_argument("--note")
    audit_label.add_argument("--as", dest="operator", default=os.environ.get("USER") or "cli", help="logged as who labelled it")
    audit_label.set_defaults(run=audit_label_command)
    audit_export = audit_cmd.add_parser("export", help="the filtered records with their texts, streamed")
    _audit_filters(audit_export)
    audit_export.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
    audit_export.add_argument("--out", type=Path, help="write to this file instead of standard output")
    audit_export.add_argument("--as", dest="operator", default=os.environ.get("USER") or "cli", help="logged as who exported")
    audit_export.set_defaults(run=audit_export_command)


def _audit_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="date_from", help="first day, e.g. 2026-11-01")
    parser.add_argument("--to", dest="date_to", help="last day (inclusive)")
    parser.add_argument("--decision", help="refuse, safe_complete or deliberation_failed")
    parser.add_argument("--rule", dest="rule_id", help="a rule id, e.g. IWP.R1")
    parser.add_argument("--user", dest="pseudonym", help="a user's pseudonym (u-...)")
    parser.add_argument("--label", help="correct, over_refusal, under_refusal or unlabelled")
    parser.add_argument("--model")
    parser.add_argument("--spec", dest="spec_version")


def _audit_filter(settings: Settings, engine, args: argparse.Namespace):
    """The filter the flags describe, checked against the spec (and, for a rule id, the cited records)."""
    from assistant.safety import review
    from assistant.wiring import build_spec
    from memory.db import read

    spec = build_spec(settings)
    values = {k: getattr(args, k, None) for k in ("date_from", "date_to", "decision", "rule_id", "pseudonym", "label",
                                                  "model", "spec_version")}
    try:
        return review.parse_filter(values, spec, lambda rule: read(engine, lambda s: review.rule_is_cited(s, rule)))
    except review.ReviewError as exc:
        raise CommandError(str(exc)) from None


def audit_list_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.safety import review
    from memory.db import read

    with opened_engine(settings) as engine:
        f = _audit_filter(settings, engine, args)
        try:
            page, size = review.parse_page(args.page, args.page_size)
            listing = read(engine, lambda s: review.list_records(s, f, page=page, page_size=size))
        except review.ReviewError as exc:
            raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for r in listing["records"]:
        print(f"#{r['id']}  {r['created_at'][:19]}  {r['pseudonym']}  {r['decision']}  {','.join(r['rule_ids'])}  "
              f"{r['model']}  spec {r['spec_version']}  {r['label'] or 'unlabelled'}")
    print(f"{listing['total']} records, page {listing['page']} of {listing['pages']}"
          + (f" ({listing['note']})" if listing["note"] else ""))
    return 0


def audit_show_command(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from assistant.safety import review
    from assistant.wiring import build_spec
    from memory.db import write

    with opened_engine(settings) as engine:
        spec = build_spec(settings)
        try:
            record = write(engine, lambda s: review.detail(s, record_id=args.id, spec=spec, operator=args.operator))
        except review.ReviewError as exc:
            raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
        return 0
    print(f"#{record['id']} {record['decision']} at {record['created_at']} for {record['pseudonym']}, model "
          f"{record['model']}, {record['latency_ms']:.0f} ms, spec {record['spec_version']}")
    print(f"rules: {', '.join(c['id'] for c in record['cited'])}; categories read: {', '.join(record['routed']) or 'none'}")
    print(f"rationale: {record['rationale'] or record['failure']}")
    print(f"request: {record['request'] or '(no longer kept)'}")
    print(f"reply: {record['reply'] or '(no longer kept)'}")
    print(f"label: {record['label'] or 'unlabelled'}" + (f" by {record['labelled_by']}" if record["label"] else ""))
    return 0


def audit_label_command(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.safety import review
    from memory.db import write

    with opened_engine(settings) as engine:
        try:
            write(engine, lambda s: review.label(s, record_id=args.id, value=args.label, note=args.note,
                                                 operator=args.operator))
        except review.ReviewError as exc:
            raise CommandError(str(exc)) from None
    print(f"#{args.id} labelled {args.label} by {args.operator}")
    return 0


def audit_export_command(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.safety import review

    with opened_engine(settings) as engine:
        f = _audit_filter(settings, engine, args)
        rows = review.export_rows(engine, f, operator=args.operator)
        chunks = review.as_csv(rows) if args.format == "csv" else review.as_jsonl(rows)
        if args.out:
            from memory.files import private_file

            # The export holds users' messages: owner-only, like the database they come from.
            with private_file(args.out).open("w", encoding="utf-8", newline="") as handle:
                handle.writelines(chunks)
        else:
            sys.stdout.writelines(chunks)
    return 0
