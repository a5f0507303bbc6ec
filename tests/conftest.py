"""Shared pytest configuration: fixtures for real servers live in their own plugin modules."""

pytest_plugins = ["tests.fixtures.postgres", "tests.cluster.fixtures", "tests.operator.fixtures"]
