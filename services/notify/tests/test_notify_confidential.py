"""A complaint's notifications are kept from the unit it accuses and the units below it.

Routing never hands a complaint to the accused unit or its sub-units, and routing and
supervision keep it from their supervisors; so must notify, whose notifications name the
visitor (masked) and whose letter names them in full. The receiving desk, the unit the
complaint was handed to and admins still read them; every other caller gets what an
unknown case gives (an empty list, 404).
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from notify_sample_events import NAME, Visit, assignment_resolved, case_routed, unit_changed
from sqlalchemy import create_engine, insert, select

from notify import models
from notify.app import create_app
from servicekit import migrations
from servicekit.auth import mint

DIRECTORY = (
    ("city", "city", None),
    ("city-org", "city", "city"),
    ("city-police", "city", "city"),
    ("city-police-traffic", "city", "city-police"),
    ("city-discipline", "city", "city"),
    ("city-finance", "city", "city"),
    ("lw", "county", "city"),
    ("lw-guokeng", "township", "lw"),
)


@pytest.fixture
def app(database_url):
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    yield app
    app.extensions["runtime"].close()


@pytest.fixture
def client(app, deliver):
    for revision, (code, level, parent) in enumerate(DIRECTORY, start=1):
        deliver(unit_changed(code, level=level, parent=parent, revision=revision))
    return app.test_client()


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles) or ['supervisor'])}"}


def complaint(deliver, *, accused: str, lead: str, resolved: bool = True) -> Visit:
    """A complaint about ``accused`` received at city-org, handed to ``lead``."""
    visit = Visit(unit="city-org")
    case = visit.case_data() | {"accused": {"unit": accused, "person": "王警官"}}
    deliver(visit.case_registered(data=case))
    deliver(visit.contact_recorded())
    deliver(case_routed(visit, lead, confidential=True))
    if resolved:
        deliver(assignment_resolved(visit, lead, answer="已查处"))
    return visit


class Reader:
    """What one token reads of a case's notifications, through every endpoint."""

    def __init__(self, client, visit: Visit, ids: list[str], letter: str) -> None:
        self.client, self.visit, self.ids, self.letter = client, visit, ids, letter

    def reads(self, headers) -> dict[str, object]:
        case = self.visit.case_numbers[0]
        get = self.client.get
        return {
            "listed": len(get(f"/v1/notifications?case={case}", headers=headers).get_json()),
            "deliveries": len(get(f"/v1/deliveries?case={case}", headers=headers).get_json()),
            "all deliveries": sum(
                d["case_number"] == case
                for d in get("/v1/deliveries?limit=200", headers=headers).get_json()
            ),
            "by id": {get(f"/v1/notifications/{i}", headers=headers).status_code for i in self.ids},
            "delivery by id": {
                get(f"/v1/deliveries/{i}", headers=headers).status_code for i in self.ids
            },
            "letter.html": get(f"/v1/deliveries/{self.letter}/letter.html", headers=headers),
            "letter.pdf": get(f"/v1/deliveries/{self.letter}/letter.pdf", headers=headers),
        }


def reader(client, visit: Visit, make_worker) -> Reader:
    make_worker().drain()
    admin = bearer("city-org", "admin")
    listed = client.get(f"/v1/notifications?case={visit.case_numbers[0]}", headers=admin)
    notifications = listed.get_json()
    (letter,) = [n["id"] for n in notifications if n["channel"] == models.LETTER]
    return Reader(client, visit, [n["id"] for n in notifications], letter)


def sees_everything(reads: dict[str, object], count: int) -> bool:
    html = reads["letter.html"]
    return (
        reads["listed"] == reads["deliveries"] == reads["all deliveries"] == count
        and reads["by id"] == reads["delivery by id"] == {200}
        and html.status_code == 200
        and NAME in html.get_data(as_text=True)
        and reads["letter.pdf"].status_code == 200
    )


def sees_nothing(reads: dict[str, object]) -> bool:
    return (
        reads["listed"] == reads["deliveries"] == reads["all deliveries"] == 0
        and reads["by id"] == reads["delivery by id"] == {404}
        and reads["letter.html"].status_code == reads["letter.pdf"].status_code == 404
        and NAME not in reads["letter.html"].get_data(as_text=True)
    )


@pytest.mark.parametrize("unit", ["city-police", "city-police-traffic"])
def test_the_accused_unit_and_its_sub_units_read_nothing_of_the_complaint(
    unit, client, deliver, make_worker
):
    visit = complaint(deliver, accused="city-police", lead="city-discipline")
    case = reader(client, visit, make_worker)

    assert sees_nothing(case.reads(bearer(unit)))
    assert sees_nothing(case.reads(bearer(unit, "reception")))


