"""A case the visitor was not satisfied with: supervision reopens it (``case.reopened``).

The desk that registered it, and intake's Open311 face, must show it is being worked on
again, whatever order supervision's and routing's events arrive in.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid

import pytest
from intake_samples import (
    CST,
    assignment_resolved,
    case_closed,
    case_reopened,
    case_routed,
    consume,
)

from eventbus import envelope, testing
from eventbus.envelope import PoisonMessage
from intake.handlers import handlers

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=CST)
DAY = dt.timedelta(days=1)
ANSWERED = T0 + DAY * 3  # the first answer, the one the visitor rejects
REOPENED = T0 + DAY * 5
ROUTED_AGAIN = REOPENED + dt.timedelta(minutes=1)  # routing sends it back at once
ANSWERED_AGAIN = T0 + DAY * 9
CLOSED = T0 + DAY * 12
OPEN311_KEY = "k-city-org-0123456789"


def _shown(client, bearer, number) -> dict:
    r = client.get(f"/v1/cases/{number}", headers=bearer())
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _at(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def _again(event: envelope.OutgoingEvent, data: dict | None = None) -> envelope.OutgoingEvent:
    """Return a new copy of an event (a new id: the inbox does not stop it)."""
    data = json.loads(event.body) if data is None else data
    return envelope.build(
        service="supervision"
        if event.routing_key in ("case.reopened", "case.closed")
        else "routing",
        routing_key=event.routing_key,
        subject=data["case_id"],
        data=data,
    )


def _routed_case(register) -> tuple[str, str]:
    case = register()["cases"][2]  # the demolition case, disposition route
    return case["case_id"], case["case_number"]


class Story:
    """One case's events from its routing to its close, the visitor rejecting the answer."""

    def __init__(self, case_id: str, number: str) -> None:
        first, again = str(uuid.uuid4()), str(uuid.uuid4())
        self.routed = case_routed(case_id, number, "lw-buwen", routed_at=T0, assignment_id=first)
        self.answered = assignment_resolved(case_id, number, "lw-buwen", first, at=ANSWERED)
        self.reopened = case_reopened(case_id, number, at=REOPENED)
        self.routed_again = case_routed(
            case_id,
            number,
            "lw-buwen",
            routed_at=ROUTED_AGAIN,
            assignment_id=again,
            reason="reopened: the visitor is not satisfied with the resolution",
        )
        self.answered_again = assignment_resolved(
            case_id, number, "lw-buwen", again, at=ANSWERED_AGAIN
        )
        self.closed = case_closed(case_id, number, at=CLOSED)


def test_a_reopened_case_shows_reopened_until_routing_sends_it_back(
    client, bearer, runtime, monkeypatch
):
    """The visitor rejected the answer: the desk and Open311 read that it is being worked on
    again, from the reopening on; routing's new assignment, its answer and the close follow."""
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
    story = Story(case_id, number)
    consume(runtime, story.routed, story.answered)
    assert _shown(client, bearer, number)["status"] == "resolved"

    consume(runtime, story.reopened)
    case = _shown(client, bearer, number)
    assert (case["status"], case["resolved_at"]) == ("reopened", None)
    assert _at(case["reopened_at"]) == REOPENED
    assert _at(case["routed_at"]) == T0 and case["responsible_unit"] == "lw-buwen"
    citizen = client.get(f"/open311/v2/requests/{number}.json?api_key={OPEN311_KEY}")
    request = citizen.get_json()[0]
    assert request["status"] == "open"
    assert "reopened" in request["status_notes"]
    assert _at(request["updated_datetime"]) == REOPENED
    listed = client.get(f"/open311/v2/requests.json?api_key={OPEN311_KEY}&status=open")
    assert number in [row["service_request_id"] for row in listed.get_json()]
    mine = client.get("/v1/cases?status=reopened", headers=bearer()).get_json()
    assert [c["case_number"] for c in mine["items"]] == [number]
    # A returning visitor raising it again is a repeat of the reopened case.
    repeat = client.post("/open311/v2/requests.json", data=form).get_json()[0]
    assert _shown(client, bearer, repeat["service_request_id"])["repeat_of"] == case_id

    consume(runtime, story.routed_again)
    case = _shown(client, bearer, number)
    assert (case["status"], _at(case["routed_at"])) == ("routed", ROUTED_AGAIN)
    assert _at(case["reopened_at"]) == REOPENED
    consume(runtime, story.answered_again)
    case = _shown(client, bearer, number)
    assert (case["status"], _at(case["resolved_at"])) == ("resolved", ANSWERED_AGAIN)
    consume(runtime, story.closed)
    case = _shown(client, bearer, number)
    assert (case["status"], _at(case["closed_at"])) == ("closed", CLOSED)
    assert _at(case["reopened_at"]) == REOPENED
    citizen = client.get(f"/open311/v2/requests/{number}.json?api_key={OPEN311_KEY}")
    assert citizen.get_json()[0]["status"] == "closed"


