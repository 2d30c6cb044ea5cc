"""The case.registered handler and the directory seed, on a real database."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from eventbus import names, testing
from eventbus.envelope import PoisonMessage
from routing import directory, models, rules
from routing.directory import UnitRecord

NAMED_UNITS = Path(__file__).parent / "data" / "units_named.json"


def assignments(runtime) -> list[models.Assignment]:
    with runtime.sessions() as session:
        return list(
            session.scalars(select(models.Assignment).order_by(models.Assignment.routed_at))
        )


def outbox_rows(runtime) -> list:
    table = models.metadata.tables["outbox"]
    with runtime.engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.position)))


def inbox_count(runtime) -> int:
    table = models.metadata.tables["inbox"]
    with runtime.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# -- the directory -------------------------------------------------------------------------


def test_seeding_twice_changes_nothing(bare_runtime):
    records = directory.load_units(NAMED_UNITS)
    with bare_runtime.sessions() as session:
        first = directory.seed(session, records)
        session.commit()
    with bare_runtime.sessions() as session:
        before = [
            (u.code, u.name, u.level, u.parent, u.area, u.leader, u.active)
            for u in session.scalars(select(models.Unit).order_by(models.Unit.code))
        ]
        second = directory.seed(session, records)
        session.commit()
        after = [
            (u.code, u.name, u.level, u.parent, u.area, u.leader, u.active)
            for u in session.scalars(select(models.Unit).order_by(models.Unit.code))
        ]
    assert (first.added, first.updated, first.unchanged) == (34, 0, 0)
    assert (second.added, second.updated, second.unchanged) == (0, 0, 34)
    assert len(first.changed) == 34 and second.changed == ()
    assert after == before
    assert ("lw-buwen", "步文镇", "township", "lw", "lw", None, True) in after


def test_seeding_updates_and_retires_units_and_keeps_those_not_listed(runtime):
    changed = [
        UnitRecord(
            code="lw-buwen",
            name="步文镇",
            level="township",
            parent="lw",
            area="lw",
            leader="林镇长",
        ),
        UnitRecord(code="lw-chaoyang", name="朝阳镇", level="township", parent="lw", area="lw"),
        UnitRecord(
            code="ds-xipu", name="西埔镇", level="township", parent="ds", area="ds", active=False
        ),
    ]
    with runtime.sessions() as session:
        result = directory.seed(session, changed)
        session.commit()
        assert (result.added, result.updated, result.unchanged) == (1, 2, 0)
        assert {u.code: u.revision for u in result.changed} == {
            "lw-buwen": 2,
            "lw-chaoyang": 1,
            "ds-xipu": 2,
        }
        assert session.get(models.Unit, "lw-buwen").leader == "林镇长"
        assert session.get(models.Unit, "ds-xipu").active is False
        assert session.scalar(select(func.count()).select_from(models.Unit)) == 35
        assert "ds-xipu" not in directory.active_codes(session)
        assert "lw-chaoyang" in directory.active_codes(session)


def test_seeding_refuses_a_parent_that_is_nowhere(runtime):
    orphan = UnitRecord(code="xx-town", name="某镇", level="township", parent="xx", area="xx")
    with runtime.sessions() as session, pytest.raises(ValueError, match="'xx' is no unit"):
        directory.seed(session, [orphan])


# -- routing a case ------------------------------------------------------------------------


def test_a_signed_over_case_is_assigned_and_announced(runtime, deliver, case_data, case_registered):
    data = case_data(details="两年未报销", accused=None)
    before = dt.datetime.now(dt.UTC)
    deliver(case_registered(data))
    after = dt.datetime.now(dt.UTC)

    [assignment] = assignments(runtime)
    assert assignment.case_id == data["case_id"]
    assert assignment.case_number == data["case_number"]
    assert assignment.unit == "lw-guokeng"
    assert (assignment.role, assignment.status) == ("lead", "assigned")
    assert assignment.reason == rules.SIGNED_OVER
    assert assignment.confidential is False
    assert before <= assignment.routed_at <= after
    assert assignment.due_at == assignment.routed_at + relativedelta(months=1)
    assert (assignment.receiving_unit, assignment.channel) == ("city-org", "night_talk")
    assert (assignment.category, assignment.summary, assignment.details, assignment.location) == (
        "medical_reimbursement",
        "医药费无法报销",
        "两年未报销",
        "郭坑镇",
    )

    events_row, partner_row = outbox_rows(runtime)
    assert (events_row.exchange, events_row.routing_key) == (names.EVENTS_EXCHANGE, "case.routed")
    assert (partner_row.exchange, partner_row.routing_key) == (
        names.PARTNERS_EXCHANGE,
        "lw-guokeng.case.routed",
    )
    assert events_row.event_id != partner_row.event_id
    expected = {
        "case_id": data["case_id"],
        "case_number": data["case_number"],
        "assignment_id": assignment.id,
        "unit": "lw-guokeng",
        "role": "lead",
        "routed_at": assignment.routed_at.isoformat(),
        "due_at": assignment.due_at.isoformat(),
        "category": "medical_reimbursement",
        "summary": "医药费无法报销",
        "details": "两年未报销",
        "location": "郭坑镇",
        "receiving_unit": "city-org",
        "channel": "night_talk",
        "confidential": False,
        "reason": "signed over",
    }
    for row in (events_row, partner_row):
        assert json.loads(row.body) == expected
        assert row.headers["ce-type"] == "nighttalk.case.routed.v1"
        assert row.headers["ce-source"] == "/nighttalk/routing"
        assert row.headers["ce-subject"] == data["case_id"]
        # No broker in these tests: the rows wait for the relay.
        assert row.sent_at is None
    assert inbox_count(runtime) == 1


def test_routing_a_case_reads_its_unit_once(runtime, deliver, case_data, case_registered):
    # Checking the signed-over unit, taking it as the target and asking whether it reads
    # a queue are three lookups of one unit in one transaction: one query, not one each.
    with testing.reads_of(runtime.engine, "units") as reads:
        deliver(case_registered(case_data()))

    assert [a.unit for a in assignments(runtime)] == ["lw-guokeng"]
    assert len(reads) == 1, reads


def test_a_unit_without_a_partner_queue_gets_no_partner_copy(
    runtime, deliver, case_data, case_registered
):
    """A unit that reads /v1/inbox or a webhook gets the case, but nothing on the partners
    exchange: a copy there would find no queue and wait in the outbox for ever."""
    with runtime.sessions() as session:
        session.get(models.Unit, "lw-guokeng").amqp = False
        session.commit()
    deliver(case_registered(case_data(accused=None)))
    [assignment] = assignments(runtime)
    assert assignment.unit == "lw-guokeng"
    [events_row] = outbox_rows(runtime)
    assert (events_row.exchange, events_row.routing_key) == (names.EVENTS_EXCHANGE, "case.routed")
    with runtime.sessions() as session:
        assert "lw-guokeng" not in directory.queue_codes(session)
        assert "lw-buwen" in directory.queue_codes(session)


def test_a_case_resolved_on_the_spot_gets_no_assignment(
    runtime, deliver, case_data, case_registered
):
    data = case_data(
        status="resolved_on_spot",
        disposition={"action": "resolved_on_spot", "answer": "镇里当场同意补发"},
    )
    deliver(case_registered(data))
    assert assignments(runtime) == []
    assert outbox_rows(runtime) == []
    assert inbox_count(runtime) == 1


def test_a_case_left_to_routing_goes_to_the_default_unit(
    runtime, deliver, case_data, case_registered
):
    deliver(case_registered(case_data(disposition={"action": "route"})))
    [assignment] = assignments(runtime)
    assert (assignment.unit, assignment.reason) == ("city-gov-office", rules.DEFAULT_RULE)
    assert outbox_rows(runtime)[1].routing_key == "city-gov-office.case.routed"


def test_the_default_unit_comes_from_the_environment(
    runtime, deliver, case_data, case_registered, monkeypatch
):
    monkeypatch.setenv("ROUTING_DEFAULT_UNIT", "city-land")
    deliver(case_registered(case_data(disposition={"action": "route"})))
    assert assignments(runtime)[0].unit == "city-land"


def test_a_case_signed_over_to_an_unknown_unit_goes_to_the_default(
    runtime, deliver, case_data, case_registered
):
    deliver(case_registered(case_data(disposition={"action": "sign_over", "unit": "zz-nowhere"})))
    [assignment] = assignments(runtime)
    assert (assignment.unit, assignment.reason) == ("city-gov-office", rules.SIGN_OVER_UNAVAILABLE)


def test_a_case_is_never_routed_to_the_unit_it_accuses(
    runtime, deliver, case_data, case_registered
):
    data = case_data(
        category="demolition_compensation",
        summary="拆迁补偿金未到位",
        accused={"unit": "lw-buwen", "person": None},
        disposition={"action": "sign_over", "unit": "lw-buwen"},
    )
    deliver(case_registered(data))
    [assignment] = assignments(runtime)
    assert assignment.unit == "lw"
    assert assignment.reason == rules.WITHHELD_TO_SUPERIOR
    assert assignment.confidential is True
    assert assignment.accused_unit == "lw-buwen"
    rows = outbox_rows(runtime)
    assert [r.routing_key for r in rows] == ["case.routed", "lw.case.routed"]
    assert all(json.loads(r.body)["confidential"] is True for r in rows)


def test_the_visitor_pseudonym_never_leaves_routing(runtime, deliver, case_data, case_registered):
    data = case_data()
    deliver(case_registered(data))
    for row in outbox_rows(runtime):
        assert "visitor_ref" not in json.loads(row.body)
        assert data["visitor_ref"].encode() not in row.body


# -- idempotency and order ----------------------------------------------------------------


def test_the_same_event_twice_routes_once(runtime, deliver, case_registered):
    event = case_registered()
    deliver(event)
    deliver(event)
    assert len(assignments(runtime)) == 1
    assert len(outbox_rows(runtime)) == 2
    assert inbox_count(runtime) == 1


def test_the_same_case_under_another_event_id_routes_once(
    runtime, deliver, case_data, case_registered
):
    data = case_data()
    deliver(case_registered(data))
    deliver(case_registered(case_data(**{**data, "disposition": {"action": "route"}})))
    [assignment] = assignments(runtime)
    assert assignment.unit == "lw-guokeng"  # the first announcement decided
    assert len(outbox_rows(runtime)) == 2
    assert inbox_count(runtime) == 2


def test_events_of_different_cases_route_whatever_their_order(
    runtime, deliver, case_data, case_registered
):
    earlier = case_data(received_at="2026-12-15T17:05:00+08:00")
    later = case_data(
        received_at="2026-12-15T18:30:00+08:00",
        case_number="city-org-20261215-0002",
        disposition={"action": "route"},
    )
    deliver(case_registered(later, time=dt.datetime(2026, 12, 15, 10, 30, tzinfo=dt.UTC)))
    deliver(case_registered(earlier, time=dt.datetime(2026, 12, 15, 9, 5, tzinfo=dt.UTC)))
    by_case = {a.case_id: a.unit for a in assignments(runtime)}
    assert by_case == {earlier["case_id"]: "lw-guokeng", later["case_id"]: "city-gov-office"}


def test_a_case_arriving_before_the_directory_waits_for_it(bare_runtime, deliver, case_registered):
    event = case_registered()
    # Not a poison message: the event is fine, the directory is missing. The consumer
    # retries it (and dead-letters it for an operator only after the delivery limit).
    with pytest.raises(rules.NoResponsibleUnitError):
        deliver(event)
    assert assignments(bare_runtime) == [] and inbox_count(bare_runtime) == 0
    with bare_runtime.sessions() as session:
        directory.seed(session, directory.load_units(NAMED_UNITS))
        session.commit()
    deliver(event)
    assert [a.unit for a in assignments(bare_runtime)] == ["lw-guokeng"]


def test_a_second_lead_assignment_of_a_case_is_refused_by_the_database(runtime):
    # What stops two consumers racing on the same case: the partial unique index.
    def lead(case_id: str) -> models.Assignment:
        now = dt.datetime.now(dt.UTC)
        return models.Assignment(
            case_id=case_id,
            case_number="city-org-20261215-0001",
            unit="lw",
            role="lead",
            status="assigned",
            routed_at=now,
            due_at=rules.due_date(now),
            category="land",
            summary="s",
            receiving_unit="city-org",
            channel="night_talk",
            confidential=False,
            reason="test",
        )

    case_id = str(uuid.uuid4())
    with runtime.sessions() as session:
        session.add(lead(case_id))
        session.commit()
        session.add(lead(case_id))
        with pytest.raises(IntegrityError):
            session.commit()


# -- invalid events -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"case_id": None}, "case_id"),
        ({"disposition": {"action": "forward"}}, "action"),
        ({"disposition": {"action": "sign_over"}}, "unit"),
        ({"disposition": {"action": "sign_over", "unit": "Not A Code"}}, "unit"),
        ({"received_at": "yesterday"}, "received_at"),
        ({"received_at": "2026-12-15T17:05:00"}, "received_at"),
        ({"summary": "x" * 201}, "summary"),
        ({"accused": {"unit": 42}}, "unit"),
        ({"category": ""}, "category"),
    ],
)
def test_invalid_case_data_is_a_poison_message(
    runtime, deliver, case_data, case_registered, changes, field
):
    data = case_data(**changes)
    with pytest.raises(PoisonMessage, match=field):
        deliver(case_registered(data, subject=str(uuid.uuid4())))
    assert assignments(runtime) == [] and inbox_count(runtime) == 0


def test_missing_fields_are_a_poison_message(runtime, deliver, case_data, case_registered):
    data = case_data()
    del data["disposition"], data["case_number"]
    with pytest.raises(PoisonMessage, match="disposition") as info:
        deliver(case_registered(data))
    assert "case_number" in str(info.value)


def test_an_event_about_another_case_than_its_subject_is_a_poison_message(
    runtime, deliver, case_registered
):
    with pytest.raises(PoisonMessage, match="subject"):
        deliver(case_registered(subject=str(uuid.uuid4())))
    assert assignments(runtime) == []


def test_fields_routing_does_not_know_are_ignored(runtime, deliver, case_data, case_registered):
    data = case_data(priority="high", accused={"unit": None, "person": "某所长", "note": "x"})
    deliver(case_registered(data))
    [assignment] = assignments(runtime)
    assert assignment.confidential is True and assignment.unit == "lw-guokeng"
