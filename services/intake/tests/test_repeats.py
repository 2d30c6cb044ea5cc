"""Repeat visits: a returning visitor raising a category still open is linked and counted."""

from __future__ import annotations

import copy

import pytest

ROUTE = {"action": "route"}


@pytest.fixture
def wage_visit(visit_body):
    """A daily visit with one wage-arrears issue, left for routing."""
    body = copy.deepcopy(visit_body)
    body["channel"] = "daily"
    body["received_at"] = "2026-11-20T10:05:00+08:00"
    body["issues"] = [
        {"category": "wage_arrears", "summary": "退休教师工资拖欠", "disposition": dict(ROUTE)}
    ]
    return body


def _post(client, bearer, body):
    r = client.post("/v1/visits", json=body, headers=bearer())
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _case(client, bearer, ref):
    r = client.get(f"/v1/cases/{ref}", headers=bearer())
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _later(body, **visitor):
    again = copy.deepcopy(body)
    again["received_at"] = "2026-11-21T10:05:00+08:00"
    again["visitor"].update(visitor)
    return again


def test_a_returning_visitor_answered_on_the_spot_is_a_repeat(client, bearer, wage_visit):
    earlier = _post(client, bearer, wage_visit)["cases"][0]
    again = _later(wage_visit)
    again["issues"][0]["disposition"] = {"action": "resolved_on_spot", "answer": "已当场答复"}
    later = _post(client, bearer, again)["cases"][0]
    assert later["status"] == "resolved_on_spot"
    assert later["repeat_of"] == earlier["case_id"]
    assert _case(client, bearer, earlier["case_id"])["repeat_count"] == 1


def test_naming_a_case_and_raising_it_again_is_one_later_visit(client, bearer, wage_visit):
    earlier = _post(client, bearer, wage_visit)["cases"][0]
    again = _later(wage_visit)
    again["follow_ups"] = [earlier["case_number"]]  # named by the visitor, and raised again
    later = _post(client, bearer, again)["cases"][0]
    assert later["repeat_of"] == earlier["case_id"]
    assert _case(client, bearer, earlier["case_id"])["repeat_count"] == 1
