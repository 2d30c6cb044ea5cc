"""The routing API's application factory."""

from __future__ import annotations

from servicekit import logs
from servicekit.web import create_service_app


def create_app(config: dict | None = None):
    """Create the routing app (unit directory and assignments API)."""
    from routing import assignments, inbox, models, rules_api, units, webhooks
    from servicekit import metrics
    from servicekit.localtime import local_zone

    logs.configure("routing")
    # A time zone the database does not know stops the API here, naming the variable,
    # rather than failing every routing (its due date) with a 500 while /readyz says ready.
    local_zone()

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
