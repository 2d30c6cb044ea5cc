"""Events as intake publishes them, for notify's tests (a module name unique in the repo,
since pytest puts every test folder on the same ``sys.path``)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from typing import Any

from eventbus import envelope
from eventbus.envelope import OutgoingEvent
from servicekit import pii

NAME = "林河清"
PHONE = "13905961234"
ADDRESS = "郭坑镇中学旁"

_sequence = itertools.count(1)


class Visit:
    """A visit registered at intake, as notify hears of it: its cases and its contact."""

    def __init__(self, unit: str = "city-org", cases: int = 1) -> None:
        self.visit_id = str(uuid.uuid4())
        self.unit = unit
        self.case_ids = [str(uuid.uuid4()) for _ in range(cases)]
        self.case_numbers = [f"{unit}-20261215-{next(_sequence):04d}" for _ in range(cases)]
        self.received_at = dt.datetime(2026, 12, 15, 9, 5, tzinfo=dt.UTC)
        self.due_at = dt.datetime(2027, 1, 15, 9, 5, tzinfo=dt.UTC)

    def case_data(self, index: int = 0) -> dict[str, Any]:
        """Return intake's ``case.registered`` payload of one of the visit's cases."""
        return {
            "case_id": self.case_ids[index],
            "case_number": self.case_numbers[index],
            "visit_id": self.visit_id,
            "unit": self.unit,
            "channel": "night_talk",
            "received_at": self.received_at.isoformat(),
            "category": "wage_arrears",
            "summary": "退休教师工资拖欠",
            "details": None,
            "location": "郭坑镇中学",
            "accused": None,
            "disposition": {"action": "route"},
            "status": "open",
            "due_at": self.due_at.isoformat(),
            "repeat_of": None,
            "visitor_ref": "a" * 64,
        }

    def contact_data(
        self, *, name=NAME, phone=PHONE, address=ADDRESS, sealed: bool = True, **more
    ) -> dict[str, Any]:
        """Return intake's ``visit.contact_recorded`` payload of the visit.

        The contact comes sealed, as intake publishes it; ``sealed=False`` gives the clear
        ``visitor`` of the events intake published before (still in queues at an upgrade).
        ``more`` adds fields to the contact.
        """
        visitor = {"name": name, "phone": phone, "address": address, **more}
        contact = {"sealed_contact": seal(visitor)} if sealed else {"visitor": visitor}
        return {
            "visit_id": self.visit_id,
            "unit": self.unit,
            **contact,
            "language": "zh",
            "cases": [
                {"case_id": c, "case_number": n}
                for c, n in zip(self.case_ids, self.case_numbers, strict=True)
            ],
        }

    def case_registered(self, index: int = 0, data: dict | None = None) -> OutgoingEvent:
        return intake_event(
            "case.registered",
            self.case_ids[index],
            data if data is not None else self.case_data(index),
        )

    def contact_recorded(self, data: dict | None = None, **contact) -> OutgoingEvent:
        return intake_event(
            "visit.contact_recorded",
            self.visit_id,
            data if data is not None else self.contact_data(**contact),
        )


def seal(contact: dict[str, Any]) -> str:
    """Seal a visitor's contact as intake does: one token of its JSON, under NIGHTTALK_PII_KEY."""
    return pii.encrypt(json.dumps(contact, ensure_ascii=False, separators=(",", ":")))


def intake_event(routing_key: str, subject: str, data: dict[str, Any]) -> OutgoingEvent:
    """Build an event exactly as intake publishes it."""
    return envelope.build(service="intake", routing_key=routing_key, subject=subject, data=data)


UNIT_EMAIL = "office@lw-guokeng.example"
UNIT_HOOK_PATH = "/messages"
LEADER_EMAIL = "leader@city-org.example"


def unit_changed(
    code: str,
    *,
    revision: int = 1,
    name: str | None = None,
    leader: str | None = "黄宝山",
    **contacts,
) -> OutgoingEvent:
    """Build routing's ``unit.changed`` snapshot, with the contact fields notify reads."""
    data = {
        "code": code,
        "name": name or f"{code} 办公室",
        "level": "township",
        "parent": "city-org",
        "area": "longwen",
        "leader": leader,
        "active": True,
        "revision": revision,
        **contacts,
    }
    return envelope.build(service="routing", routing_key="unit.changed", subject=code, data=data)


def case_routed(
    visit: Visit, unit: str, *, index: int = 0, role: str = "lead", **more
) -> OutgoingEvent:
    """Build routing's ``case.routed`` of one of the visit's cases (``more`` sets fields)."""
    data = {
        "case_id": visit.case_ids[index],
        "case_number": visit.case_numbers[index],
        "assignment_id": f"as-{visit.case_ids[index][:8]}-{unit}",
        "unit": unit,
        "role": role,
        "routed_at": "2026-12-15T09:10:00+00:00",
        "due_at": "2027-01-15T09:10:00+00:00",
        "category": "wage_arrears",
        "summary": "退休教师工资拖欠",
        "details": None,
        "location": "郭坑镇中学",
        "receiving_unit": visit.unit,
        "channel": "night_talk",
        "confidential": False,
        "reason": "rule",
        **more,
    }
    return envelope.build(
        service="routing", routing_key="case.routed", subject=visit.case_ids[index], data=data
    )


def assignment_resolved(
    visit: Visit, unit: str, *, index: int = 0, answer: str = "工资已于本月补发", **more
) -> OutgoingEvent:
    """Build routing's ``assignment.resolved`` with the answer given to the visitor
    (``more`` sets fields: ``role``, or ``None`` to leave a field out)."""
    data = {
        "case_id": visit.case_ids[index],
        "case_number": visit.case_numbers[index],
        "assignment_id": f"as-{visit.case_ids[index][:8]}-{unit}",
        "unit": unit,
        "occurred_at": "2026-12-20T09:00:00+00:00",
        "by": "partner-1",
        "answer": answer,
        **more,
    }
    data = {key: value for key, value in data.items() if value is not None}
    return envelope.build(
        service="routing",
        routing_key="assignment.resolved",
        subject=visit.case_ids[index],
        data=data,
    )


def supervision_event(
    routing_key: str, visit: Visit, unit: str, *, index: int = 0, **extra
) -> OutgoingEvent:
    """Build supervision's ``case.warning`` / ``case.overdue`` / ``case.escalated``."""
    data = {
        "case_id": visit.case_ids[index],
        "case_number": visit.case_numbers[index],
        "unit": unit,
        "due_at": "2027-01-15T09:10:00+00:00",
        "occurred_at": "2027-01-10T01:00:00+00:00",
        **extra,
    }
    return envelope.build(
        service="supervision", routing_key=routing_key, subject=visit.case_ids[index], data=data
    )
