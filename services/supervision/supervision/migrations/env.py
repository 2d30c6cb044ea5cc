"""Alembic environment of supervision: its own history, its own database."""

from servicekit.migrations import run_env
from supervision.models import metadata

run_env(metadata)
