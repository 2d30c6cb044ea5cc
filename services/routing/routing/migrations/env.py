"""Alembic environment of routing: its own history, its own database."""

from routing.models import metadata
from servicekit.migrations import run_env

run_env(metadata)
