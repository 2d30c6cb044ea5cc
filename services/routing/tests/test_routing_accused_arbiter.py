"""The supervising unit of a complaint — which arbitrates it and decides its extensions —
is never the unit it accuses nor one below it."""

from __future__ import annotations

import pytest

from routing import rules
from routing.directory import MemoryDirectory, load_units

DEFAULT = "city-gov-office"


@pytest.fixture(scope="module")
def shipped() -> MemoryDirectory:
    return MemoryDirectory(load_units())


@pytest.mark.parametrize(
    ("holder", "accused", "supervising"),
    [
        # A complaint about the city government office, handled by the police: the
        # office is every city department's supervisor, so the city itself decides.
        ("city-police", "city-gov-office", "city"),
        # A complaint about a county government, handed over to its superior (the city):
        # the city answers to the city government office, which is not accused.
        ("city", "lw", DEFAULT),
        # A complaint about a county department, at the county government: unchanged.
        ("lw", "lw-org", DEFAULT),
        # A complaint about a county government, transferred to another county's town.
        ("xc-zhishan", "lw", "xc"),
    ],
)
def test_the_supervising_unit_of_a_complaint_is_outside_the_accused_subtree(
    shipped, holder, accused, supervising
):
    assert rules.supervising_unit(shipped, holder, default=DEFAULT, accused=accused) == (
        supervising
    )


@pytest.mark.parametrize(
    ("holder", "supervising"),
    [("lw-buwen", "lw"), ("city-police", DEFAULT), ("lw", DEFAULT), (DEFAULT, "city")],
)
def test_a_case_accusing_no_unit_keeps_the_usual_supervising_unit(shipped, holder, supervising):
    assert rules.supervising_unit(shipped, holder, default=DEFAULT) == supervising
    assert rules.supervising_unit(shipped, holder, default=DEFAULT, accused=None) == supervising
