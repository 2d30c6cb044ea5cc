"""cases: the visitor's ID number and phone keyed apart, the phone normalised

Revision ID: e1b7c4d2a9f3
Revises: c3a9e5f1d2b8
Create Date: 2026-11-29 10:00:00

A returning visitor is recognised by the ID number or by the phone, whichever both visits
gave. Until now a case kept one key, the ID number's if given, else the phone's as typed.
Backfill: the ID number's key is the old key wherever the visit had an ID number (its last
four are kept); the phone's key is computed from the visit's encrypted phone, so it needs
the same NIGHTTALK_PII_KEY as the API. A phone that does not decrypt with it (a key since
changed) stays without a key: such a case is still found by its ID number, if it had one,
but no longer by its phone.
"""

import hashlib
import hmac
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from servicekit.pii import decrypt, derive

# revision identifiers, used by Alembic.
revision: str = "e1b7c4d2a9f3"
down_revision: str | Sequence[str] | None = "c3a9e5f1d2b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("visitor_id_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("visitor_phone_key", sa.String(length=64), nullable=True))
    _backfill()
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_visitor_category_status")
        batch_op.create_index(
            "ix_cases_visitor_id_category_status",
            ["visitor_id_key", "category", "status"],
            unique=False,
        )
        batch_op.create_index(
            "ix_cases_visitor_phone_category_status",
            ["visitor_phone_key", "category", "status"],
            unique=False,
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_visitor_phone_category_status")
        batch_op.drop_index("ix_cases_visitor_id_category_status")
        batch_op.create_index(
            "ix_cases_visitor_category_status", ["visitor_key", "category", "status"], unique=False
        )
        batch_op.drop_column("visitor_phone_key")
        batch_op.drop_column("visitor_id_key")


def _backfill() -> None:
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE cases SET visitor_id_key = visitor_key WHERE visitor_key IS NOT NULL"
            " AND visit_id IN (SELECT id FROM visits WHERE visitor_id_last4 IS NOT NULL)"
        )
    )
    visits = sa.table("visits", sa.column("id"), sa.column("visitor_phone_enc"))
    cases = sa.table("cases", sa.column("visit_id"), sa.column("visitor_phone_key"))
    set_key = (
        sa.update(cases)
        .where(cases.c.visit_id == sa.bindparam("visit"))
        .values(visitor_phone_key=sa.bindparam("key"))
    )
    after = ""
    while True:
        rows = bind.execute(
            sa.select(visits.c.id, visits.c.visitor_phone_enc)
            .where(visits.c.visitor_phone_enc.is_not(None), visits.c.id > after)
            .order_by(visits.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        after = rows[-1].id
        keys = [
            {"visit": row.id, "key": _phone_key(decrypt(row.visitor_phone_enc))} for row in rows
        ]
        keys = [k for k in keys if k["key"]]
        if keys:
            bind.execute(set_key, keys)


# intake.pii's normalisation as of this revision, frozen here: the backfill must compute
# the keys this revision's code computes, whatever later revisions of the code do.
_SEPARATORS = re.compile(r"[\s\-().]")
_MOBILE = re.compile(r"1\d{10}")


def _phone_key(phone):
    if not phone:
        return None
    digits = _SEPARATORS.sub("", phone)
    national = None
    if digits.startswith("+86"):
        national = digits[3:]
    elif digits.startswith("0086"):
        national = digits[4:]
    elif digits.startswith("86") and _MOBILE.fullmatch(digits[2:]):
        national = digits[2:]
    if national is None:
        normalised = digits
    elif _MOBILE.fullmatch(national) or national.startswith("0"):
        normalised = national
    else:
        normalised = "0" + national
    if not normalised:
        return None
    return hmac.new(derive("visitor"), ("phone:" + normalised).encode(), hashlib.sha256).hexdigest()
