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


def test_a_visitor_known_by_phone_then_giving_the_id_number_is_recognised(
    client, bearer, wage_visit
):
    phone_only = copy.deepcopy(wage_visit)
    del phone_only["visitor"]["id_number"]
    earlier = _post(client, bearer, phone_only)["cases"][0]
    later = _post(client, bearer, _later(wage_visit))["cases"][0]  # phone and ID number
    assert later["repeat_of"] == earlier["case_id"]
    # Known since by both: the ID number alone finds the case as well.
    id_only = _later(wage_visit)
    del id_only["visitor"]["phone"]
    again = _post(client, bearer, id_only)["cases"][0]
    assert again["repeat_of"] == later["case_id"]


@pytest.mark.parametrize("written", ["+8613905961234", "008613905961234", "8613905961234"])
def test_a_phone_written_with_the_country_code_is_the_same_phone(
    client, bearer, wage_visit, written
):
    body = copy.deepcopy(wage_visit)
    del body["visitor"]["id_number"]
    earlier = _post(client, bearer, body)["cases"][0]
    later = _post(client, bearer, _later(body, phone=written))["cases"][0]
    assert later["repeat_of"] == earlier["case_id"]


def test_two_visitors_sharing_a_phone_with_different_id_numbers_are_not_linked(
    client, bearer, wage_visit
):
    """A family's one phone: the ID numbers say these are two people."""
    _post(client, bearer, wage_visit)
    other = _post(client, bearer, _later(wage_visit, id_number="350602197203154321"))
    assert other["cases"][0]["repeat_of"] is None
