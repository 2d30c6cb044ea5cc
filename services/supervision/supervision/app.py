"""The supervision API's application factory."""

from __future__ import annotations

from servicekit import logs
from servicekit.web import create_service_app


def create_app(config: dict | None = None):
    """Create the supervision app (督办: supervised cases and their timelines)."""
    from servicekit.localtime import local_zone
    from supervision import board, cadre, cases, meetings, models, stats, steps

    logs.configure("supervision")
    # A time zone the database does not know stops the API here, naming the variable,
    # rather than failing every statistics, agenda and cadre request with a 500.
    local_zone()

    def register(app, api):
        api.register_blueprint(cases.blp)
        api.register_blueprint(board.blp)
        api.register_blueprint(steps.blp)
        api.register_blueprint(stats.blp)
        api.register_blueprint(meetings.blp)
        api.register_blueprint(cadre.blp)

    return create_service_app(
        "supervision",
        title="Night Talk supervision",
        description="Supervision (督办): follow each case, its responsible unit and its deadline.",
        metadata=models.metadata,
        config=config,
        register=register,
    )
