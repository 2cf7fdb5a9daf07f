"""Explicit registry of CLI subcommand modules. Each module defines `register(subparsers)`,
which adds its parser and sets `handler=` to a function taking the parsed args."""

COMMAND_MODULES: tuple[str, ...] = (
    "tower.commands.validate",
    "tower.commands.simulate",
    "tower.commands.run",
    "tower.commands.stack_init",
    "tower.commands.mqtt_provision",
    "tower.commands.detect",
    "tower.commands.count",
    "tower.commands.eval_count",
    "tower.commands.train_detector",
    "tower.commands.train_density",
    "tower.commands.train",
    "tower.commands.eval",
    "tower.commands.eval_series",
    "tower.commands.whatif",
    "tower.commands.users",
    "tower.commands.replay",
)
