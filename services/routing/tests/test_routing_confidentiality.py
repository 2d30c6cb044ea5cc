"""Property: over random directories, rules and accusations, no path that assigns a case
ever hands it to the accused unit or one of its sub-units."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing import rules
from routing.directory import MemoryDirectory, UnitRecord, in_subtree
from routing.rules import AccusedUnitError, CaseFacts, Choice, MemoryRules, RuleEntry

CATEGORIES = ["land", "policing", "wage_arrears"]


@st.composite
def directories(draw) -> MemoryDirectory:
    """A random three-tier directory: the city, its departments, counties and their units."""
    units = [UnitRecord("city", "市", "city", None, "city")]
    depts = ["city-gov-office", "city-discipline"] + [
        f"city-d{i}" for i in range(draw(st.integers(0, 3)))
    ]
    for code in depts:
        units.append(UnitRecord(code, code, "city", "city", "city", active=draw(st.booleans())))
    for c in range(draw(st.integers(1, 3))):
        county = f"c{c}"
        units.append(
            UnitRecord(county, county, "county", "city", county, active=draw(st.booleans()))
        )
        for d in range(draw(st.integers(0, 2))):
            dept = f"{county}-d{d}"
            units.append(
                UnitRecord(dept, dept, "county", county, county, active=draw(st.booleans()))
            )
            # A county department may have its own sub-units (e.g. police stations).
            if draw(st.booleans()):
                units.append(UnitRecord(f"{dept}-x", "x", "county", dept, county))
        for t in range(draw(st.integers(0, 3))):
            town = f"{county}-t{t}"
            units.append(
                UnitRecord(town, town, "township", county, county, active=draw(st.booleans()))
            )
    return MemoryDirectory(units)


@st.composite
def scenarios(draw):
    directory = draw(directories())
    codes = sorted(directory.units)
    areas = sorted({u.area for u in directory.units.values()}) + ["*"]
    book = MemoryRules(
        RuleEntry(
            draw(st.sampled_from(CATEGORIES + ["*"])),
            draw(st.sampled_from(areas)),
            draw(st.sampled_from(codes)),
        )
        for _ in range(draw(st.integers(0, 6)))
    )
    accused = draw(st.sampled_from(codes + ["unknown-unit"]))
    facts = CaseFacts(
        action=draw(st.sampled_from([rules.SIGN_OVER, rules.ROUTE])),
        category=draw(st.sampled_from(CATEGORIES)),
        receiving_unit=draw(st.sampled_from(codes)),
        sign_over_unit=draw(st.sampled_from(codes)),
        accused_unit=accused,
        accused_person=draw(st.none() | st.just("某科长")),
    )
    targets = draw(st.lists(st.sampled_from(codes), min_size=1, max_size=5))
    return directory, book, facts, targets


def never_in_accused_subtree(directory, facts, unit: str) -> None:
    if facts.accused_unit == "city":
        # A complaint about the city itself: every unit is in its subtree, and the
        # discipline commission (纪委) is the organ the law names for it.
        assert unit == rules.DISCIPLINE_UNIT
        return
    assert not in_subtree(directory, unit, facts.accused_unit), (unit, facts.accused_unit)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_no_path_ever_assigns_a_case_to_the_accused_or_its_subtree(scenario):
    directory, book, facts, targets = scenario
    # Sign over and the rules (with the default unit behind them).
    try:
        choice = rules.choose_unit(facts, directory, default="city-gov-office", rules=book)
    except rules.NoResponsibleUnitError:
        choice = None
    if choice is not None:
        never_in_accused_subtree(directory, facts, choice.unit)
        assert choice.confidential
        holder = choice.unit
    else:
        holder = facts.receiving_unit
    # Return: the case goes to the holder's supervising unit, redirected if need be.
    supervising = rules.supervising_unit(directory, holder, default="city-gov-office")
    try:
        returned = rules.apply_confidentiality(Choice(supervising, "return"), facts, directory)
        never_in_accused_subtree(directory, facts, returned.unit)
    except rules.NoResponsibleUnitError:
        pass
    # Reopening and a meeting's reassignment redirect; transfer and arbitration refuse.
    for target in targets:
        try:
            redirected = rules.apply_confidentiality(Choice(target, "reopened"), facts, directory)
            never_in_accused_subtree(directory, facts, redirected.unit)
        except rules.NoResponsibleUnitError:
            pass
        try:
            explicit = rules.apply_confidentiality(
                Choice(target, "transfer"), facts, directory, may_redirect=False
            )
        except AccusedUnitError:
            assert in_subtree(directory, target, facts.accused_unit)
        else:
            assert explicit.unit == target
            never_in_accused_subtree(directory, facts, explicit.unit)


def test_only_hand_over_creates_assignments():
    # The confidentiality rule is enforced in _hand_over: no other code may make one.
    package = Path(rules.__file__).parent
    makers = []
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "Assignment"
                ):
                    makers.append(f"{path.name}:{function.name}")
    assert makers == ["usecases.py:_hand_over"]


@pytest.mark.parametrize("accused", ["c0", "c0-t0"])
def test_an_explicit_target_in_the_accused_subtree_is_refused(accused):
    directory = MemoryDirectory(
        [
            UnitRecord("city", "市", "city", None, "city"),
            UnitRecord("c0", "c0", "county", "city", "c0"),
            UnitRecord("c0-t0", "t", "township", "c0", "c0"),
        ]
    )
    facts = CaseFacts(rules.ROUTE, "land", "city", accused_unit=accused)
    with pytest.raises(AccusedUnitError):
        rules.apply_confidentiality(
            Choice("c0-t0", "transfer"), facts, directory, may_redirect=False
        )


# -- the same property through the use cases, on the database ---------------------------------

NAMED = [
    "city-org",
    "city-gov-office",
    "city-land",
    "city-police",
    "lw",
    "lw-org",
    "lw-buwen",
    "lw-guokeng",
    "xc",
    "xc-org",
    "xc-zhishan",
    "ds",
    "ds-xipu",
]

steps = st.lists(
    st.tuples(
        st.sampled_from(["transfer", "return", "arbitrate", "reopen", "co"]), st.sampled_from(NAMED)
    ),
    max_size=6,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    accused=st.sampled_from(NAMED),
    sign_over=st.none() | st.sampled_from(NAMED),
    rule_units=st.lists(st.sampled_from(NAMED), max_size=3),
    receiving=st.sampled_from(NAMED),
    script=steps,
)
def test_no_use_case_ever_assigns_to_the_accused(
    runtime, case_data, accused, sign_over, rule_units, receiving, script
):
    import datetime as dt
    import uuid

    from sqlalchemy import delete, select

    from routing import models, usecases
    from routing.directory import SessionDirectory
    from servicekit.auth import Principal

    with runtime.sessions() as session:
        session.execute(delete(models.Rule))
        now = dt.datetime.now(dt.UTC)
        for unit, (category, area) in zip(
            rule_units, [("land", "*"), ("*", "lw"), ("*", "*")], strict=False
        ):
            session.add(
                models.Rule(category=category, area=area, unit=unit, created_at=now, updated_at=now)
            )
        session.commit()
    disposition = {"action": "sign_over", "unit": sign_over} if sign_over else {"action": "route"}
    data = case_data(
        case_id=str(uuid.uuid4()),
        unit=receiving,
        category="land",
        accused={"unit": accused, "person": None},
        disposition=disposition,
    )
    with runtime.unit_of_work() as uow:
        usecases.route_case(uow, data, default_unit="city-gov-office")
        uow.commit()
    for action, target in script:
        with runtime.unit_of_work() as uow:
            current = usecases.lead_assignment(uow.session, data["case_id"])
            partner = Principal(sub="p", unit=current.unit, roles=frozenset({"partner"}))
            admin = Principal(sub="a", unit="city-org", roles=frozenset({"admin"}))
            try:
                if action == "transfer":
                    usecases.transfer(
                        uow, current.id, partner, target, "r", default_unit="city-gov-office"
                    )
                elif action == "return":
                    usecases.return_(uow, current.id, partner, "r", default_unit="city-gov-office")
                elif action == "co":
                    usecases.add_co_handler(uow, current.id, partner, target, "r")
                elif action == "arbitrate":
                    usecases.arbitrate(uow, current.id, admin, target, "r")
                else:
                    usecases.reopen(
                        uow,
                        {
                            "case_id": data["case_id"],
                            "unit": target,
                            "reason": "r",
                            "occurred_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
                        },
                        default_unit="city-gov-office",
                    )
                uow.commit()
            except (usecases.ActionError, rules.NoResponsibleUnitError):
                pass  # refused (409/422) or nowhere to go: nothing was assigned
    with runtime.sessions() as session:
        units = session.scalars(
            select(models.Assignment.unit).where(models.Assignment.case_id == data["case_id"])
        ).all()
        directory = SessionDirectory(session)
        for unit in units:
            assert not in_subtree(directory, unit, accused), (unit, accused, script)
