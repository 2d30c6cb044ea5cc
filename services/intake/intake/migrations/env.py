"""Alembic environment of intake: its own history, its own database."""

from intake.models import metadata
from servicekit.migrations import run_env

run_env(metadata)
