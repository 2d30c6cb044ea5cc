"""Alembic environment of notify: its own history, its own database."""

from notify.models import metadata
from servicekit.migrations import run_env

run_env(metadata)
