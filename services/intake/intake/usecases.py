"""Register a visit: the use case behind ``POST /v1/visits``.

Everything a registration produces — the visit, its cases, the idempotency record and
the outgoing events — commits in one transaction. The case numbers come just before: on
PostgreSQL in a short transaction of their own (see ``hand_out_case_numbers``).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, text, update
from sqlalchemy.orm import Session

from eventbus.unit_of_work import UnitOfWork
from intake import events, models, pii, reception
from servicekit.db import insert_for
from servicekit.idempotency import IdempotencyConflict, run_once
from servicekit.idempotency import fingerprint as request_fingerprint
from servicekit.localtime import local_zone, one_month_after

# Re-exported for the views, which catch the conflict and hash the raw body.
__all__ = ["IdempotencyConflict", "request_fingerprint"]


class UnknownCases(Exception):
    """Follow-ups name case numbers intake does not know."""

    def __init__(self, numbers: list[str]) -> None:
        super().__init__(", ".join(numbers))
        self.numbers = numbers


class OutsideSession(Exception):
    """A night-talk visit received when no night-talk session of the unit was open."""


class UnknownUnits(Exception):
    """Issues name units (signed over to, accused) that the unit directory does not know."""

    def __init__(self, errors: dict[int, dict]) -> None:
        super().__init__("unknown units")
        self.errors = errors


# Numbers are committed on their own without waiting for the disk: the registration's
# commit, which does wait, comes later in the write-ahead log, so no case carrying a
# number is ever durable before the counter that handed it out.
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


def hand_out_case_numbers(session: Session, unit: str, day: dt.date, count: int) -> list[str]:
    """Hand out the next ``count`` case numbers of a unit for a day: ``<unit>-<yyyymmdd>-<seq>``.

    On PostgreSQL the numbers are committed at once, in a transaction of their own (the
    session has only read so far), so the counter's row lock lasts one statement rather
    than the whole registration and the desks of one unit do not queue behind each
    other. A registration that fails after this leaves its numbers unused, as a torn-off
    ticket would: numbers are unique and increase, with a gap where a registration
    failed. On SQLite, which writes one transaction at a time anyway, they are taken in
    the registration's own transaction, with no gaps.
    """
    if not count:
        return []
    key = day.strftime("%Y%m%d")
    dialect = session.get_bind().dialect.name
    own_transaction = dialect == "postgresql"
    if own_transaction:
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("case numbers are handed out before the registration writes")
        session.execute(_ASYNC_COMMIT)
    last = (
        session.connection()
        .execute(_take_numbers_statement(dialect), {"unit": unit, "day": key, "count": count})
        .scalar_one()
    )
    if own_transaction:
        session.commit()
    return [f"{unit}-{key}-{seq:04d}" for seq in range(last - count + 1, last + 1)]


@functools.cache
def _take_numbers_statement(dialect: str):
    # Built once: the unit, day and count come as parameters.
    table = models.CaseNumberCounter.__table__
    return (
        insert_for(dialect)(table)
        .values(unit=bindparam("unit"), day=bindparam("day"), last=bindparam("count"))
        .on_conflict_do_update(
            index_elements=["unit", "day"], set_={"last": table.c.last + bindparam("count")}
        )
        .returning(table.c.last)
    )


def _open_case_of(session, id_key: str | None, phone_key: str | None, category: str) -> str | None:
    """Return the id of the visitor's latest unanswered case of a category, if any.

    The visitor is the one of the same ID number or the same phone; a case of the same
    phone but another ID number is another person's (a family sharing one phone).
    """
    if not id_key and not phone_key:
        return None
    return (
        session.connection()
        .execute(
            _open_case_statement(bool(id_key), bool(phone_key)),
            {"id_key": id_key, "phone_key": phone_key, "category": category},
        )
        .scalar()
    )


# Statements built once, their values bound per call: building a statement and its
# cache key costs about as much as running it. The registration's statements run on
# the session's connection (Core), not through the ORM: the ORM's flush and loading
# cost more than half of a registration's CPU, for rows written once and read back
# never in the same request.
@functools.cache
def _open_case_statement(by_id: bool, by_phone: bool):
    cases = models.Case.__table__
    same_id = cases.c.visitor_id_key == bindparam("id_key")
    same_phone = cases.c.visitor_phone_key == bindparam("phone_key")
    if by_id and by_phone:
        same_visitor = or_(same_id, and_(same_phone, cases.c.visitor_id_key.is_(None)))
    else:
        same_visitor = same_id if by_id else same_phone
    return (
        select(cases.c.id)
        .where(
            same_visitor,
            cases.c.category == bindparam("category"),
            cases.c.status.in_(models.UNANSWERED),
        )
        # The latest; of one visit's (same time), the last registered.
        .order_by(cases.c.received_at.desc(), cases.c.case_number.desc())
        .limit(1)
    )


@functools.cache
def _count_later_visits_statement():
    # Counted by the database (repeat_count + 1), not written back from a value read:
    # two desks registering repeats of one case at once must both count.
    cases = models.Case.__table__
    return (
        update(cases)
        .where(cases.c.id == bindparam("earlier_id"))
        .values(repeat_count=cases.c.repeat_count + 1)
    )


@functools.cache
def _insert_statement(model):
    return insert(model.__table__)


@functools.cache
def _known_units_statement():
    units = models.Unit.__table__
    return select(units.c.code).where(
        units.c.code.in_(bindparam("codes", expanding=True)), units.c.active
    )


def register_visit(
    uow: UnitOfWork,
    *,
    unit: str,
    registered_by: str,
    data: dict[str, Any],
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Register a batch and its issues; return (the response body, whether it was created).

    A retry with the same Idempotency-Key returns the first response and creates nothing.
    """

    def create(uow: UnitOfWork) -> dict[str, Any]:
        body, visit = _register(uow.session, unit, registered_by, data)
        for domain_event in visit.events:
            for outgoing in events.to_integration(domain_event):
                uow.emit(outgoing)
        return body

    return run_once(
        uow,
        model=models.IdempotentRequest,
        unit=unit,
        key=idempotency_key,
        fingerprint=fingerprint or "",
        create=create,
    )


