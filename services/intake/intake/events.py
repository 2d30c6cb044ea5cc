"""The integration events intake publishes, built from its domain events.

Payloads here are intake's own contract; each consumer keeps its own schema of
what it reads. Only ``visit.contact_recorded`` carries the visitor's contact, and
only notify binds to it: no other service ever receives a name or phone number.
Even there the contact travels sealed (:func:`seal_contact`), never in clear.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from eventbus import envelope
from intake import models, pii

SERVICE = "intake"


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat()


def case_data(case: models.Case) -> dict[str, Any]:
    """Return the ``case.registered`` payload of a case (no visitor identity)."""
    disposition: dict[str, Any] = {"action": case.disposition}
    if case.sign_over_unit:
        disposition["unit"] = case.sign_over_unit
    if case.answer:
        disposition["answer"] = case.answer
    accused = None
    if case.accused_unit or case.accused_person:
        accused = {"unit": case.accused_unit, "person": case.accused_person}
    return {
        "case_id": case.id,
        "case_number": case.case_number,
        "visit_id": case.visit_id,
        "unit": case.unit,
        "channel": case.channel,
        "received_at": iso(case.received_at),
        "category": case.category,
        "summary": case.summary,
        "details": case.details,
        "location": case.location,
        "accused": accused,
        "disposition": disposition,
        "status": case.status,
        "due_at": iso(case.due_at),
        "repeat_of": case.repeat_of,
        # A pseudonym: lets consumers count repeat visitors without knowing who they are.
        "visitor_ref": case.visitor_key,
    }


def to_integration(event: Any) -> list[envelope.OutgoingEvent]:
    """Return the integration events that announce a domain event."""
    match event:
        case models.CaseRegistered(case=case):
            return [_build("case.registered", case.id, case_data(case))]
        case models.CaseResolvedOnSpot(case=case):
            return [
                _build(
                    "case.resolved_on_spot",
                    case.id,
                    {
                        "case_id": case.id,
                        "case_number": case.case_number,
                        "unit": case.unit,
                        "answer": case.answer,
                        "resolved_at": iso(case.received_at),
                    },
                )
            ]
        case models.VisitRegistered(visit=visit):
            return [
                _build(
                    "visit.registered",
                    visit.id,
                    {
                        "visit_id": visit.id,
                        "unit": visit.unit,
                        "channel": visit.channel,
                        "received_at": iso(visit.received_at),
                        "headcount": visit.headcount,
                        "case_ids": [c.id for c in visit.cases],
                        "follow_ups": list(visit.follow_ups or []),
                        "visitor_ref": visit.visitor_key,
                    },
                )
            ]
        case models.VisitorContactRecorded(visit=visit, name=name, phone=phone, address=address):
            return [
                _build(
                    "visit.contact_recorded",
                    visit.id,
                    {
                        "visit_id": visit.id,
                        "unit": visit.unit,
                        "sealed_contact": seal_contact(name, phone, address),
                        "language": "zh",
                        "cases": [
                            {"case_id": c.id, "case_number": c.case_number} for c in visit.cases
                        ],
                    },
                )
            ]
        case models.VisitFollowedUp(visit=visit, case=case):
            return [
                _build(
                    "visit.followed_up",
                    case.id,
                    {
                        "visit_id": visit.id,
                        "case_id": case.id,
                        "case_number": case.case_number,
                        "unit": visit.unit,
                        "channel": visit.channel,
                        "received_at": iso(visit.received_at),
                    },
                )
            ]
    raise TypeError(f"no integration event for {event!r}")


def seal_contact(name: str | None, phone: str | None, address: str | None) -> str:
    """Return the visitor's contact as one token that only a holder of the PII key opens.

    An event's body outlives its publishing: the outbox keeps the row once sent, the
    broker's queue and notify's dead letters hold it as it is. Sealed (Fernet, under
    ``NIGHTTALK_PII_KEY``, which notify shares), none of them shows a visitor in clear;
    one encryption of the whole contact, once per visit.
    """
    contact = {"name": name, "phone": phone, "address": address}
    return pii.encrypt(json.dumps(contact, ensure_ascii=False, separators=(",", ":")))


def _build(routing_key: str, subject: str, data: dict[str, Any]) -> envelope.OutgoingEvent:
    return envelope.build(service=SERVICE, routing_key=routing_key, subject=subject, data=data)
