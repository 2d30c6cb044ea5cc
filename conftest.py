"""Shared pytest set-up for every test folder in the repository."""

pytest_plugins = ["eventbus.pytest_plugin"]
