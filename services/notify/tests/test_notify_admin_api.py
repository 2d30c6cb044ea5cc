"""Rules, templates and deliveries through the API: edits take effect, bad input is refused."""

from __future__ import annotations

import io
import uuid

import pytest
from notify_sample_events import Visit, assignment_resolved, case_routed, supervision_event
from pypdf import PdfReader
from sqlalchemy import select

from notify import models
from notify.app import create_app
from servicekit.auth import mint


@pytest.fixture
def app(database_url):
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    yield app
    app.extensions["runtime"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(unit: str = "city-org", *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles) or ['reception'])}"}


ADMIN = bearer("city-org", "admin")


def registered(deliver, unit: str = "city-org", language: str = "zh") -> Visit:
    visit = Visit(unit=unit)
    deliver(visit.case_registered())
    contact = visit.contact_data()
    contact["language"] = language
    deliver(visit.contact_recorded(data=contact))
    return visit


def receipt_of(runtime, visit: Visit) -> models.Notification:
    with runtime.sessions() as session:
        return session.scalars(
            select(models.Notification).where(
                models.Notification.case_id == visit.case_ids[0],
                models.Notification.kind == models.RECEIPT,
            )
        ).one()


# --- rules -----------------------------------------------------------------------------


def test_rules_are_seeded_with_who_hears_what(client):
    response = client.get("/v1/rules", headers=ADMIN)
    assert response.status_code == 200
    rules = {
        (r["event"], r["kind"], r["recipient_kind"], r["channel"])
        for r in response.json
        if r["enabled"]
    }
    assert ("case.registered", "receipt", "visitor", "sms") in rules
    assert ("case.routed", "routed", "visitor", "sms") in rules
    assert ("assignment.resolved", "answer", "visitor", "letter") in rules
    assert ("assignment.resolved", "satisfaction", "visitor", "sms") in rules
    assert ("case.routed", "assignment", "unit", "webhook") in rules
    assert ("case.overdue", "overdue", "unit", "email") in rules
    assert ("case.escalated", "escalated", "leader", "email") in rules


def test_a_rule_switched_off_stops_that_notification(client, deliver, notifications_of):
    rule = {
        "event": "case.routed",
        "kind": "assignment",
        "recipient_kind": "unit",
        "channel": "webhook",
        "enabled": False,
    }
    assert client.put("/v1/rules", json=rule, headers=ADMIN).status_code == 200
    visit = Visit()

    deliver(case_routed(visit, "lw-guokeng"))

    channels = {(n.kind, n.channel) for n in notifications_of(visit.case_ids[0])}
    assert channels == {("routed", "sms"), ("assignment", "email")}


