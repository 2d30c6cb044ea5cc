"""Turn other services' events into notifications: the consumer's handlers.

Which notifications an event makes is data (the ``rules`` table); a handler only
says what each kind carries and who may hear it. Each handler runs inside the
consumer's unit of work (the inbox row and the effect commit together; the consumer
commits, never the handler). Events may come twice or in any order:
``case.registered`` and ``visit.contact_recorded`` of one visit end in the same
state whichever arrives first, and so do a unit's notifications and its
``unit.changed``. Logs carry ids and counts only, never a name, phone or address.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from eventbus.consumer import Handler
from eventbus.envelope import ReceivedEvent
from eventbus.unit_of_work import UnitOfWork
from notify import models
from notify.payloads import (
    AssignmentResolvedIn,
    CaseRegisteredIn,
    CaseRoutedIn,
    ContactRecordedIn,
    DeadlineIn,
    EscalatedIn,
    ExtensionGrantedIn,
    ResolvedOnSpotIn,
    UnitChangedIn,
    load,
)
from notify.recipients import visitor_contact_columns
from servicekit import pii
from servicekit.db import insert_for

log = logging.getLogger(__name__)

_case_registered = CaseRegisteredIn()
_contact_recorded = ContactRecordedIn()
_case_routed = CaseRoutedIn()
_assignment_resolved = AssignmentResolvedIn()
_resolved_on_spot = ResolvedOnSpotIn()
_deadline = DeadlineIn()
_escalated = EscalatedIn()
_extension_granted = ExtensionGrantedIn()
_unit_changed = UnitChangedIn()


def handlers(runtime=None) -> Mapping[str, Handler]:
    """Return the handler of each routing key notify binds its queue to.

    ``runtime`` is what ``service_group`` hands every service; these handlers need only
    the unit of work the consumer gives them.
    """
    return {
        "case.registered": on_case_registered,
        "visit.contact_recorded": on_contact_recorded,
        "case.routed": on_case_routed,
        "assignment.resolved": on_assignment_resolved,
        "assignment.extension_granted": on_extension_granted,
        "case.resolved_on_spot": on_resolved_on_spot,
        "case.warning": on_deadline,
        "case.overdue": on_deadline,
        "case.escalated": on_escalated,
        "unit.changed": on_unit_changed,
    }


def on_case_registered(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Record the visitor's receipt (回执) of a new case: its number and due date."""
    data = load(_case_registered, event)
    session = uow.session
    # Link first: the upsert locks the link row, which the contact handler also
    # upserts before it addresses waiting notifications. Whichever of the two commits
    # second then sees the other's rows, so no receipt is left waiting by a race.
    _link_case(session, data["case_id"], data["visit_id"], data["unit"])
    if data["accused"] is not None:
        # Whom it accuses, over what case.routed may have said first (accused not known).
        _upsert(
            session,
            models.ConfidentialCase.__table__,
            {
                "case_id": data["case_id"],
                "accused_unit": data["accused"]["unit"],
                "accused_known": True,
            },
            key=["case_id"],
        )
    _notify(
        uow,
        event,
        data,
        occasion="",
        payloads={
            models.RECEIPT: {
                "case_number": data["case_number"],
                "unit": data["unit"],
                "received_at": _iso(data["received_at"]),
                "due_at": _iso(data["due_at"]),
                "case_status": data["status"],
            }
        },
        recipients={models.VISITOR: ""},
        receiving_unit=data["unit"],
    )


