"""A case's progress as routing reports it: transfers, co-handlers, reopenings, extensions."""

from __future__ import annotations

import datetime as dt
import uuid

from intake_samples import CST, assignment_resolved, case_routed, consume

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=CST)


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