def test_the_rejected_answer_delivered_after_the_reopening_does_not_undo_it(
    client, bearer, register, runtime
):
    case_id, number = _routed_case(register)
    story = Story(case_id, number)
    consume(runtime, story.routed, story.reopened, story.answered)
    case = _shown(client, bearer, number)
    assert (case["status"], case["resolved_at"]) == ("reopened", None)


def test_the_rejected_answer_of_a_lead_intake_never_saw_routed_does_not_undo_it(
    client, bearer, register, runtime
):
    """No routing heard yet: an answer saying it is the lead's, older than the reopening."""
    case_id, number = _routed_case(register)
    story = Story(case_id, number)
    old = assignment_resolved(
        case_id, number, "lw-buwen", str(uuid.uuid4()), at=ANSWERED, role="lead"
    )
    consume(runtime, story.reopened, old, story.routed)
    case = _shown(client, bearer, number)
    assert (case["status"], case["resolved_at"]) == ("reopened", None)
    assert _at(case["reopened_at"]) == REOPENED


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(["answered", "reopened", "routed_again", "answered_again"])),
    ids="-".join,
)
def test_any_order_ends_resolved_by_the_answer_given_after_the_reopening(
    client, bearer, register, runtime, order
):
    case_id, number = _routed_case(register)
    story = Story(case_id, number)
    consume(runtime, story.routed, *(getattr(story, name) for name in order))
    case = _shown(client, bearer, number)
    assert (case["status"], _at(case["resolved_at"])) == ("resolved", ANSWERED_AGAIN)
    assert _at(case["reopened_at"]) == REOPENED
    # Every event delivered again (new copies, as a redelivery past the inbox would be):
    # nothing moves.
    again = [getattr(story, name) for name in ("routed", *order)]
    consume(runtime, *(_again(e) for e in again))
    case = _shown(client, bearer, number)
    assert (case["status"], _at(case["resolved_at"])) == ("resolved", ANSWERED_AGAIN)
    assert _at(case["reopened_at"]) == REOPENED


@pytest.mark.parametrize(
    "order",
    [
        ("reopened", "answered_again", "answered", "routed", "routed_again"),
        ("answered_again", "reopened", "routed_again", "answered", "routed"),
        ("reopened", "answered", "answered_again", "routed_again", "routed"),
        ("answered", "reopened", "answered_again", "routed", "routed_again"),
        ("answered", "answered_again", "reopened", "routed_again", "routed"),
    ],
    ids="-".join,
)
def test_answers_heard_before_any_routing_resolve_only_after_the_reopening(
    client, bearer, register, runtime, order
):
    """Answers saying they are the lead's (as routing publishes them), heard before either
    routing: the one given after the reopening resolves the case, the rejected one never."""
    case_id, number = _routed_case(register)
    story = Story(case_id, number)
    for name in ("answered", "answered_again"):
        data = json.loads(getattr(story, name).body)
        data["role"] = "lead"
        setattr(story, name, _again(getattr(story, name), data))
    consume(runtime, *(getattr(story, name) for name in order))
    case = _shown(client, bearer, number)
    assert (case["status"], _at(case["resolved_at"])) == ("resolved", ANSWERED_AGAIN)
    assert _at(case["reopened_at"]) == REOPENED


def test_the_new_leads_answer_heard_before_any_routing_resolves_the_reopened_case(
    client, bearer, register, runtime
):
    case_id, number = _routed_case(register)
    again = str(uuid.uuid4())
    consume(
        runtime,
        case_reopened(case_id, number, at=REOPENED),
        assignment_resolved(case_id, number, "lw-buwen", again, at=ANSWERED_AGAIN, role="lead"),
    )
    case = _shown(client, bearer, number)
    assert (case["status"], _at(case["resolved_at"])) == ("resolved", ANSWERED_AGAIN)


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(["answered", "reopened", "routed_again"])),
    ids="-".join,
)
def test_any_order_ends_routed_back_while_the_new_answer_is_awaited(
    client, bearer, register, runtime, order
):
    case_id, number = _routed_case(register)
    story = Story(case_id, number)
    consume(runtime, story.routed, *(getattr(story, name) for name in order))
    case = _shown(client, bearer, number)
    assert (case["status"], case["resolved_at"]) == ("routed", None)
    assert _at(case["routed_at"]) == ROUTED_AGAIN


@pytest.mark.parametrize(
    "order",
    [
        ("closed", "reopened", "answered_again", "routed_again", "answered"),
        ("answered", "closed", "reopened"),
        ("reopened", "closed", "answered"),
        ("answered", "reopened", "closed", "routed_again", "answered_again"),
    ],
    ids="-".join,
)
def test_a_close_stays_a_close_whatever_arrives_after_it(client, bearer, register, runtime, order):
    """supervision closes a case only after the visitor's last word: every reopening is
    older than the close."""
    case_id, number = _routed_case(register)
    story = Story(case_id, number)
    consume(runtime, story.routed, *(getattr(story, name) for name in order))
    case = _shown(client, bearer, number)
    assert (case["status"], _at(case["closed_at"])) == ("closed", CLOSED)
    assert _at(case["reopened_at"]) == REOPENED


