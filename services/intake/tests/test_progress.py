"""A case's progress as routing reports it: transfers, co-handlers, reopenings, extensions."""

from __future__ import annotations

import datetime as dt
import uuid

from intake_samples import CST, assignment_resolved, case_routed, consume

from eventbus import envelope, testing
from intake.handlers import handlers

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=CST)
DAY = dt.timedelta(days=1)


def _routed_case(register) -> tuple[str, str]:
    case = register()["cases"][2]  # the demolition case, disposition route
    return case["case_id"], case["case_number"]


def _shown(client, bearer, number) -> dict:
    r = client.get(f"/v1/cases/{number}", headers=bearer())
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_a_co_handlers_answer_does_not_displace_the_new_leads_answer_kept_aside(
    client, bearer, register, runtime
):
    """Transferred to lw-guokeng with xc-org helping: both answer before the transfer's
    routing reaches intake; the lead's answer still resolves the case when it comes."""
    case_id, number = _routed_case(register)
    first, lead, co = _ids(3)
    consume(runtime, case_routed(case_id, number, "lw-buwen", routed_at=T0, assignment_id=first))
    consume(
        runtime,
        assignment_resolved(case_id, number, "lw-guokeng", lead, at=T0 + dt.timedelta(days=3)),
        assignment_resolved(case_id, number, "xc-org", co, at=T0 + dt.timedelta(days=4)),
    )
    assert _shown(client, bearer, number)["status"] == "routed"
    transferred_at = T0 + dt.timedelta(days=2)
    consume(
        runtime,
        case_routed(case_id, number, "lw-guokeng", routed_at=transferred_at, assignment_id=lead),
        case_routed(
            case_id, number, "xc-org", routed_at=transferred_at, assignment_id=co, role="co"
        ),
    )
    case = _shown(client, bearer, number)
    assert (case["status"], case["responsible_unit"]) == ("resolved", "lw-guokeng")
    assert dt.datetime.fromisoformat(case["resolved_at"]) == T0 + dt.timedelta(days=3)


OPEN311_KEY = "k-city-org-0123456789"


def test_a_case_routed_again_after_its_answer_is_reopened(
    client, bearer, register, runtime, monkeypatch
):
    """The visitor was unsatisfied: supervision reopened the case and routing sent it back
    with a new assignment. Until that unit answers, the case is open again everywhere."""
    monkeypatch.setenv("NIGHTTALK_OPEN311_KEYS", f"{OPEN311_KEY}=city-org")
    form = {
        "api_key": OPEN311_KEY,
        "service_code": "land",
        "address_string": "芝山镇",
        "description": "宅基地被占用",
        "phone": "13905961234",
    }
    r = client.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 200, r.get_json()
    number = r.get_json()[0]["service_request_id"]
    case_id = _shown(client, bearer, number)["case_id"]
    first, again = _ids(2)
    consume(
        runtime,
        case_routed(case_id, number, "lw-buwen", routed_at=T0, assignment_id=first),
        assignment_resolved(case_id, number, "lw-buwen", first, at=T0 + dt.timedelta(days=3)),
    )
    assert _shown(client, bearer, number)["status"] == "resolved"

    reopened_at = T0 + dt.timedelta(days=5)
    consume(
        runtime,
        case_routed(
            case_id,
            number,
            "lw-buwen",
            routed_at=reopened_at,
            assignment_id=again,
            reason="reopened: 不满意",
        ),
    )
    case = _shown(client, bearer, number)
    assert (case["status"], case["resolved_at"]) == ("routed", None)
    citizen = client.get(f"/open311/v2/requests/{number}.json?api_key={OPEN311_KEY}")
    assert citizen.get_json()[0]["status"] == "open"
    repeat = client.post("/open311/v2/requests.json", data=form).get_json()[0]
    assert _shown(client, bearer, repeat["service_request_id"])["repeat_of"] == case_id

    # The first routing and its answer, delivered again late, do not resolve it again.
    consume(
        runtime,
        case_routed(case_id, number, "lw-buwen", routed_at=T0, assignment_id=first),
        assignment_resolved(case_id, number, "lw-buwen", first, at=T0 + dt.timedelta(days=4)),
    )
    assert _shown(client, bearer, number)["status"] == "routed"
    answered_at = T0 + dt.timedelta(days=9)
    consume(runtime, assignment_resolved(case_id, number, "lw-buwen", again, at=answered_at))
    case = _shown(client, bearer, number)
    assert case["status"] == "resolved"
    assert dt.datetime.fromisoformat(case["resolved_at"]) == answered_at


def test_a_reopening_routed_before_the_first_answer_arrived_leaves_the_case_open(
    client, bearer, register, runtime
):
    case_id, number = _routed_case(register)
    first, again = _ids(2)
    consume(
        runtime,
        case_routed(case_id, number, "lw-buwen", routed_at=T0, assignment_id=first),
        case_routed(
            case_id, number, "lw-buwen", routed_at=T0 + dt.timedelta(days=5), assignment_id=again
        ),
        assignment_resolved(case_id, number, "lw-buwen", first, at=T0 + dt.timedelta(days=3)),
    )
    assert _shown(client, bearer, number)["status"] == "routed"


