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
