"""Explicit registry of CLI subcommand modules. Each module defines `register(subparsers)`,
which adds its parser and sets `handler=` to a function taking the parsed args."""

COMMAND_MODULES: tuple[str, ...] = (
    "beffroi.commands.validate",
    "beffroi.commands.simulate",
    "beffroi.commands.run",
    "beffroi.commands.stack_init",
    "beffroi.commands.mqtt_provision",
    "beffroi.commands.detect",
    "beffroi.commands.count",
    "beffroi.commands.train_detector",
    "beffroi.commands.train_density",
    "beffroi.commands.train",
    "beffroi.commands.eval",
)