def on_contact_recorded(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Keep the visitor's contact (encrypted) and address the visit's waiting notifications.

    The contact comes sealed under the PII key (opened once, by the schema) or, in an
    event from before intake sealed it, in clear; either way each field is stored
    encrypted on its own, as the delivery and the API read them.
    """
    data = load(_contact_recorded, event)
    session = uow.session
    visit_id = data["visit_id"]
    visitor = data["visitor"]
    # A language we have no templates for reads as the default rather than failing.
    language = data["language"] if data["language"] in models.LANGUAGES else models.DEFAULT_LANGUAGE
    # An upsert, so a corrected contact replaces the first and a concurrent duplicate
    # waits for the other instead of failing.
    written = {
        "visit_id": visit_id,
        "unit": data["unit"],
        "name_enc": pii.encrypt(visitor["name"]),
        "phone_enc": pii.encrypt(visitor["phone"]),
        "address_enc": pii.encrypt(visitor["address"]),
        "language": language,
        "recorded_at": models.now(),
    }
    _upsert(session, models.VisitorContact.__table__, written, key=["visit_id"])
    for case in data["cases"]:
        _link_case(session, case["case_id"], visit_id, data["unit"])
    # The row is what the upsert wrote, every column: addressed from that, not read back.
    contact = SimpleNamespace(**written)
    waiting = session.scalars(_waiting_for_visitor_statement(), {"visit_id": visit_id}).all()
    for notification in waiting:
        notification.address_to(contact)
    log.info(
        "visitor contact recorded",
        extra={
            "event_id": event.id,
            "visit_id": visit_id,
            "cases": len(data["cases"]),
            "notifications_addressed": len(waiting),
        },
    )


@functools.cache
def _waiting_for_visitor_statement():
    """Return the visit's (``visit_id``) notifications to the visitor still without address."""
    n = models.Notification
    return (
        select(n)
        .join(models.ContactCase, models.ContactCase.case_id == n.case_id)
        .where(
            models.ContactCase.visit_id == bindparam("visit_id"),
            n.recipient_kind == models.VISITOR,
            n.status.in_(models.WAITING_FOR_ADDRESS),
        )
    )


def on_case_routed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Tell the visitor which unit took the case, and the unit its new assignment."""
    data = load(_case_routed, event)
    unit = data["unit"]
    # Kept whatever rules are on: an assignment.* event without its role is judged by it.
    _upsert(
        uow.session,
        models.CaseAssignment.__table__,
        {
            "assignment_id": data["assignment_id"],
            "case_id": data["case_id"],
            "unit": unit,
            "role": data["role"],
        },
        key=["assignment_id"],
    )
    if data["confidential"]:
        # A complaint before its case.registered said whom it accuses (that one wins).
        _insert_new(
            uow.session,
            models.ConfidentialCase.__table__,
            [{"case_id": data["case_id"], "accused_unit": None, "accused_known": False}],
        )
    visitor_payload = {
        "case_number": data["case_number"],
        "unit": unit,
        "routed_at": _iso(data["routed_at"]),
        "due_at": _iso(data["due_at"]),
    }
    unit_payload = {
        **visitor_payload,
        "role": data["role"],
        "category": data["category"],
        "summary": data["summary"],
        "location": data["location"],
        "confidential": data["confidential"],
    }
    # The visitor hears of the lead unit only; a co-handling unit is internal.
    recipients = {models.UNIT: unit}
    if data["role"] == "lead":
        recipients[models.VISITOR] = ""
    _notify(
        uow,
        event,
        data,
        occasion=data["assignment_id"],
        payloads={models.ROUTED: visitor_payload, models.ASSIGNMENT: unit_payload},
        recipients=recipients,
        receiving_unit=data["receiving_unit"],
    )


def on_assignment_resolved(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Give the visitor the lead unit's answer, and ask whether they are satisfied (回访).

    A co-handling unit's (协办) resolution is its part of the case, not the case's answer:
    the visitor hears nothing of it (:func:`_is_lead`).
    """
    data = load(_assignment_resolved, event)
    if not _is_lead(uow.session, event, data):
        return
    _answer(uow, event, data, data["assignment_id"], data["occurred_at"])


def on_extension_granted(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Tell the visitor the new due date: their receipt promised an answer by the old one.

    Once per new due date (a second extension brings a second notice). Routing extends
    only the lead's assignment; a co-handler's, were it to come, tells the visitor nothing.
    """
    data = load(_extension_granted, event)
    if not _is_lead(uow.session, event, data):
        return
    _notify(
        uow,
        event,
        data,
        occasion=_iso(data["due_at"]) or "",
        payloads={
            models.EXTENDED: {
                "case_number": data["case_number"],
                "unit": data["unit"],
                "due_at": _iso(data["due_at"]),
                "occurred_at": _iso(data["occurred_at"]),
            }
        },
        recipients={models.VISITOR: ""},
    )


def _is_lead(session: Session, event: ReceivedEvent, data: dict[str, Any]) -> bool:
    """Return True if an assignment.* event is the lead unit's, so the visitor hears of it.

    The role is the event's; an event without one (from before routing named it) takes
    the role ``case.routed`` gave the assignment, and one whose ``case.routed`` notify
    never had is taken for the lead's.
    """
    role = data["role"] or _role_of(session, data["assignment_id"]) or models.LEAD
    if role != models.LEAD:
        log.info(
            "a co-handler's assignment: nothing for the visitor",
            extra={"event_id": event.id, "case_id": data["case_id"], "event": event.type},
        )
    return role == models.LEAD


def _role_of(session: Session, assignment_id: str) -> str | None:
    """Return the role ``case.routed`` gave an assignment, or None if it never came."""
    return session.scalars(_role_statement(), {"assignment_id": assignment_id}).first()


@functools.cache
def _role_statement():
    """Return the role of an assignment (``assignment_id``) as case.routed told it."""
    link = models.CaseAssignment
    return select(link.role).where(link.assignment_id == bindparam("assignment_id"))


def on_resolved_on_spot(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Give the visitor the answer given at the desk, and ask whether they are satisfied."""
    data = load(_resolved_on_spot, event)
    _answer(uow, event, data, "on_spot", data["resolved_at"])


def _answer(uow: UnitOfWork, event: ReceivedEvent, data: dict, occasion: str, when) -> None:
    payload = {
        "case_number": data["case_number"],
        "unit": data["unit"],
        "answer": data["answer"],
        "resolved_at": _iso(when),
    }
    _notify(
        uow,
        event,
        data,
        occasion=occasion,
        payloads={models.ANSWER: payload, models.SATISFACTION: payload},
        recipients={models.VISITOR: ""},
    )


def on_deadline(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Warn the responsible unit of a near due date, or tell it the case is overdue."""
    data = load(_deadline, event)
    kind = models.WARNING if event.routing_key == "case.warning" else models.OVERDUE
    payload = {
        "case_number": data["case_number"],
        "unit": data["unit"],
        "due_at": _iso(data["due_at"]),
        "occurred_at": _iso(data["occurred_at"]),
    }
    # One warning (or overdue notice) per due date: an extension brings a new one.
    _notify(
        uow,
        event,
        data,
        occasion=_iso(data["due_at"]) or "",
        payloads={kind: payload},
        recipients={models.UNIT: data["unit"]},
    )


def on_escalated(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Tell the supervising leader the case is now under their listed supervision (挂牌督办)."""
    data = load(_escalated, event)
    level = str(data["level"])
    payload = {
        "case_number": data["case_number"],
        "unit": data["unit"],
        "due_at": _iso(data["due_at"]),
        "occurred_at": _iso(data["occurred_at"]),
        "level": level,
        "supervisor_unit": data["supervisor_unit"],
        "supervisor": data["supervisor"],
    }
    _notify(
        uow,
        event,
        data,
        occasion=f"level-{level}",
        payloads={models.ESCALATED: payload},
        recipients={models.LEADER: data["supervisor_unit"]},
    )


def on_unit_changed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Keep a unit's contacts (newest revision wins) and address its waiting notifications."""
    data = load(_unit_changed, event)
    session = uow.session
    language = data["language"] if data["language"] in models.LANGUAGES else models.DEFAULT_LANGUAGE
    values = {**data, "language": language, "updated_at": models.now()}
    table = models.UnitContact.__table__
    stmt = insert_for(session.get_bind().dialect.name)(table).values(**values)
    # An older snapshot arriving late changes nothing (the upsert also locks the row).
    stmt = stmt.on_conflict_do_update(
        index_elements=["code"],
        set_={name: stmt.excluded[name] for name in values if name != "code"},
        where=table.c.revision < stmt.excluded.revision,
    )
    session.execute(stmt)
    contact = session.get(models.UnitContact, data["code"], populate_existing=True)
    waiting = session.scalars(
        select(models.Notification).where(
            models.Notification.recipient_ref == data["code"],
            models.Notification.recipient_kind.in_((models.UNIT, models.LEADER)),
            models.Notification.status.in_(models.WAITING_FOR_ADDRESS),
        )
    ).all()
    for notification in waiting:
        notification.address_to(contact)
    log.info(
        "unit contact recorded",
        extra={
            "event_id": event.id,
            "unit": data["code"],
            "revision": contact.revision,
            "notifications_addressed": len(waiting),
        },
    )


def _notify(
    uow: UnitOfWork,
    event: ReceivedEvent,
    data: dict[str, Any],
    *,
    occasion: str,
    payloads: dict[str, dict[str, Any]],
    recipients: dict[str, str],
    receiving_unit: str | None = None,
) -> None:
    """Record one notification per enabled rule of the event, once per occasion.

    ``payloads`` gives what each kind's template reads, ``recipients`` who may hear it
    (recipient kind → unit code, '' for the visitor); a rule for anything else is
    ignored. A repeated event meets the unique constraint and records nothing new.
    """
    session = uow.session
    rules = _enabled_rules(session, event.routing_key)
    case_id = data["case_id"]
    # The case's desk reads every notification of it: the unit the event names, else the
    # one its registration or contact left on the link; the event's own unit (the answering
    # or responsible one) only for a case neither has reached yet.
    access_unit = receiving_unit or _receiving_unit(session, case_id) or data.get("unit")
    now = models.now()
    # Each recipient's contact is read once per event, as plain columns: the rules of its
    # channels share the read, and loading it as an ORM object cost more than the query.
    contacts: dict[tuple[bool, str], Any] = {}
    rows = []
    for rule in rules:
        if rule.kind not in payloads or rule.recipient_kind not in recipients:
            continue
        ref = recipients[rule.recipient_kind]
        whose = (rule.recipient_kind == models.VISITOR, ref)
        if whose not in contacts:
            contacts[whose] = _contact_of(session, rule.recipient_kind, ref, case_id)
        status, language = models.addressing(rule.recipient_kind, rule.channel, contacts[whose])
        rows.append(
            {
                "id": models.new_id(),
                "event_id": event.id,
                "case_id": case_id,
                "case_number": data["case_number"],
                "unit": access_unit,
                "kind": rule.kind,
                "occasion": occasion[:64],
                "recipient_kind": rule.recipient_kind,
                "recipient_ref": ref,
                "channel": rule.channel,
                "status": status,
                "language": language or models.DEFAULT_LANGUAGE,
                "created_at": now,
                "updated_at": now,
                "attempts": 0,
                "payload": payloads[rule.kind],
            }
        )
    # One statement for all of them; a repeated event meets the unique constraint.
    recorded = _insert_new(session, models.Notification.__table__, rows)
    log.info(
        "notifications recorded",
        extra={"event_id": event.id, "case_id": case_id, "recorded": recorded},
    )


def _enabled_rules(session: Session, event_type: str) -> list[models.Rule]:
    """Return the event's enabled rules, read once per transaction (a consumer's batch)."""
    # The session lives for one unit of work, so its memo never outlives the transaction.
    memo: dict[str, list[models.Rule]] = session.info.setdefault("enabled_rules", {})
    if event_type not in memo:
        memo[event_type] = list(session.scalars(_enabled_rules_statement(), {"event": event_type}))
    return memo[event_type]


@functools.cache
def _enabled_rules_statement():
    """Return the enabled rules of an ``event`` type."""
    return select(models.Rule).where(
        models.Rule.event == bindparam("event"), models.Rule.enabled.is_(True)
    )


def _contact_of(session: Session, recipient_kind: str, ref: str, case_id: str):
    """Return the recipient's contact as the columns addressing reads, or None if unknown."""
    if recipient_kind == models.VISITOR:
        return session.execute(visitor_contact_columns(), {"case_id": case_id}).first()
    return session.execute(_unit_contact_statement(), {"code": ref}).first()


@functools.cache
def _unit_contact_statement():
    """Return a unit's (``code``) contact columns that addressing reads."""
    contact = models.UnitContact.__table__
    return select(
        contact.c.email,
        contact.c.phone,
        contact.c.webhook_url,
        contact.c.leader_email,
        contact.c.leader_phone,
        contact.c.language,
    ).where(contact.c.code == bindparam("code"))


def _receiving_unit(session: Session, case_id: str) -> str | None:
    """Return the unit that received the case, as its registration or its visit's contact
    said, whatever rules are on (a receipt switched off once hid later notifications of
    the case from its desk); None if neither event has come yet."""
    return session.scalars(_receiving_unit_statement(), {"case_id": case_id}).first()


@functools.cache
def _receiving_unit_statement():
    """Return the receiving unit of a case (``case_id``), by its link to the visit."""
    link = models.ContactCase
    return select(link.unit).where(link.case_id == bindparam("case_id"))


def _insert_new(session: Session, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert rows (alike in their keys) unless their unique key exists; return how many went in."""
    if not rows:
        return 0
    # Returned keys say which rows went in: an INSERT's row count is not reported through
    # SQLAlchemy on psycopg (-1), which made the log's "recorded" negative. Many rows go
    # as one multi-row statement (SQLAlchemy's insertmanyvalues).
    stmt = _insert_new_statement(table, session.get_bind().dialect.name)
    return len(session.connection().execute(stmt, rows).all())


# Statements built once (per table and columns): building one and its cache key cost
# more than running it; the values come as parameters.
@functools.cache
def _insert_new_statement(table: Table, dialect: str):
    return insert_for(dialect)(table).on_conflict_do_nothing().returning(*table.primary_key.columns)


@functools.cache
def _upsert_statement(table: Table, dialect: str, columns: tuple[str, ...], key: tuple[str, ...]):
    stmt = insert_for(dialect)(table)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={name: excluded[name] for name in columns if name not in key},
    )


def _link_case(session: Session, case_id: str, visit_id: str, unit: str) -> None:
    """Link a case to its visit and the unit that received it (both events say the same)."""
    _upsert(
        session,
        models.ContactCase.__table__,
        {"case_id": case_id, "visit_id": visit_id, "unit": unit},
        key=["case_id"],
    )


def _upsert(session: Session, table: Table, values: dict[str, Any], *, key: list[str]) -> None:
    """Insert a row or update it in place (locking it until the transaction ends)."""
    dialect = session.get_bind().dialect.name
    session.execute(_upsert_statement(table, dialect, tuple(values), tuple(key)), values)


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()
