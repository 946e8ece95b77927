"""``confab admin hash-password``: the hash of a password for ``[web] admin_password_hash``."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from confab.bot.admin.auth import hash_password
from confab.bot.errors import ConfabError

ADMIN_COMMANDS = ("admin",)
MIN_PASSWORD_CHARS = 10


def add_admin_commands(commands: Any) -> None:
    admin = commands.add_parser("admin", help="the admin page's credential")
    actions = admin.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser(
        "hash-password",
        help="print the hash of a password for [web] admin_password_hash "
        "(asked on a terminal, else read from stdin)",
    )


def run_admin_command(_args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Admin password: ")
        if getpass.getpass("Again: ") != password:
            raise ConfabError("The passwords differ; nothing was printed.")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfabError(f"Use a password of at least {MIN_PASSWORD_CHARS} characters.")
    print(hash_password(password))
    print('Put it in the config as [web] admin_password_hash = "...".', file=sys.stderr)
    return 0