def _check_units(session, issues: list[dict[str, Any]]) -> None:
    """Refuse units the directory does not know (or has retired), naming the field.

    Until routing has published its directory, intake's copy is empty and any
    well-formed unit code is accepted: routing still checks when it routes.
    """
    named = {
        u
        for issue in issues
        for u in ((issue.get("accused") or {}).get("unit"), issue["disposition"].get("unit"))
        if u
    }
    if not named:
        return
    known = set(
        session.connection().execute(_known_units_statement(), {"codes": sorted(named)}).scalars()
    )
    # The usual case costs one query; only a miss asks whether the copy is still empty.
    if known == named or session.scalar(select(models.Unit.code).limit(1)) is None:
        return
    errors: dict[int, dict] = {}
    for position, issue in enumerate(issues):
        where: dict[str, Any] = {}
        signed_to = issue["disposition"].get("unit")
        if signed_to and signed_to not in known:
            where["disposition"] = {"unit": [f"unknown unit: {signed_to}"]}
        accused = (issue.get("accused") or {}).get("unit")
        if accused and accused not in known:
            where["accused"] = {"unit": [f"unknown unit: {accused}"]}
        if where:
            errors[position] = where
    if errors:
        raise UnknownUnits(errors)


def _register(session, unit: str, registered_by: str, data: dict[str, Any]):
    now = dt.datetime.now(dt.UTC)
    received_at: dt.datetime = data["received_at"]
    visitor = data["visitor"]
    follow_up_numbers: list[str] = data.get("follow_ups") or []

    if data["channel"] == reception.NIGHT_TALK and not reception.in_session(
        session, unit, received_at
    ):
        raise OutsideSession()
    _check_units(session, data.get("issues") or [])

    followed: list[models.Case] = []
    if follow_up_numbers:
        found = {
            c.case_number: c
            for c in session.scalars(
                select(models.Case).where(models.Case.case_number.in_(follow_up_numbers))
            )
        }
        missing = [n for n in follow_up_numbers if n not in found]
        if missing:
            raise UnknownCases(missing)
        followed = [found[n] for n in follow_up_numbers]

    # Last of the reads that may refuse the visit: a refused visit takes no numbers.
    day = received_at.astimezone(local_zone()).date()
    numbers = iter(hand_out_case_numbers(session, unit, day, len(data.get("issues") or [])))

    id_number = visitor.get("id_number")
    id_key, phone_key = pii.id_key(id_number), pii.phone_key(visitor.get("phone"))
    key = id_key or phone_key
    visit_row = {
        "id": models.new_id(),
        "unit": unit,
        "channel": data["channel"],
        "received_at": received_at,
        "registered_at": now,
        "registered_by": registered_by,
        "leader": data.get("leader"),
        "headcount": data["headcount"],
        "visitor_key": key,
        "visitor_name_enc": pii.encrypt(visitor.get("name")),
        "visitor_phone_enc": pii.encrypt(visitor.get("phone")),
        "visitor_address_enc": pii.encrypt(visitor.get("address")),
        "visitor_id_last4": id_number[-4:].upper() if id_number else None,
        "follow_ups": follow_up_numbers,
    }

    case_rows: list[dict[str, Any]] = []
    # The earlier cases this visit is a later visit about (by id): declared follow-ups and
    # repeats found below. A set: one visit counts once on a case, however many of its
    # issues are about it and whether or not the visitor also named its number.
    later_visits: set[str] = {c.id for c in followed}
    for position, issue in enumerate(data.get("issues") or []):
        disposition = issue["disposition"]
        resolved = disposition["action"] == "resolved_on_spot"
        # Whatever the desk does with it now: a visitor back about a case still open is
        # a repeat visit, even one answered on the spot this time.
        earlier = _open_case_of(session, id_key, phone_key, issue["category"])
        accused = issue.get("accused") or {}
        case_rows.append(
            {
                "id": models.new_id(),
                "case_number": next(numbers),
                "visit_id": visit_row["id"],
                "position": position,
                "unit": unit,
                "channel": data["channel"],
                "received_at": received_at,
                "category": issue["category"],
                "summary": issue["summary"].strip(),
                "details": issue.get("details"),
                "location": issue.get("location"),
                "accused_unit": accused.get("unit"),
                "accused_person": accused.get("person"),
                "disposition": disposition["action"],
                "sign_over_unit": disposition.get("unit"),
                "answer": disposition.get("answer"),
                "status": models.RESOLVED_ON_SPOT if resolved else models.OPEN,
                # The programme's promise: resolved within one calendar month (routing
                # sets the binding date of the assignment when it routes the case).
                "due_at": None if resolved else one_month_after(now),
                "visitor_key": key,
                "visitor_id_key": id_key,
                "visitor_phone_key": phone_key,
                "repeat_of": earlier,
                "repeat_count": 0,
                # Only the Open311 face places a request on a map or links a photo.
                "latitude": issue.get("latitude"),
                "longitude": issue.get("longitude"),
                "media_url": issue.get("media_url"),
            }
        )
        if earlier is not None:
            later_visits.add(earlier)

    connection = session.connection()
    connection.execute(_insert_statement(models.Visit), visit_row)
    if case_rows:
        connection.execute(_insert_statement(models.Case), case_rows)
    if later_visits:
        # In the order of their ids, whatever the order the clerk named them in: two desks
        # counting visits on the same cases then lock them in the same order, one waiting
        # for the other rather than each holding a case the other needs (a deadlock).
        connection.execute(
            _count_later_visits_statement(),
            [{"earlier_id": i} for i in sorted(later_visits)],
        )

    # The domain's objects, for the events and the answer; written above, not by the ORM.
    cases = [models.Case(**row) for row in case_rows]
    visit = models.Visit(**visit_row, cases=cases)

    for case in cases:
        visit.record(models.CaseRegistered(case))
        if case.status == models.RESOLVED_ON_SPOT:
            visit.record(models.CaseResolvedOnSpot(case))
    for case in followed:
        visit.record(models.VisitFollowedUp(visit, case))
    visit.record(models.VisitRegistered(visit))
    if cases and (visitor.get("phone") or visitor.get("address")):
        visit.record(
            models.VisitorContactRecorded(
                visit, visitor.get("name"), visitor.get("phone"), visitor.get("address")
            )
        )

    body = {
        "visit_id": visit.id,
        "cases": [
            {
                "case_id": c.id,
                "case_number": c.case_number,
                "status": c.status,
                "due_at": events.iso(c.due_at),
                "repeat_of": c.repeat_of,
            }
            for c in cases
        ],
        "follow_ups": [{"case_id": c.id, "case_number": c.case_number} for c in followed],
    }
    return body, visit


def open_session(
    uow: UnitOfWork,
    *,
    unit: str,
    opened_by: str,
    data: dict[str, Any],
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Open an extra night-talk session for a unit; return (the response body, created)."""

    def create(uow: UnitOfWork) -> dict[str, Any]:
        extra = models.ReceptionSession(
            unit=unit,
            opens_at=data["opens_at"],
            closes_at=data["closes_at"],
            note=data.get("note"),
            opened_by=opened_by,
            created_at=dt.datetime.now(dt.UTC),
        )
        uow.session.add(extra)
        uow.session.flush()
        return session_view(extra)

    return run_once(
        uow,
        model=models.IdempotentRequest,
        unit=unit,
        key=idempotency_key,
        fingerprint=fingerprint or "",
        create=create,
    )


def session_view(extra: models.ReceptionSession) -> dict[str, Any]:
    """Return an extra session as the API shows it."""
    return {
        "session_id": extra.id,
        "unit": extra.unit,
        "kind": "extra",
        "opens_at": events.iso(extra.opens_at),
        "closes_at": events.iso(extra.closes_at),
        "note": extra.note,
    }
