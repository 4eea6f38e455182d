"""`hyperalign deploy`: write the files of a several-process install (nginx, systemd units, settings)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from assistant.cli.base import CommandError
from assistant.deploy import Plan, render


def add_commands(commands) -> None:
    deploy_cmd = commands.add_parser(
        "deploy", help="write an nginx site, systemd units and a settings file for replicas behind a proxy")
    deploy_cmd.add_argument("--out", type=Path, required=True, help="folder to write into (must not hold them yet)")
    deploy_cmd.add_argument("--replicas", type=int, default=Plan.replicas, help="web processes (default 2)")
    deploy_cmd.add_argument("--first-port", type=int, default=Plan.first_port,
                            help="port of the first replica; the others follow (default 8001)")
    deploy_cmd.add_argument("--listen", type=int, default=Plan.listen, help="port nginx listens on (default 80)")
    deploy_cmd.add_argument("--server-name", default=Plan.server_name, help="nginx server_name (default _)")
    deploy_cmd.add_argument("--checkout", default=Plan.checkout, help="the source checkout, with its .venv")
    deploy_cmd.add_argument("--user", default=Plan.user, help="system account the processes run as")
    deploy_cmd.add_argument("--config-dir", default=Plan.config_dir, help="where hyperalign.env goes")
    deploy_cmd.add_argument("--data-dir", default=Plan.data_dir, help="HYPERALIGN_DATA_DIR of every process")
    deploy_cmd.add_argument("--import-limit-mb", type=int, default=Plan.import_limit_mb,
                            help="the largest history a person may import, in MB (default 1024)")
    deploy_cmd.add_argument("--certificate", help="PEM certificate (chain) file: TLS ends at this nginx")
    deploy_cmd.add_argument("--key", help="PEM private key file of the certificate")
    deploy_cmd.add_argument("--no-ipv6", action="store_true", help="listen on IPv4 only (a host without IPv6)")
    # Writing files needs no settings: an operator runs this before any exist.
    deploy_cmd.set_defaults(run=deploy, loads_settings=True)


def deploy(_settings: object, args: argparse.Namespace) -> int:
    plan = Plan(replicas=args.replicas, first_port=args.first_port, listen=args.listen,
                server_name=args.server_name, checkout=args.checkout, user=args.user,
                config_dir=args.config_dir, data_dir=args.data_dir, certificate=args.certificate, key=args.key,
                ipv6=not args.no_ipv6, import_limit_mb=args.import_limit_mb)
    if problems := plan.problems():
        raise CommandError("; ".join(problems))
    files = render(plan)
    clashes = [name for name in files if (args.out / name).exists()]
    if clashes:
        raise CommandError(f"{args.out} already holds {', '.join(clashes)}: choose an empty folder")
    for name, content in files.items():
        path = args.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # The settings file holds the sign-in secret: owner-only from the moment it exists.
        mode = 0o600 if name.endswith(".env") else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
    print(f"wrote {len(files)} files to {args.out}:", *sorted(files), sep="\n  ")
    print()
    print(files["INSTALL.txt"], end="")
    return 0
