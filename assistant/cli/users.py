"""`hyperalign users add|list|set-role`: accounts, including the way to add them when registration is closed."""

from __future__ import annotations

import argparse
import getpass
import sys

from assistant.cli.base import CommandError, opened_engine
from assistant.config import Settings


def add_commands(commands) -> None:
    users_cmd = commands.add_parser("users", help="manage accounts").add_subparsers(title="users commands")
    add = users_cmd.add_parser("add", help="create an account (the way to add users when registration is closed)")
    add.add_argument("name")
    add.add_argument("--operator", action="store_true", help="give the account the operator role")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(run=users_add)
    listing = users_cmd.add_parser("list", help="list accounts with their role and creation date")
    listing.set_defaults(run=users_list)
    set_role = users_cmd.add_parser("set-role", help="make an account an operator or a plain user")
    set_role.add_argument("name")
    set_role.add_argument("role", choices=["operator", "user"])
    set_role.set_defaults(run=users_set_role)


def users_add(settings: Settings, args: argparse.Namespace) -> int:
    from assistant.privacy import name_held_back, release_hold
    from memory import store
    from memory.db import write
    from memory.models import Role

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else _ask_password()
    role = Role.OPERATOR if args.operator else Role.USER

    def create(session):
        # A name erased by "forget me" is held for its owner while the erased account's tokens live.
        if name_held_back(session, args.name.strip(), password):
            raise CommandError(f"{args.name!r} belonged to an account erased less than 15 days ago; only its "
                               "owner's password can take it back until then. Choose another name.")
        release_hold(session, args.name.strip())
        return store.create_user(session, identifier=args.name, password=password, role=role)

    with opened_engine(settings) as engine:
        try:
            user = write(engine, create)
        except store.InvalidInput as exc:
            raise CommandError(str(exc)) from None
    print(f"created {user.identifier} ({user.role})")
    return 0


def _ask_password() -> str:
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for a password: pipe it in with --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise CommandError("the two passwords differ")
    return first


def users_list(settings: Settings, args: argparse.Namespace) -> int:
    from memory import store
    from memory.db import read

    with opened_engine(settings) as engine:
        users = read(engine, store.list_users)
    print(f"{'name':<32} {'role':<9} created")
    for user in users:
        print(f"{user.identifier:<32} {user.role!s:<9} {user.created_at:%Y-%m-%d %H:%M}")
    return 0


def users_set_role(settings: Settings, args: argparse.Namespace) -> int:
    from memory import store
    from memory.db import write
    from memory.models import Role

    def change(session):
        user = store.get_user(session, identifier=args.name)
        if user is None:
            raise CommandError(f"no user named {args.name!r}")
        store.set_role(session, user=user, role=Role(args.role))

    with opened_engine(settings) as engine:
        write(engine, change)
    print(f"{args.name} is now {args.role} (they see the change at their next sign-in)")
    return 0
