"""Fixture modules are plugins, one per seam, so that no test copies a fixture."""

pytest_plugins = [
    "tests.fixtures.stack",
    "tests.fixtures.bus",
    "tests.fixtures.store",
    "tests.fixtures.api",
]
