"""Each service's Alembic history builds exactly the schema its models describe."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from servicekit import migrations
from servicekit.migrations import _render_item

SERVICES = ("intake", "routing", "supervision", "notify")


@pytest.mark.parametrize("service", SERVICES)
def test_upgrade_from_empty_to_head_matches_the_models(service, make_database):
    url = make_database(f"mig_{service}")
    migrations.upgrade(service, service, url)
    metadata = importlib.import_module(f"{service}.models").metadata
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "render_item": _render_item}
            )
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == [], f"{service}: models and migrations differ: {differences}"


@pytest.mark.parametrize("service", SERVICES)
def test_upgrade_is_repeatable(service, make_database):
    url = make_database(f"mig2_{service}")
    migrations.upgrade(service, service, url)
    migrations.upgrade(service, service, url)  # a second migrate job run changes nothing