def test_a_second_reopening_reopens_the_answer_given_after_the_first(
    client, bearer, register, runtime
):
    case_id, number = _routed_case(register)
    story = Story(case_id, number)
    second = case_reopened(case_id, number, at=ANSWERED_AGAIN + DAY)
    consume(runtime, story.routed, story.answered, story.reopened, story.routed_again)
    consume(runtime, story.answered_again, second)
    case = _shown(client, bearer, number)
    assert (case["status"], case["resolved_at"]) == ("reopened", None)
    assert _at(case["reopened_at"]) == ANSWERED_AGAIN + DAY
    # The first reopening delivered again late changes nothing.
    consume(runtime, _again(story.reopened))
    case = _shown(client, bearer, number)
    assert (case["status"], _at(case["reopened_at"])) == ("reopened", ANSWERED_AGAIN + DAY)


def test_a_case_answered_on_the_spot_and_reopened_shows_reopened(client, bearer, register, runtime):
    """Routing never had it: reopened it stays, with no responsible unit, until a routing of
    it arrives; a returning visitor with the same issue is a repeat of it."""
    visit = register()
    on_spot = visit["cases"][0]
    case_id, number = on_spot["case_id"], on_spot["case_number"]
    assert _shown(client, bearer, number)["status"] == "resolved_on_spot"
    consume(runtime, case_reopened(case_id, number, at=REOPENED, unit="city-org"))
    case = _shown(client, bearer, number)
    assert (case["status"], case["responsible_unit"]) == ("reopened", None)
    assert _at(case["reopened_at"]) == REOPENED
    again = register(received_at="2026-11-15T20:00:00+08:00")
    assert again["cases"][0]["repeat_of"] == case_id

    consume(
        runtime,
        case_routed(case_id, number, "city-org", routed_at=ROUTED_AGAIN),
    )
    case = _shown(client, bearer, number)
    assert (case["status"], case["responsible_unit"]) == ("routed", "city-org")
    consume(runtime, case_closed(case_id, number, at=CLOSED))
    assert _shown(client, bearer, number)["status"] == "closed"


def test_a_case_answered_on_the_spot_reopened_then_closed_in_any_order(
    client, bearer, register, runtime
):
    on_spot = register()["cases"][0]
    case_id, number = on_spot["case_id"], on_spot["case_number"]
    consume(
        runtime,
        case_closed(case_id, number, at=CLOSED),
        case_reopened(case_id, number, at=REOPENED, unit="city-org"),
    )
    case = _shown(client, bearer, number)
    assert (case["status"], _at(case["reopened_at"])) == ("closed", REOPENED)


# The longest reason supervision emits: the visitor's comment, up to FeedbackIn's 500
# characters, any text (lines too); an empty comment is the default sentence.
@pytest.mark.parametrize(
    "reason",
    ["字" * 500, "不满意\n" + "x" * 496, "the visitor is not satisfied with the resolution"],
)
def test_every_reopening_supervision_can_emit_is_read(client, bearer, register, runtime, reason):
    case_id, number = _routed_case(register)
    consume(
        runtime,
        case_reopened(case_id, number, at=dt.datetime(1900, 1, 1, 8, 0, tzinfo=CST), reason=reason),
        case_reopened(
            case_id,
            number,
            at=dt.datetime(2999, 12, 31, 23, 0, tzinfo=dt.UTC),
            unit="a" * 64,
            reason=reason,
        ),
    )
    assert _shown(client, bearer, number)["status"] == "reopened"


@pytest.mark.parametrize(
    "data",
    [
        {"case_id": "c-1", "occurred_at": "2026-11-26T10:00:00"},  # no offset
        {"case_id": "c-1", "occurred_at": "soon"},
        {"case_id": "", "occurred_at": "2026-11-26T10:00:00+08:00"},
        {"occurred_at": "2026-11-26T10:00:00+08:00"},
    ],
)
def test_a_malformed_reopening_is_poison(runtime, data):
    event = envelope.build(
        service="supervision", routing_key="case.reopened", subject="c-1", data=data
    )
    with pytest.raises(PoisonMessage):
        consume(runtime, event)


def test_the_consumer_hears_reopenings_on_the_broker(client, bearer, register, runtime, amqp_url):
    """intake's queue is bound to case.reopened (the consumer declares it)."""
    case_id, number = _routed_case(register)
    story = Story(case_id, number)
    consume(runtime, story.routed, story.answered)
    with testing.running_consumer(
        service="intake",
        handlers=handlers(runtime),
        unit_of_work=runtime.unit_of_work,
        url=amqp_url,
    ):
        testing.publish(amqp_url, story.reopened)
        testing.eventually(
            lambda: _shown(client, bearer, number)["status"] == "reopened", "the case reopened"
        )