def test_an_answer_before_any_routing_then_a_later_routing_reopens(
    client, bearer, register, runtime
):
    """Even when intake heard the first answer before any routing of the case."""
    case_id, number = _routed_case(register)
    first, again = _ids(2)
    consume(
        runtime,
        assignment_resolved(case_id, number, "lw-buwen", first, at=T0 + dt.timedelta(days=3)),
        case_routed(
            case_id, number, "lw-buwen", routed_at=T0 + dt.timedelta(days=5), assignment_id=again
        ),
        case_routed(case_id, number, "lw-buwen", routed_at=T0, assignment_id=first),
    )
    assert _shown(client, bearer, number)["status"] == "routed"


def extension_granted(
    case_id: str, number: str, unit: str, assignment_id: str, *, due_at: dt.datetime, at
):
    """Return routing's assignment.extension_granted as routing publishes it."""
    data = {
        "case_id": case_id,
        "case_number": number,
        "assignment_id": assignment_id,
        "unit": unit,
        "occurred_at": at.isoformat(),
        "by": f"{unit}:supervisor",
        "due_at": due_at.isoformat(),
        "granted_by": f"{unit}:supervisor",
        "reason": "情况复杂",
    }
    return envelope.build(
        service="routing",
        routing_key="assignment.extension_granted",
        subject=case_id,
        data=data,
    )


DUE = T0 + dt.timedelta(days=31)
EXTENDED = DUE + dt.timedelta(days=15)


def test_a_granted_extension_moves_the_due_date_on_intake_and_open311(
    client, bearer, runtime, monkeypatch
):
    monkeypatch.setenv("NIGHTTALK_OPEN311_KEYS", f"{OPEN311_KEY}=city-org")
    form = {
        "api_key": OPEN311_KEY,
        "service_code": "land",
        "address_string": "芝山镇",
        "description": "宅基地被占用",
    }
    number = client.post("/open311/v2/requests.json", data=form).get_json()[0]["service_request_id"]
    case_id = _shown(client, bearer, number)["case_id"]
    lead, co = _ids(2)
    consume(
        runtime,
        case_routed(case_id, number, "lw-buwen", routed_at=T0, due_at=DUE, assignment_id=lead),
        case_routed(
            case_id, number, "xc-org", routed_at=T0, due_at=DUE, assignment_id=co, role="co"
        ),
        extension_granted(case_id, number, "lw-buwen", lead, due_at=EXTENDED, at=T0 + DAY * 20),
        # A co-handler's longer extension is its own part's, not the case's.
        extension_granted(case_id, number, "xc-org", co, due_at=EXTENDED + DAY, at=T0 + DAY * 21),
    )
    assert dt.datetime.fromisoformat(_shown(client, bearer, number)["due_at"]) == EXTENDED
    citizen = client.get(f"/open311/v2/requests/{number}.json?api_key={OPEN311_KEY}")
    assert dt.datetime.fromisoformat(citizen.get_json()[0]["expected_datetime"]) == EXTENDED
    # The routing delivered again later does not take the extension back.
    consume(
        runtime,
        case_routed(case_id, number, "lw-buwen", routed_at=T0, due_at=DUE, assignment_id=lead),
    )
    assert dt.datetime.fromisoformat(_shown(client, bearer, number)["due_at"]) == EXTENDED


def test_an_extension_delivered_before_its_routing_applies_when_the_routing_comes(
    client, bearer, register, runtime
):
    case_id, number = _routed_case(register)
    first, lead = _ids(2)
    moved_at = T0 + DAY * 2
    consume(
        runtime,
        case_routed(case_id, number, "lw-buwen", routed_at=T0, due_at=DUE, assignment_id=first),
        extension_granted(case_id, number, "lw-guokeng", lead, due_at=EXTENDED, at=T0 + DAY * 9),
    )
    assert dt.datetime.fromisoformat(_shown(client, bearer, number)["due_at"]) == DUE
    consume(
        runtime,
        case_routed(
            case_id, number, "lw-guokeng", routed_at=moved_at, due_at=DUE, assignment_id=lead
        ),
    )
    assert dt.datetime.fromisoformat(_shown(client, bearer, number)["due_at"]) == EXTENDED


def test_the_consumer_hears_extensions_on_the_broker(client, bearer, register, runtime, amqp_url):
    """intake's queue is bound to assignment.extension_granted (the consumer declares it)."""
    case_id, number = _routed_case(register)
    lead = str(uuid.uuid4())
    with testing.running_consumer(
        service="intake",
        handlers=handlers(runtime),
        unit_of_work=runtime.unit_of_work,
        url=amqp_url,
    ):
        testing.publish(
            amqp_url,
            case_routed(case_id, number, "lw-buwen", routed_at=T0, due_at=DUE, assignment_id=lead),
            extension_granted(case_id, number, "lw-buwen", lead, due_at=EXTENDED, at=T0 + DAY),
        )
        testing.eventually(
            lambda: dt.datetime.fromisoformat(_shown(client, bearer, number)["due_at"]) == EXTENDED,
            "the extended due date",
        )
