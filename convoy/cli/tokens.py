"""`convoy token create|revoke|list`: the tokens that let users call a coordinator over TCP
(`convoy up --listen`). Admin commands: run where the coordinator runs, they edit
CONVOY_HOME/tokens.json, which a running coordinator reads again at its next call."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from convoy.paths import checked_home

from .render import table


def add_parser(sub: Any) -> None:
    t = sub.add_parser(
        "token",
        help="create, revoke and list tokens for the coordinator's TCP listener",
        description="Tokens let users call the coordinator over TLS (`convoy up --listen`); "
        "its unix socket needs none. Run these on the coordinator's machine, with its "
        "CONVOY_HOME: a running coordinator sees a change at its next call. Only a hash of "
        "each token is kept.",
    )
    ts = t.add_subparsers(dest="token_command", metavar="SUBCOMMAND", required=True)
    c = ts.add_parser("create", help="make a token and print it, once",
                      description="Make a new random token named NAME and print it: it is "
                      "shown this once (only its hash is kept). Its holder sets "
                      "CONVOY_TOKEN to it.")  # fmt: skip
    c.add_argument("name", metavar="NAME", help="who or what it is for, e.g. alice or ci")
    r = ts.add_parser("revoke", help="revoke a token",
                      description="Revoke the token named NAME: calls with it are refused "
                      "from now on, by a running coordinator too.")  # fmt: skip
    r.add_argument("name", metavar="NAME")
    ts.add_parser("list", help="list tokens (names and when made, never the tokens)",
                  description="List the tokens by name, with when each was made. The tokens "
                  "themselves are not kept, so cannot be shown.")  # fmt: skip


def main(home: Path, ns: argparse.Namespace) -> int:
    from convoy.coordinator.tokens import create_token, read_tokens, revoke_token

    if ns.token_command == "list":
        tokens = read_tokens(home)
        if not tokens:
            print("no tokens: the TCP listener refuses every call (`convoy token create NAME`)")
        else:
            print(table(["NAME", "CREATED"], [[t.name, t.created] for t in tokens]))
        return 0
    checked_home(home)
    if ns.token_command == "create":
        token = create_token(home, ns.name)
        print(token)
        print(f"convoy: token {ns.name} made; it is not shown again. Its holder sets "
              "CONVOY_TOKEN to it.", file=sys.stderr)  # fmt: skip
        return 0
    revoke_token(home, ns.name)
    print(f"revoked token {ns.name}")
    return 0