def test_a_new_rule_adds_a_notification(client, deliver, notifications_of):
    rule = {
        "event": "case.registered",
        "kind": "receipt",
        "recipient_kind": "visitor",
        "channel": "letter",
        "enabled": True,
    }
    assert client.put("/v1/rules", json=rule, headers=ADMIN).status_code == 200
    visit = Visit()

    deliver(visit.case_registered())

    assert {n.channel for n in notifications_of(visit.case_ids[0])} == {"sms", "letter"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "answer"}, "kind"),  # case.registered tells no answer
        ({"recipient_kind": "unit"}, "recipient_kind"),  # a receipt is the visitor's
        ({"channel": "webhook"}, "channel"),  # a visitor has no webhook
        ({"event": "case.nonsense"}, "event"),
        ({"enabled": "maybe"}, "enabled"),
        ({"enabled": 0}, "enabled"),  # the document says boolean (found by the bad-input proof)
        ({"enabled": "false"}, "enabled"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_rules_are_refused_field_by_field(client, body, field):
    rule = {
        "event": "case.registered",
        "kind": "receipt",
        "recipient_kind": "visitor",
        "channel": "sms",
        "enabled": True,
        **body,
    }
    response = client.put("/v1/rules", json=rule, headers=ADMIN)
    assert response.status_code == 422
    assert field in response.json["errors"]["json"]


def test_only_admins_change_rules(client):
    rule = {
        "event": "case.registered",
        "kind": "receipt",
        "recipient_kind": "visitor",
        "channel": "sms",
        "enabled": False,
    }
    assert client.put("/v1/rules", json=rule).status_code == 401
    for role in ("reception", "supervisor", "partner"):
        response = client.put("/v1/rules", json=rule, headers=bearer("city-org", role))
        assert response.status_code == 403


def test_rules_query_refuses_unknown_arguments(client):
    assert client.get("/v1/rules?colour=red", headers=ADMIN).status_code == 422
    assert client.get("/v1/rules?event=nope", headers=ADMIN).status_code == 422


# --- templates -------------------------------------------------------------------------


def test_template_default_is_readable_with_its_fields(client):
    response = client.get("/v1/templates/receipt/sms/zh", headers=ADMIN)
    assert response.status_code == 200
    assert response.json["edited"] is False
    assert "{{ case_number }}" in response.json["body"]
    assert "due_at" in response.json["fields"]


def test_template_with_an_unknown_field_is_refused_with_a_clear_message(client):
    response = client.put(
        "/v1/templates/receipt/sms/zh",
        json={"body": "编号{{ case_number }}，{{ visitor_id_number }}"},
        headers=ADMIN,
    )
    assert response.status_code == 422
    (message,) = response.json["errors"]["json"]["body"]
    assert "unknown field(s) visitor_id_number" in message
    assert "case_number" in message  # it says what may be used


@pytest.mark.parametrize(
    "body",
    [
        {"body": "{{ case_number "},  # does not parse
        {"body": "{{ case_number.__class__.__mro__ }}"},  # the sandbox refuses it
        {"body": ""},
        {"body": "x" * 20_001},
        {"body": "ok", "colour": "red"},
        {"subject": "{{ nope }}", "body": "ok"},
        {},
        # PostgreSQL stores neither: both were 500s (the bad-input proof at full size).
        {"body": "a\u0000b"},
        {"body": "\udb6cx"},
    ],
)
def test_bad_templates_are_refused(client, body):
    response = client.put("/v1/templates/receipt/email/zh", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.json["errors"]["json"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        # Each was a 500: an error on the sample values other than Jinja's own, another
        # template with no loader to find it, Python's stack exhausted by the parser.
        ("{{ case_number + 1 }}", "does not render: TypeError"),
        ("{{ (case_number|length) // 0 }}", "does not render: ZeroDivisionError"),
        ("{{ '%d' % case_number }}", "the operator %"),
        ('{% include "x.html" %}', "other templates"),
        ('{% extends "x" %}', "other templates"),
        ("{% for i in range(200000) %}{% endfor %}x", "loops"),
        ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "nested too deeply"),
    ],
)
def test_a_template_that_fails_its_own_way_is_refused_field_by_field(client, body, says):
    response = client.put("/v1/templates/receipt/sms/zh", json={"body": body}, headers=ADMIN)
    assert response.status_code == 422
    assert says in " ".join(response.json["errors"]["json"]["body"])


