"""Alembic for a service: each service keeps its own history in ``<package>/migrations``."""

from __future__ import annotations

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData

from servicekit.db import database_url, make_engine
from servicekit.types import UtcDateTime


def config(service: str, package: str, url: str | None = None) -> Config:
    """Return an Alembic config for a service's migrations and database."""
    cfg = Config()
    cfg.set_main_option("script_location", f"{package}:migrations")
    # ConfigParser interpolates '%', which URL-encoded passwords and vhosts contain.
    cfg.set_main_option("sqlalchemy.url", (url or database_url(service)).replace("%", "%%"))
    return cfg


def upgrade(service: str, package: str, url: str | None = None, revision: str = "head") -> None:
    """Bring a service's database to ``revision`` (head by default)."""
    command.upgrade(config(service, package, url), revision)


def _render_item(type_, obj, autogen_context):
    # UtcDateTime is a Python-side conversion over DateTime(timezone=True): migrations
    # need only the column type, and must not import service code.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_env(metadata: MetaData) -> None:
    """Run migrations online; called from a service's ``migrations/env.py``."""
    url = context.config.get_main_option("sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                compare_type=True,
                render_item=_render_item,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
