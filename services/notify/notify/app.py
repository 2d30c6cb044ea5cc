"""The notify API's application factory."""

from __future__ import annotations

from servicekit import logs
from servicekit.web import create_service_app


def create_app(config: dict | None = None):
    """Create the notify app (notifications API)."""
    from notify import deliveries, models, notifications, rules, template_api

    logs.configure("notify")

    def register(app, api):
        api.register_blueprint(notifications.blp)
        api.register_blueprint(deliveries.blp)
        api.register_blueprint(rules.blp)
        api.register_blueprint(template_api.blp)

    return create_service_app(
        "notify",
        title="Night Talk notify",
        description="Notifications to visitors, units and leaders about cases, and their delivery.",
        metadata=models.metadata,
        config=config,
        register=register,
    )
