"""Explicit registry of CLI subcommand modules. Each module defines `register(subparsers)`,
which adds its parser and sets `handler=` to a function taking the parsed args."""

COMMAND_MODULES: tuple[str, ...] = (
    "beffroi.commands.validate",
)
