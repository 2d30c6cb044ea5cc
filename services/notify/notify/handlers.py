"""Turn other services' events into notifications: the consumer's handlers.

Each handler runs inside the consumer's unit of work (the inbox row and the effect
commit together; the consumer commits, never the handler). Events may come twice
or in any order: ``case.registered`` and ``visit.contact_recorded`` of one visit
end in the same state whichever arrives first. Logs carry ids and counts only,
never a name, phone or address.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from eventbus.consumer import Handler
from eventbus.envelope import ReceivedEvent
from eventbus.unit_of_work import UnitOfWork
from notify import models, pii
from notify.payloads import CaseRegisteredIn, ContactRecordedIn, load

log = logging.getLogger(__name__)

_case_registered = CaseRegisteredIn()
_contact_recorded = ContactRecordedIn()


def handlers(runtime=None) -> Mapping[str, Handler]:
    """Return the handler of each routing key notify binds its queue to.

    ``runtime`` is what ``service_group`` hands every service; these handlers need only
    the unit of work the consumer gives them.
    """
    return {
        "case.registered": on_case_registered,
        "visit.contact_recorded": on_contact_recorded,
    }


def on_case_registered(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Record the visitor's receipt (回执) of a new case: its number and due date."""
    data = load(_case_registered, event)
    session = uow.session
    # Link first: the upsert locks the link row, which the contact handler also
    # upserts before it addresses waiting notifications. Whichever of the two commits
    # second then sees the other's rows, so no receipt is left waiting by a race.
    _link_case(session, data["case_id"], data["visit_id"])
    existing = session.scalars(
        select(models.Notification).where(
            models.Notification.case_id == data["case_id"],
            models.Notification.kind == models.RECEIPT,
            models.Notification.recipient_kind == models.VISITOR,
            models.Notification.channel == models.SMS,
        )
    ).first()
    if existing is not None:
        log.info(
            "receipt already recorded", extra={"event_id": event.id, "case_id": data["case_id"]}
        )
        return
    contact = session.get(models.VisitorContact, data["visit_id"])
    notification = models.Notification(
        id=models.new_id(),
        event_id=event.id,
        case_id=data["case_id"],
        case_number=data["case_number"],
        unit=data["unit"],
        kind=models.RECEIPT,
        recipient_kind=models.VISITOR,
        channel=models.SMS,
        language=models.DEFAULT_LANGUAGE,
        created_at=models.now(),
        payload={
            "case_number": data["case_number"],
            "unit": data["unit"],
            "received_at": _iso(data["received_at"]),
            "due_at": _iso(data["due_at"]),
            "case_status": data["status"],
        },
    )
    notification.address_to(contact)
    session.add(notification)
    log.info(
        "receipt recorded",
        extra={
            "event_id": event.id,
            "case_id": data["case_id"],
            "notification_id": notification.id,
            "status": notification.status,
        },
    )


def on_contact_recorded(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Keep the visitor's contact (encrypted) and address the visit's waiting notifications."""
    data = load(_contact_recorded, event)
    session = uow.session
    visit_id = data["visit_id"]
    visitor = data["visitor"]
    # A language we have no templates for reads as the default rather than failing.
    language = data["language"] if data["language"] in models.LANGUAGES else models.DEFAULT_LANGUAGE
    # An upsert, so a corrected contact replaces the first and a concurrent duplicate
    # waits for the other instead of failing.
    _upsert(
        session,
        models.VisitorContact.__table__,
        {
            "visit_id": visit_id,
            "unit": data["unit"],
            "name_enc": pii.encrypt(visitor["name"]),
            "phone_enc": pii.encrypt(visitor["phone"]),
            "address_enc": pii.encrypt(visitor["address"]),
            "language": language,
            "recorded_at": models.now(),
        },
        key=["visit_id"],
    )
    for case in data["cases"]:
        _link_case(session, case["case_id"], visit_id)
    contact = session.get(models.VisitorContact, visit_id, populate_existing=True)
    waiting = session.scalars(
        select(models.Notification)
        .join(models.ContactCase, models.ContactCase.case_id == models.Notification.case_id)
        .where(
            models.ContactCase.visit_id == visit_id,
            models.Notification.recipient_kind == models.VISITOR,
            models.Notification.status.in_(models.WAITING_FOR_ADDRESS),
        )
    ).all()
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


def _link_case(session: Session, case_id: str, visit_id: str) -> None:
    _upsert(
        session,
        models.ContactCase.__table__,
        {"case_id": case_id, "visit_id": visit_id},
        key=["case_id"],
    )


def _upsert(session: Session, table: Table, values: dict[str, Any], *, key: list[str]) -> None:
    """Insert a row or update it in place (locking it until the transaction ends)."""
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=key,
        set_={name: stmt.excluded[name] for name in values if name not in key},
    )
    session.execute(stmt)


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()
