"""Shared pytest fixtures: each area owns one module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.emulator",
    "tests.fixtures.plugin",
    "tests.fixtures.lab",
    "tests.fixtures.masters",
]
