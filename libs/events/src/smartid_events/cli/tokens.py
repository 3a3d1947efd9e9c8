"""`smartid token mint`: development bearer tokens signed with the stack's JWT secret."""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import cast

from smartid_events.auth import ROLES, SCOPES, Role, mint_token

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> timedelta:
    """`3600`, `90s`, `30m`, `8h`, `7d`."""
    match = _TTL.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30m, 8h, 7d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_scopes(text: str) -> list[str]:
    """Comma-separated scopes, or `all`."""
    if text.strip() == "all":
        return list(SCOPES)
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scopes {', '.join(unknown)}; known: {', '.join(SCOPES)}"
        )
    return scopes


def jwt_secret(var_dir: Path) -> str:
    """`SMARTID_JWT_SECRET`, else the secret `smartid run` keeps in var/."""
    given = os.environ.get("SMARTID_JWT_SECRET")
    if given:
        return given
    path = var_dir / "jwt-secret"
    if not path.exists():
        raise SystemExit(f"no JWT secret: set SMARTID_JWT_SECRET or run `make run` once ({path})")
    return path.read_text().strip()


def mint_command(args: argparse.Namespace) -> int:
    try:
        token = mint_token(
            jwt_secret(args.var_dir),
            sub=args.sub or args.tenant or args.role,
            role=cast(Role, args.role),
            scopes=args.scopes,
            tenant=args.tenant,
            ttl=args.ttl,
        )
    except ValueError as e:
        print(f"smartid token mint: {e}", file=sys.stderr)
        return 2
    print(token)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = subparsers.add_parser("token", help="development bearer tokens")
    commands = token.add_subparsers(dest="token_command", required=True)
    mint = commands.add_parser("mint", help="print a signed token")
    mint.add_argument("--role", choices=ROLES, required=True)
    mint.add_argument(
        "--scopes", type=parse_scopes, required=True, help="comma-separated, or `all`"
    )
    mint.add_argument("--tenant", help="the contractor's id (required for contractors)")
    mint.add_argument("--sub", help="the subject; defaults to the tenant or the role")
    mint.add_argument("--ttl", type=parse_ttl, default=timedelta(hours=8), help="e.g. 30m, 8h, 7d")
    mint.add_argument("--var-dir", type=Path, default=Path("var"))
    mint.set_defaults(func=mint_command)