@pytest.mark.parametrize(
    "unit, roles",
    [
        ("city-org", ["reception"]),  # the desk that received it
        ("city-org", ["supervisor"]),
        ("city-finance", ["supervisor"]),  # a city department: the whole city
        ("city-discipline", ["supervisor"]),  # the unit handling it
        ("city-police", ["admin"]),
    ],
)
def test_others_read_the_complaint_as_before(unit, roles, client, deliver, make_worker):
    visit = complaint(deliver, accused="city-police", lead="city-discipline")
    case = reader(client, visit, make_worker)
    count = len(case.ids)

    assert sees_everything(case.reads(bearer(unit, *roles)), count)


def test_a_complaint_about_the_city_is_read_by_the_unit_handling_it_and_the_desk(
    client, deliver, make_worker
):
    """Every unit is below the city: routing hands such a complaint to the discipline
    commission, whose supervisor reads it, as the desk that took it does."""
    visit = complaint(deliver, accused="city", lead="city-discipline")
    case = reader(client, visit, make_worker)
    count = len(case.ids)

    assert sees_everything(case.reads(bearer("city-discipline")), count)
    assert sees_everything(case.reads(bearer("city-org", "reception")), count)
    assert sees_nothing(case.reads(bearer("city-finance")))
    assert sees_nothing(case.reads(bearer("lw-guokeng")))


def test_a_complaint_whose_accused_is_not_yet_known_is_kept_from_supervisors(client, deliver):
    """case.routed says the case is confidential before case.registered says whom it
    accuses (a redelivery, a delayed event): kept from every supervisor but the desk's and
    the handling unit's until then, never shown to the accused in the meantime."""
    visit = Visit(unit="city-org")
    deliver(visit.contact_recorded())
    deliver(case_routed(visit, "city-discipline", confidential=True))
    path = f"/v1/notifications?case={visit.case_numbers[0]}"

    def listed(unit: str) -> int:
        return len(client.get(path, headers=bearer(unit)).get_json())

    assert {u: listed(u) for u in ("city-police", "city-finance")} == {
        "city-police": 0,
        "city-finance": 0,
    }
    assert listed("city-org") == listed("city-discipline") > 0

    case = visit.case_data() | {"accused": {"unit": "city-police", "person": None}}
    deliver(visit.case_registered(data=case))

    assert listed("city-police") == 0
    assert listed("city-finance") == listed("city-org") > 0


def test_a_complaint_naming_only_a_person_is_kept_from_no_unit(client, deliver):
    visit = Visit(unit="city-org")
    case = visit.case_data() | {"accused": {"unit": None, "person": "王警官"}}
    deliver(visit.case_registered(data=case))
    deliver(case_routed(visit, "lw-guokeng", confidential=True))

    listed = client.get(
        f"/v1/notifications?case={visit.case_numbers[0]}", headers=bearer("city-police")
    ).get_json()

    assert len(listed) > 0


def test_complaints_routed_before_the_upgrade_are_kept_from_supervisors(make_database):
    """Notify kept no accused before: a case whose recorded assignment notification says
    it is confidential is kept (accused not known); other cases are not touched."""
    url = make_database("notify")
    migrations.upgrade("notify", "notify", url, revision="e2a6c8f0b3d5")
    engine = create_engine(url)
    notifications = models.Notification.__table__
    at = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)

    def row(case_id: str, kind: str, channel: str, payload: dict) -> dict:
        return {
            "id": str(uuid.uuid4()),
            "event_id": str(uuid.uuid4()),
            "case_id": case_id,
            "case_number": f"city-org-20261130-{case_id[-4:]}",
            "unit": "city-org",
            "kind": kind,
            "recipient_kind": "unit",
            "recipient_ref": "city-discipline",
            "channel": channel,
            "status": "delivered",
            "language": "zh",
            "created_at": at,
            "updated_at": at,
            "payload": payload,
            "occasion": "as-1",
            "attempts": 1,
        }

    with engine.begin() as conn:
        conn.execute(
            insert(notifications),
            [
                row("case-0001", "assignment", "email", {"confidential": True}),
                row("case-0001", "assignment", "webhook", {"confidential": True}),
                row("case-0002", "assignment", "email", {"confidential": False}),
                row("case-0003", "receipt", "sms", {"case_number": "x"}),
            ],
        )
    engine.dispose()

    migrations.upgrade("notify", "notify", url)

    engine = create_engine(url)
    with engine.connect() as conn:
        kept = conn.execute(select(models.ConfidentialCase.__table__).order_by("case_id")).all()
    engine.dispose()
    assert [tuple(r) for r in kept] == [("case-0001", None, False)]
