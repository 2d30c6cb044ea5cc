"""One visit flows through all four services over the real RabbitMQ."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from cloudevents.core.bindings import rabbitmq
from dateutil.relativedelta import relativedelta

from eventbus import testing

pytestmark = pytest.mark.e2e

VISIT = {
    "channel": "night_talk",
    "received_at": "2026-11-15T17:05:00+08:00",
    "leader": "黄宝山",
    "headcount": 5,
    "visitor": {
        "name": "林河清",
        "phone": "13905961234",
        "id_number": "350602195001011234",
        "address": "郭坑镇",
    },
    "issues": [
        {
            "category": "wage_arrears",
            "summary": "退休教师工资拖欠",
            "location": "郭坑镇中学",
            "disposition": {"action": "resolved_on_spot", "answer": "镇里当场同意补发"},
        },
        {
            "category": "medical_reimbursement",
            "summary": "医药费无法报销",
            "disposition": {"action": "sign_over", "unit": "lw-guokeng"},
        },
        {
            "category": "demolition_compensation",
            "summary": "拆迁补偿金未到位",
            "accused": {"unit": "lw-buwen"},
            "disposition": {"action": "route"},
        },
    ],
}


def test_a_visit_reaches_partner_supervision_and_notify(system):
    r = requests.post(
        system.url("intake", "/v1/visits"),
        json=VISIT,
        headers={**system.token(), "Idempotency-Key": "e2e-walking-skeleton"},
    )
    assert r.status_code == 201, r.text
    signed_over = r.json()["cases"][1]
    case_id, case_number = signed_over["case_id"], signed_over["case_number"]

    # The partner reads its queue and decodes the message with the official SDK.
    messages = testing.get_messages(system.amqp_url, "partner.lw-guokeng", count=1, timeout=30)
    assert len(messages) == 1
    _, props, body = messages[0]
    event = rabbitmq.from_binary_event(
        rabbitmq.RabbitMQMessage(headers=props.headers, content_type=props.content_type, body=body)
    )
    assert event.get_type() == "nighttalk.case.routed.v1"
    assert event.get_subject() == case_id
    assert props.message_id == event.get_id()
    assert props.delivery_mode == 2
    data = event.get_data()
    assert data["case_number"] == case_number and data["unit"] == "lw-guokeng"
    routed_at = dt.datetime.fromisoformat(data["routed_at"])
    assert dt.datetime.fromisoformat(data["due_at"]) == routed_at + relativedelta(months=1)
    assert "林河清" not in body.decode() and "13905961234" not in body.decode()

    admin = system.token("city-org", "admin")

    def supervised():
        got = requests.get(system.url("supervision", f"/v1/cases/{case_number}"), headers=admin)
        return got.json() if got.status_code == 200 and got.json().get("due_at") else None

    case = testing.eventually(supervised)
    assert case["responsible_unit"] == "lw-guokeng"
    assert dt.datetime.fromisoformat(case["due_at"]) == routed_at + relativedelta(months=1)
    by_id = requests.get(system.url("supervision", f"/v1/cases/{case_id}"), headers=admin)
    assert by_id.status_code == 200 and by_id.json()["case_number"] == case_number

    def receipts():
        got = requests.get(
            system.url("notify", "/v1/notifications"), params={"case": case_number}, headers=admin
        )
        assert got.status_code == 200, got.text
        items = got.json()
        items = items["items"] if isinstance(items, dict) else items
        return [n for n in items if n["kind"] == "receipt"]

    receipt = testing.eventually(receipts)
    assert len(receipt) == 1
    assert "13905961234" not in str(receipt)


def test_a_case_accusing_a_unit_never_reaches_it(system):
    body = {
        **VISIT,
        "issues": [
            {
                "category": "cadre_conduct",
                "summary": "镇干部作风问题",
                "accused": {"unit": "lw-buwen", "person": "某干部"},
                "disposition": {"action": "sign_over", "unit": "lw-buwen"},
            }
        ],
    }
    r = requests.post(system.url("intake", "/v1/visits"), json=body, headers=system.token())
    assert r.status_code == 201, r.text
    case_number = r.json()["cases"][0]["case_number"]
    admin = system.token("city-org", "admin")

    def routed():
        got = requests.get(system.url("supervision", f"/v1/cases/{case_number}"), headers=admin)
        return got.json() if got.status_code == 200 and got.json().get("responsible_unit") else None

    case = testing.eventually(routed)
    assert case["responsible_unit"] not in ("lw-buwen",)
    assert testing.queue_depth(system.amqp_url, "partner.lw-buwen") == 0