@pytest.mark.parametrize(
    "body",
    [
        # Small here; each grows without bound as its numbers do, in the request saving it
        # and then in every delivery worker rendering it.
        "{% for i in range(3) %}{% for j in range(3) %}x{% endfor %}{% endfor %}",
        "{{ case_number * 3 }}",
        "{{ case_number|center(30) }}",
        "{% set twice = case_number ~ case_number %}{{ twice }}",
        "{% macro m(n) %}{{ n }}{% endmacro %}{{ m(1) }}{{ m(2) }}",
        "{{ case_number.ljust(30) }}",
    ],
)
def test_a_template_whose_work_could_grow_without_bound_is_refused(client, body):
    response = client.put("/v1/templates/receipt/sms/zh", json={"body": body}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json["errors"]["json"]["body"][0].startswith("a template may not use")


def test_a_template_stored_before_the_check_is_refused_when_sent_not_run(
    deliver, runtime, make_worker, gateway
):
    """A loop saved before templates were checked fails its deliveries, for an operator to
    see, instead of occupying a sender."""
    with runtime.sessions() as session:
        session.add(
            models.Template(
                kind=models.RECEIPT,
                channel=models.SMS,
                language="zh",
                body="{% for i in range(2) %}{{ case_number }}{% endfor %}",
                updated_at=models.now(),
                updated_by="admin",
            )
        )
        session.commit()
    visit = registered(deliver)

    make_worker().drain()

    assert gateway.requests == []
    with runtime.sessions() as session:
        (receipt,) = session.scalars(
            select(models.Notification).where(models.Notification.case_id == visit.case_ids[0])
        ).all()
    assert receipt.status == models.FAILED
    assert receipt.last_error == "template does not render: TemplateError"


def test_unknown_template_keys_are_404(client):
    for path in ("nope/sms/zh", "receipt/fax/zh", "receipt/sms/fr"):
        response = client.get(f"/v1/templates/{path}", headers=ADMIN)
        assert response.status_code == 404
    assert (
        client.put("/v1/templates/nope/sms/zh", json={"body": "x"}, headers=ADMIN).status_code
        == 404
    )


def test_only_admins_edit_templates(client):
    response = client.put(
        "/v1/templates/receipt/sms/zh", json={"body": "x"}, headers=bearer("city-org", "reception")
    )
    assert response.status_code == 403


def test_an_edited_template_is_sent_and_english_goes_to_english_visitors(
    client, deliver, make_worker, gateway, runtime
):
    edited = client.put(
        "/v1/templates/receipt/sms/en",
        json={"body": "Case {{ case_number }} due {{ due_at | date }}."},
        headers=ADMIN,
    )
    assert edited.status_code == 200
    assert edited.json["edited"] is True
    english = registered(deliver, language="en")
    chinese = registered(deliver, language="zh")

    make_worker().drain()

    texts = {r.json()["text"] for r in gateway.requests}
    assert f"Case {english.case_numbers[0]} due 2027-01-15." in texts
    (zh,) = [t for t in texts if chinese.case_numbers[0] in t]
    assert "已登记" in zh
    # Dropping the edit brings the default back.
    dropped = client.delete("/v1/templates/receipt/sms/en", headers=ADMIN)
    assert dropped.json["edited"] is False


# --- deliveries ------------------------------------------------------------------------


def test_operator_sees_a_failed_delivery_and_retries_it(
    client, deliver, make_worker, gateway, runtime, clock
):
    visit = registered(deliver)
    gateway.default = 503
    worker = make_worker(backoff_base=1, max_attempts=2)
    worker.drain()
    clock.advance(60)
    worker.drain()
    assert receipt_of(runtime, visit).status == models.FAILED

    failed = client.get("/v1/deliveries?status=failed", headers=ADMIN)
    assert failed.status_code == 200
    (row,) = [d for d in failed.json if d["case_number"] == visit.case_numbers[0]]
    assert row["attempts"] == 2
    assert "503" in row["last_error"]
    assert row["recipient"]["phone"] == "139****1234"  # masked

    gateway.default = 200
    retried = client.post(f"/v1/deliveries/{row['id']}/retry", headers=ADMIN)
    assert retried.status_code == 200
    assert retried.json["status"] == models.PENDING
    again = client.post(f"/v1/deliveries/{row['id']}/retry", headers=ADMIN)
    assert again.status_code == 200  # a repeated retry changes nothing
    worker.drain()

    assert receipt_of(runtime, visit).status == models.DELIVERED
    assert len(gateway.accepted) == 1
    assert client.post(f"/v1/deliveries/{row['id']}/retry", headers=ADMIN).status_code == 409


def test_retry_is_for_admins_and_known_ids(client, deliver, runtime):
    visit = registered(deliver)
    receipt = receipt_of(runtime, visit)
    reception = bearer("city-org", "reception")
    assert client.post(f"/v1/deliveries/{receipt.id}/retry").status_code == 401
    assert client.post(f"/v1/deliveries/{receipt.id}/retry", headers=reception).status_code == 403
    assert client.post("/v1/deliveries/not-an-id/retry", headers=ADMIN).status_code == 404
    assert client.post(f"/v1/deliveries/{uuid.uuid4()}/retry", headers=ADMIN).status_code == 404
    # Pending: retrying is a no-op, not an error.
    assert client.post(f"/v1/deliveries/{receipt.id}/retry", headers=ADMIN).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "status=lost",
        "channel=fax",
        "recipient_kind=cat",
        "limit=0",
        "limit=201",
        "offset=-1",
        "case=not-a-number",
        "colour=red",
        "limit=abc",
    ],
)
def test_bad_delivery_queries_are_refused(client, query):
    response = client.get(f"/v1/deliveries?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert response.json["errors"]["query"]


def test_a_reception_desk_sees_only_its_own_deliveries(client, deliver):
    ours = registered(deliver, unit="city-org")
    theirs = registered(deliver, unit="lw-buwen")
    response = client.get("/v1/deliveries", headers=bearer("city-org", "reception"))
    numbers = {d["case_number"] for d in response.json}
    assert ours.case_numbers[0] in numbers
    assert theirs.case_numbers[0] not in numbers
    other = client.get(
        f"/v1/deliveries?case={theirs.case_numbers[0]}", headers=bearer("city-org", "reception")
    )
    assert other.json == []


def test_deliveries_by_id_are_per_unit(client, deliver, runtime):
    theirs = registered(deliver, unit="lw-buwen")
    receipt = receipt_of(runtime, theirs)
    mine = client.get(f"/v1/deliveries/{receipt.id}", headers=bearer("lw-buwen", "reception"))
    assert mine.status_code == 200
    other = client.get(f"/v1/deliveries/{receipt.id}", headers=bearer("city-org", "reception"))
    assert other.status_code == 404
    assert (
        client.get(f"/v1/deliveries/{receipt.id}", headers=bearer("x", "partner")).status_code
        == 403
    )


def test_the_letter_prints_as_html_and_pdf_for_its_desk_only(client, deliver, make_worker, runtime):
    visit = registered(deliver, unit="city-org")
    deliver(case_routed(visit, "lw-guokeng"))
    deliver(assignment_resolved(visit, "lw-guokeng"))
    make_worker().drain()
    with runtime.sessions() as session:
        letter_id = session.scalars(
            select(models.Notification.id).where(
                models.Notification.case_id == visit.case_ids[0],
                models.Notification.channel == models.LETTER,
            )
        ).one()
    desk = bearer("city-org", "reception")

    html = client.get(f"/v1/deliveries/{letter_id}/letter.html", headers=desk)
    pdf = client.get(f"/v1/deliveries/{letter_id}/letter.pdf", headers=desk)

    assert html.status_code == 200
    assert html.mimetype == "text/html"
    assert visit.case_numbers[0] in html.get_data(as_text=True)
    assert "林河清" in html.get_data(as_text=True)  # the letter is addressed to the visitor
    assert pdf.mimetype == "application/pdf"
    text = PdfReader(io.BytesIO(pdf.data)).pages[0].extract_text()
    assert visit.case_numbers[0] in text
    other = bearer("lw-buwen", "reception")
    assert client.get(f"/v1/deliveries/{letter_id}/letter.pdf", headers=other).status_code == 404
    receipt = receipt_of(runtime, visit)
    assert client.get(f"/v1/deliveries/{receipt.id}/letter.pdf", headers=desk).status_code == 404


def test_the_desk_reads_every_notification_of_its_case_with_the_receipt_switched_off(
    client, deliver, make_worker, runtime
):
    """The receiving unit is known from the case's registration, not from its receipt: with
    the receipt's rule off, the answer and its letter were kept under the answering unit,
    hidden from the desk that must print the letter (404)."""
    rule = {
        "event": "case.registered",
        "kind": "receipt",
        "recipient_kind": "visitor",
        "channel": "sms",
        "enabled": False,
    }
    assert client.put("/v1/rules", json=rule, headers=ADMIN).status_code == 200
    visit = registered(deliver, unit="city-org")
    deliver(case_routed(visit, "lw-guokeng"))
    deliver(supervision_event("case.warning", visit, "lw-guokeng"))
    deliver(assignment_resolved(visit, "lw-guokeng"))
    make_worker().drain()
    path = f"/v1/notifications?case={visit.case_numbers[0]}"
    every = client.get(path, headers=ADMIN).get_json()
    desk = bearer("city-org", "reception")

    assert {n["kind"] for n in every} == {
        "routed",
        "assignment",
        "warning",
        "answer",
        "satisfaction",
    }
    assert {n["unit"] for n in every} == {"city-org"}
    assert len(client.get(path, headers=desk).get_json()) == len(every)
    (letter,) = (n for n in every if n["channel"] == "letter")
    assert client.get(f"/v1/deliveries/{letter['id']}/letter.pdf", headers=desk).status_code == 200
    # The answering unit's desk reads none of them, as before.
    partner_desk = bearer("lw-guokeng", "reception")
    assert client.get(path, headers=partner_desk).get_json() == []
    letter_pdf = f"/v1/deliveries/{letter['id']}/letter.pdf"
    assert client.get(letter_pdf, headers=partner_desk).status_code == 404


def test_templates_list_filters_and_refuses_unknown_arguments(client):
    listed = client.get("/v1/templates?kind=receipt&language=en", headers=ADMIN)
    assert listed.status_code == 200
    assert {(t["kind"], t["language"]) for t in listed.json} == {("receipt", "en")}
    assert len(listed.json) == 4  # one per channel
    assert client.get("/v1/templates?colour=red", headers=ADMIN).status_code == 422
    assert client.get("/v1/templates?kind=nope", headers=ADMIN).status_code == 422
