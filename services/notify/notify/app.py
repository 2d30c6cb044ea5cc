"""The notify API's application factory."""

from __future__ import annotations

from servicekit import logs
from servicekit.web import create_service_app


def create_app(config: dict | None = None):
    """Create the notify app (notifications API)."""
    from notify import models, notifications

    logs.configure("notify")

    def register(app, api):
        api.register_blueprint(notifications.blp)

    return create_service_app(
        "notify",
        title="Night Talk notify",
        description="Notifications to visitors about their cases: receipts now, answers later.",
        metadata=models.metadata,
        config=config,
        register=register,
    )
