"""A complaint about the city itself: every unit is the city's, so only the discipline
commission (纪委) may take it — when routed, when named by an arbitration, and as its
supervising unit; a return by the commission cannot move it and goes to arbitration."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from routing import models, rules
from routing.directory import MemoryDirectory, load_units
from routing.rules import AccusedUnitError, CaseFacts, Choice
from servicekit.auth import mint

DEFAULT = "city-gov-office"
DISCIPLINE = rules.DISCIPLINE_UNIT


def bearer(unit: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(unit, list(roles), sub=f'{unit}:clerk')}"}


@pytest.fixture(scope="module")
def shipped() -> MemoryDirectory:
    return MemoryDirectory(load_units())


def about(accused: str) -> CaseFacts:
    return CaseFacts(rules.ROUTE, "land", "city-org", accused_unit=accused)


def test_the_discipline_commission_may_be_named_for_a_complaint_about_the_city(shipped):
    named = rules.apply_confidentiality(
        Choice(DISCIPLINE, "arbitration"), about("city"), shipped, may_redirect=False
    )
    assert named.unit == DISCIPLINE and named.confidential
    # Any other unit is the city's, the procuratorate included.
    for unit in ("city-procuratorate", "city-police", "lw", DEFAULT, "city"):
        with pytest.raises(AccusedUnitError):
            rules.apply_confidentiality(
                Choice(unit, "arbitration"), about("city"), shipped, may_redirect=False
            )


@pytest.mark.parametrize("accused", [DISCIPLINE, "city-gov-office", "lw"])
def test_the_commission_is_no_exception_when_the_accused_has_a_superior(shipped, accused):
    # A complaint about the commission itself never goes to it; one about another unit
    # below the city goes to the city (the commission is then not in the accused subtree).
    facts = about(accused)
    if accused == DISCIPLINE:
        with pytest.raises(AccusedUnitError):
            rules.apply_confidentiality(Choice(DISCIPLINE, "t"), facts, shipped, may_redirect=False)
        assert rules.apply_confidentiality(Choice(DISCIPLINE, "t"), facts, shipped).unit == "city"
    else:
        assert (
            rules.apply_confidentiality(
                Choice(DISCIPLINE, "t"), facts, shipped, may_redirect=False
            ).unit
            == DISCIPLINE
        )


def test_the_commission_supervises_a_complaint_about_the_city(shipped):
    assert rules.supervising_unit(shipped, DISCIPLINE, default=DEFAULT, accused="city") == (
        DISCIPLINE
    )


@pytest.mark.parametrize(
    ("holder", "accused", "target"),
    [
        # The commission returning a complaint about the city: no other unit may take it.
        (DISCIPLINE, "city", None),
        # The city, holding a complaint about its government office (the office's
        # superior), would get it back: arbitration.
        ("city", "city-gov-office", None),
        # Otherwise a return goes to the supervising unit, as ever.
        ("lw", "lw-org", DEFAULT),
        ("lw-guokeng", None, "lw"),
        ("city-police", "city-gov-office", "city"),
    ],
)
def test_a_return_that_would_come_straight_back_goes_to_arbitration(
    shipped, holder, accused, target
):
    facts = about(accused) if accused else CaseFacts(rules.ROUTE, "land", "city-org")
    assert rules.return_target(shipped, facts, holder, default=DEFAULT) == target


def test_an_arbitration_of_a_complaint_about_the_city_can_be_decided(
    client, runtime, deliver, case_data, case_registered, monkeypatch
):
    monkeypatch.setenv("ROUTING_MAX_MOVES", "0")
    data = case_data(accused={"unit": "city", "person": None}, disposition={"action": "route"})
    deliver(case_registered(data))
    with runtime.sessions() as session:
        complaint = session.scalars(
            select(models.Assignment).where(models.Assignment.case_id == data["case_id"])
        ).one()
        assert complaint.unit == DISCIPLINE
        assignment_id = complaint.id
    partner = bearer(DISCIPLINE, "partner")
    # The commission may hand it to no other unit: all are the city's.
    refused = client.post(
        f"/v1/assignments/{assignment_id}/transfer",
        headers=partner,
        json={"to_unit": "city-procuratorate", "reason": "涉嫌犯罪"},
    )
    assert refused.status_code == 409 and "accuses 'city'" in refused.get_json()["message"]
    moved = client.post(
        f"/v1/assignments/{assignment_id}/return", headers=partner, json={"reason": "请上级安排"}
    )
    assert moved.status_code == 200 and moved.get_json()["status"] == "arbitration"

    admin = bearer("city-org", "admin")
    other = client.post(
        f"/v1/assignments/{assignment_id}/arbitration",
        headers=admin,
        json={"unit": "city-police", "reason": "x"},
    )
    assert other.status_code == 409
    decided = client.post(
        f"/v1/assignments/{assignment_id}/arbitration",
        headers=admin,
        json={"unit": DISCIPLINE, "reason": "纪委受理"},
    )
    assert decided.status_code == 200, decided.get_json()
    with runtime.sessions() as session:
        current = session.scalars(
            select(models.Assignment).where(
                models.Assignment.case_id == data["case_id"],
                models.Assignment.superseded_by.is_(None),
            )
        ).one()
        assert (current.unit, current.status, current.moves) == (DISCIPLINE, "assigned", 0)
        assert current.confidential
