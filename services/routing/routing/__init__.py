"""Night Talk routing: the linkage (联动) that hands each case to the unit responsible for it.

Configuration (environment only):

- ``ROUTING_DATABASE_URL``: SQLAlchemy URL (default: a SQLite file under ``NIGHTTALK_VAR_DIR``).
- ``AMQP_URL``: the broker (default ``amqp://guest:guest@localhost:5672/%2F``).
- ``ROUTING_DEFAULT_UNIT``: the unit that takes cases no rule claims (default
  ``city-gov-office``, 市政府办公室).
- ``NIGHTTALK_JWT_SECRET``: the bearer token key shared by the services.
"""
