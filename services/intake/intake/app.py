"""The intake API's application factory."""

from __future__ import annotations

from servicekit import logs
from servicekit.web import add_error_face, create_service_app


def create_app(config: dict | None = None):
    """Create the intake app (reception desk API)."""
    from intake import cases, models, open311, reception, sessions, visits

    logs.configure("intake")
    # A bad schedule or time zone stops the API here, naming the variable, rather than
    # failing every night-talk registration with a 500 while /readyz says ready.
    reception.check_settings()

    def register(app, api):
        api.register_blueprint(visits.blp)
        api.register_blueprint(cases.blp)
        api.register_blueprint(sessions.blp)
        api.register_blueprint(open311.blp)
        add_error_face(app, "/open311/", open311.error_list)

    return create_service_app(
        "intake",
        title="Night Talk intake",
        description="The reception desk (接访登记): register visits, their cases and follow-ups.",
        metadata=models.metadata,
        config=config,
        register=register,
    )
