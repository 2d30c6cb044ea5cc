"""The routing API's application factory."""

from __future__ import annotations

from servicekit import logs
from servicekit.web import create_service_app


def create_app(config: dict | None = None):
    """Create the routing app (unit directory and assignments API)."""
    from routing import assignments, inbox, models, rules_api, units, webhooks
    from routing.settings import check_settings
    from servicekit import metrics

    logs.configure("routing")
    # A bad setting (a time zone the database does not know, a number that is none) stops
    # the API here, naming it, rather than failing every routing with a 500 while /readyz
    # says ready.
    check_settings()

    def register(app, api):
        api.register_blueprint(assignments.blp)
        api.register_blueprint(units.blp)
        api.register_blueprint(rules_api.blp)
        api.register_blueprint(inbox.blp)
        metrics.add_collector(app, webhooks.DeliveriesCollector(app.extensions["runtime"]))

    return create_service_app(
        "routing",
        title="Night Talk routing",
        description="The linkage (联动): the unit directory and the cases handed to units.",
        metadata=models.metadata,
        config=config,
        register=register,
    )
