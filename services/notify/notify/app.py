"""The notify API's application factory."""

from __future__ import annotations

from servicekit import logs
from servicekit.web import create_service_app


def create_app(config: dict | None = None):
    """Create the notify app (notifications API)."""
    from notify import deliveries, delivery, models, notifications, rules, template_api

    logs.configure("notify")
    # A time zone the database does not know stops the API here, naming the variable, as it
    # stops notify's other processes, rather than leaving messages to fail one by one.
    delivery.check_settings()

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
