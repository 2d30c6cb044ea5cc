"""The programme's promise: an answer within one calendar month, counted in local time."""

from __future__ import annotations

import copy
import datetime as real_dt
import types

import pytest

from intake import usecases

CST = real_dt.timezone(real_dt.timedelta(hours=8))


@pytest.mark.parametrize(
    ("registered", "due"),
    [
        # 07:00 on 1 March in Zhangzhou is still 28 February in UTC.
        (real_dt.datetime(2027, 3, 1, 7, 0, tzinfo=CST), real_dt.datetime(2027, 4, 1, 7, 0)),
        (real_dt.datetime(2027, 1, 31, 20, 0, tzinfo=CST), real_dt.datetime(2027, 2, 28, 20, 0)),
    ],
)
def test_a_case_is_due_one_calendar_month_later_on_the_local_calendar(
    monkeypatch, client, bearer, visit_body, registered, due
):
    class Frozen(real_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return registered.astimezone(tz)

    # Only the registration's clock: the body's validation reads the real one.
    clock = types.SimpleNamespace(
        **{k: getattr(real_dt, k) for k in dir(real_dt) if not k.startswith("__")}
    )
    clock.datetime = Frozen
    monkeypatch.setattr(usecases, "dt", clock)
    body = copy.deepcopy(visit_body)
    body["channel"] = "daily"
    body["issues"] = body["issues"][2:]
    r = client.post("/v1/visits", json=body, headers=bearer())
    assert r.status_code == 201, r.get_json()
    shown = real_dt.datetime.fromisoformat(r.get_json()["cases"][0]["due_at"])
    assert shown.astimezone(CST).replace(tzinfo=None) == due
