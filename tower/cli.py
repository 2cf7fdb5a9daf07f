"""The `beffroi` command line. Each subcommand lives in its own module under tower/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from beffroi.yamlconf import ConfigError
from tower.commands import COMMAND_MODULES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beffroi", description="Beffroi event-security platform")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int | None = args.handler(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if result is None else result


if __name__ == "__main__":
    sys.exit(main())
