"""Name the exchanges and queues every service and partner agrees on."""

EVENTS_EXCHANGE = "nighttalk.events"
PARTNERS_EXCHANGE = "nighttalk.partners"
DEAD_LETTER_EXCHANGE = "nighttalk.dlx"

# Announcements no service is required to hear (docs/events.md): with no queue bound,
# the broker returns them and that is no failure; every other event must reach a queue.
NO_REQUIRED_CONSUMER = frozenset({"notification.delivered", "notification.failed"})


def service_queue(service: str) -> str:
    """Return the name of the one quorum queue a consuming service reads."""
    return f"{service}.events"


def dead_letter_queue(service: str) -> str:
    """Return the name of the queue that keeps a service's rejected messages."""
    return f"{service}.dead"


def partner_queue(unit_code: str) -> str:
    """Return the name of a partner unit's queue on the partners exchange."""
    return f"partner.{unit_code}"


def event_type(routing_key: str, version: int = 1) -> str:
    """Return the CloudEvents type for a routing key, e.g. ``nighttalk.case.routed.v1``."""
    return f"nighttalk.{routing_key}.v{version}"


def routing_key_of(ce_type: str) -> str:
    """Return the routing key of a CloudEvents type (the inverse of :func:`event_type`)."""
    parts = ce_type.split(".")
    if len(parts) < 4 or parts[0] != "nighttalk" or not parts[-1].startswith("v"):
        raise ValueError(f"not a Night Talk event type: {ce_type!r}")
    return ".".join(parts[1:-1])


def source_of(service: str) -> str:
    """Return the CloudEvents source of a service, e.g. ``/nighttalk/intake``."""
    return f"/nighttalk/{service}"
