"""Night Talk's event bus: CloudEvents over RabbitMQ with an outbox and an inbox.

The only code the four services share about events. Each service keeps its own
event payload schemas; this package knows envelopes, topology and delivery, not
the domain.
"""
