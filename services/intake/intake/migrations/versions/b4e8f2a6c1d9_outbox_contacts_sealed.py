"""outbox: visit.contact_recorded rows written before the contact was sealed are sealed

Revision ID: b4e8f2a6c1d9
Revises: a7d3e9c1f5b2
Create Date: 2026-11-29 07:40:00

The event's body kept the visitor's name, phone and address in clear (``data.visitor``),
and the outbox keeps a row once it is sent: every backup of intake's database showed every
visitor. Each such body now carries ``sealed_contact`` instead, as intake writes it today:
one Fernet token, under ``NIGHTTALK_PII_KEY``, of the JSON ``{"name", "phone", "address"}``
(the migration must run with the services' key). A row still unsent is published sealed,
which notify reads (deploy notify first, as docs/events.md says).
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from servicekit import pii

# revision identifiers, used by Alembic.
revision: str = "b4e8f2a6c1d9"
down_revision: str | Sequence[str] | None = "a7d3e9c1f5b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

outbox = sa.table(
    "outbox",
    sa.column("position", sa.BigInteger),
    sa.column("routing_key", sa.String),
    sa.column("body", sa.LargeBinary),
)


def _sealed(body: bytes) -> bytes | None:
    """Return the body with its contact sealed, or None if it holds none in clear."""
    data = json.loads(body)
    visitor = data.pop("visitor", None) if isinstance(data, dict) else None
    if not isinstance(visitor, dict):
        return None
    contact = {key: visitor.get(key) for key in ("name", "phone", "address")}
    data["sealed_contact"] = pii.encrypt(
        json.dumps(contact, ensure_ascii=False, separators=(",", ":"))
    )
    return json.dumps(data, ensure_ascii=False).encode()


def upgrade() -> None:
    """Seal the contact of every visit.contact_recorded body that holds it in clear."""
    conn = op.get_bind()
    after = -1
    while True:
        rows = conn.execute(
            sa.select(outbox.c.position, outbox.c.body)
            .where(outbox.c.routing_key == "visit.contact_recorded", outbox.c.position > after)
            .order_by(outbox.c.position)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for position, body in rows:
            sealed = _sealed(bytes(body))
            if sealed is not None:
                conn.execute(
                    outbox.update().where(outbox.c.position == position).values(body=sealed)
                )
        after = rows[-1].position


def downgrade() -> None:
    """Leave the bodies sealed: putting visitors back in clear is not a way back."""
