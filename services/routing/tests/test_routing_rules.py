"""Unit tests of the routing rules, confidentiality, due dates and the directory file."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from routing import rules
from routing.directory import (
    MemoryDirectory,
    UnitRecord,
    ancestors,
    check_hierarchy,
    in_subtree,
    load_units,
)
from routing.rules import CaseFacts, Choice, choose_unit

DEFAULT = "city-gov-office"


@pytest.fixture
def shipped() -> MemoryDirectory:
    """The directory shipped with routing, held in memory."""
    return MemoryDirectory(load_units())


def retire(directory: MemoryDirectory, *codes: str) -> MemoryDirectory:
    """Return a copy of the directory with some units inactive."""
    return MemoryDirectory(
        dataclasses.replace(u, active=u.code not in codes) for u in directory.units.values()
    )


def facts(**changes) -> CaseFacts:
    values = {"action": "route", "category": "land", "receiving_unit": "city-org"}
    values.update(changes)
    return CaseFacts(**values)


# -- choosing the unit -------------------------------------------------------------------


def test_a_signed_over_case_goes_to_the_named_unit(shipped):
    choice = choose_unit(
        facts(action="sign_over", sign_over_unit="lw-guokeng"), shipped, default=DEFAULT
    )
    assert choice == Choice("lw-guokeng", rules.SIGNED_OVER, confidential=False)


@pytest.mark.parametrize("named", ["no-such-unit", "lw-buwen"])
def test_a_case_signed_over_to_an_unknown_or_inactive_unit_goes_to_the_default(shipped, named):
    directory = retire(shipped, "lw-buwen")
    choice = choose_unit(
        facts(action="sign_over", sign_over_unit=named), directory, default=DEFAULT
    )
    assert choice == Choice(DEFAULT, rules.SIGN_OVER_UNAVAILABLE)


def test_a_case_left_to_routing_goes_to_the_default_unit(shipped):
    assert choose_unit(facts(), shipped, default=DEFAULT) == Choice(DEFAULT, rules.DEFAULT_RULE)
    assert choose_unit(facts(), shipped, default="city-land").unit == "city-land"


@pytest.mark.parametrize("default", ["no-such-unit", "city-gov-office"])
def test_without_an_active_default_unit_nothing_is_chosen(shipped, default):
    directory = retire(shipped, "city-gov-office")
    with pytest.raises(rules.NoResponsibleUnitError):
        choose_unit(facts(), directory, default=default)


def test_a_case_resolved_on_the_spot_is_not_routed(shipped):
    with pytest.raises(ValueError):
        choose_unit(facts(action="resolved_on_spot"), shipped, default=DEFAULT)


# -- confidentiality -------------------------------------------------------------------------


def test_a_case_is_never_signed_over_to_the_unit_it_accuses(shipped):
    choice = choose_unit(
        facts(action="sign_over", sign_over_unit="lw-buwen", accused_unit="lw-buwen"),
        shipped,
        default=DEFAULT,
    )
    assert choice == Choice("lw", rules.WITHHELD_TO_SUPERIOR, confidential=True)


def test_a_case_is_never_handed_to_a_sub_unit_of_the_accused(shipped):
    # 郭坑镇 sits under 龙文区: a complaint about the district must not land there.
    choice = choose_unit(
        facts(action="sign_over", sign_over_unit="lw-guokeng", accused_unit="lw"),
        shipped,
        default=DEFAULT,
    )
    assert choice == Choice("city", rules.WITHHELD_TO_SUPERIOR, confidential=True)


def test_the_default_unit_is_not_used_when_it_is_accused(shipped):
    choice = choose_unit(facts(accused_unit=DEFAULT), shipped, default=DEFAULT)
    assert choice == Choice("city", rules.WITHHELD_TO_SUPERIOR, confidential=True)


def test_an_inactive_superior_is_skipped_for_the_next_one_up(shipped):
    directory = retire(shipped, "lw")
    choice = choose_unit(
        facts(action="sign_over", sign_over_unit="lw-org", accused_unit="lw-org"),
        directory,
        default=DEFAULT,
    )
    assert choice == Choice("city", rules.WITHHELD_TO_SUPERIOR, confidential=True)


def test_a_complaint_about_the_city_itself_goes_to_the_discipline_commission(shipped):
    choice = choose_unit(facts(accused_unit="city"), shipped, default=DEFAULT)
    assert choice == Choice("city-discipline", rules.WITHHELD_TO_DISCIPLINE, confidential=True)


def test_a_complaint_about_the_discipline_commission_goes_to_its_superior(shipped):
    choice = choose_unit(
        facts(action="sign_over", sign_over_unit="city-discipline", accused_unit="city-discipline"),
        shipped,
        default=DEFAULT,
    )
    assert choice == Choice("city", rules.WITHHELD_TO_SUPERIOR, confidential=True)


def test_a_complaint_about_the_discipline_commission_without_superior_is_not_routed(shipped):
    directory = retire(shipped, "city")
    with pytest.raises(rules.NoResponsibleUnitError):
        choose_unit(
            facts(
                accused_unit="city-discipline", action="sign_over", sign_over_unit="city-discipline"
            ),
            directory,
            default=DEFAULT,
        )


def test_a_unit_outside_the_accused_subtree_keeps_the_case_but_it_turns_confidential(shipped):
    choice = choose_unit(
        facts(action="sign_over", sign_over_unit="lw-guokeng", accused_unit="lw-buwen"),
        shipped,
        default=DEFAULT,
    )
    assert choice == Choice("lw-guokeng", rules.SIGNED_OVER, confidential=True)


def test_accusing_a_person_only_makes_the_case_confidential(shipped):
    choice = choose_unit(facts(accused_person="某科长"), shipped, default=DEFAULT)
    assert choice == Choice(DEFAULT, rules.DEFAULT_RULE, confidential=True)


def test_a_case_accusing_no_one_is_not_confidential(shipped):
    assert not choose_unit(facts(), shipped, default=DEFAULT).confidential


def test_an_unknown_accused_unit_can_only_exclude_itself(shipped):
    choice = choose_unit(facts(accused_unit="some-factory"), shipped, default=DEFAULT)
    assert choice == Choice(DEFAULT, rules.DEFAULT_RULE, confidential=True)


def test_no_case_ever_reaches_the_accused_unit_or_its_subtree(shipped):
    """Every (accused unit, signed-over unit, default) triple of the shipped directory."""
    codes = sorted(shipped.units)
    checked = 0
    for accused in codes:
        if accused == "city":
            continue  # everything is in the city's subtree: see the discipline test above
        for named in codes:
            for default in (DEFAULT, named):
                case = facts(action="sign_over", sign_over_unit=named, accused_unit=accused)
                choice = choose_unit(case, shipped, default=default)
                assert not in_subtree(shipped, choice.unit, accused), (accused, named, choice)
                assert choice.confidential
                checked += 1
    assert checked == (len(codes) - 1) * len(codes) * 2


# -- due dates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("routed_at", "due_at"),
    [
        ("2026-12-15T09:05:00+00:00", "2027-01-15T09:05:00+00:00"),
        # A month without the day: the end of the shorter month.
        ("2027-01-31T02:00:00+00:00", "2027-02-28T02:00:00+00:00"),
        ("2028-01-31T02:00:00+00:00", "2028-02-29T02:00:00+00:00"),
        ("2026-03-31T23:59:59+00:00", "2026-04-30T23:59:59+00:00"),
        # Any offset in, UTC out; the month is the programme's calendar (Asia/Shanghai).
        ("2026-12-15T17:05:00+08:00", "2027-01-15T09:05:00+00:00"),
        ("2026-12-01T02:00:00+08:00", "2026-12-31T18:00:00+00:00"),
    ],
)
def test_an_assignment_is_due_one_calendar_month_after_routing(routed_at, due_at):
    due = rules.due_date(dt.datetime.fromisoformat(routed_at))
    assert due == dt.datetime.fromisoformat(due_at)
    assert due.utcoffset() == dt.timedelta(0)


def test_a_naive_routing_time_is_refused():
    with pytest.raises(ValueError):
        rules.due_date(dt.datetime(2026, 12, 15, 9, 5))


# -- the directory -----------------------------------------------------------------------------


def test_the_shipped_directory_names_the_units_of_the_source(shipped):
    # The source's 448 linked units: the named ones and a generated remainder.
    assert len(shipped.units) == 448
    levels = [u.level for u in shipped.units.values()]
    assert (levels.count("city"), levels.count("county"), levels.count("township")) == (
        50,
        282,
        116,
    )
    named = json.loads((Path(__file__).parent / "data" / "units_named.json").read_text("utf-8"))
    for unit in named["units"]:
        assert shipped.get(unit["code"]) == UnitRecord(**unit), unit["code"]
    check_hierarchy(list(shipped.units.values()))
    assert shipped.get("city").parent is None
    for code in ("city-org", "city-discipline", "city-gov-office", "xc", "lw", "ct"):
        assert shipped.get(code).parent == "city"
    assert [u.code for u in ancestors(shipped, "lw-buwen")] == ["lw", "city"]
    assert shipped.get("lw-org").level == "county" and shipped.get("lw-org").parent == "lw"
    assert shipped.get("ds-xipu").area == "ds" and shipped.get("city-police").area == "city"
    assert all(u.active for u in shipped.units.values())


def test_subtrees_follow_the_parents(shipped):
    assert in_subtree(shipped, "lw-guokeng", "lw")
    assert in_subtree(shipped, "lw", "lw")
    assert in_subtree(shipped, "lw-org", "city")
    assert not in_subtree(shipped, "lw", "lw-guokeng")
    assert not in_subtree(shipped, "xc-zhishan", "lw")


def unit(code, level, parent, area, **kw) -> UnitRecord:
    return UnitRecord(code=code, name=code, level=level, parent=parent, area=area, **kw)


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        ([unit("lw", "county", "nowhere", "lw")], "parent 'nowhere' is no unit"),
        ([unit("lw", "county", None, "lw")], "only a city-level unit may have no parent"),
        ([unit("c", "city", None, "c")], "the area of a root unit is 'city'"),
        ([unit("c", "city", None, "city"), unit("t", "township", "c", "city")], "cannot sit under"),
        (
            [unit("c", "city", None, "city"), unit("lw", "county", "c", "city")],
            "area is 'lw' by its parents",
        ),
        (
            [
                unit("c", "city", None, "city"),
                unit("a", "county", "b", "a"),
                unit("b", "county", "a", "a"),
            ],
            "form a loop",
        ),
    ],
)
def test_a_directory_with_broken_parents_is_refused(records, problem):
    with pytest.raises(ValueError, match=problem):
        check_hierarchy(records)


def test_a_directory_file_is_checked_field_by_field(tmp_path):
    path = tmp_path / "units.json"
    path.write_text(
        json.dumps(
            {
                "units": [
                    {"code": "Bad Code", "name": "x", "level": "city", "area": "city"},
                    {"code": "c", "name": "", "level": "province", "area": "city", "extra": 1},
                ]
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(ValueError) as info:
        load_units(path)
    message = str(info.value)
    for part in ("code", "name", "level", "extra"):
        assert part in message


def test_a_unit_listed_twice_is_refused(tmp_path):
    path = tmp_path / "units.json"
    record = {"code": "city", "name": "漳州市", "level": "city", "area": "city"}
    path.write_text(json.dumps({"units": [record, record]}), encoding="utf-8")
    with pytest.raises(ValueError, match="units listed twice: city"):
        load_units(path)
