"""The area a supervisor's unit governs, by the levels of the directory (unit tests)."""

from __future__ import annotations

from servicekit.jurisdiction import governed_units, subtree

DIRECTORY = {
    "city": (None, "city"),
    "city-org": ("city", "city"),
    "lw": ("city", "county"),
    "lw-org": ("lw", "county"),
    "lw-org-office": ("lw-org", "county"),
    "lw-buwen": ("lw", "township"),
    "lw-buwen-village": ("lw-buwen", "township"),
    "xc": ("city", "county"),
    "xc-org": ("xc", "county"),
}
LONGWEN = {"lw", "lw-org", "lw-org-office", "lw-buwen", "lw-buwen-village"}


def test_a_city_department_governs_the_whole_city():
    assert governed_units(DIRECTORY, "city-org") is None
    assert governed_units(DIRECTORY, "city") is None


def test_a_countys_government_and_its_departments_govern_that_county():
    assert governed_units(DIRECTORY, "lw") == LONGWEN
    assert governed_units(DIRECTORY, "lw-org") == LONGWEN
    assert governed_units(DIRECTORY, "lw-org-office") == LONGWEN
    assert governed_units(DIRECTORY, "xc-org") == {"xc", "xc-org"}


def test_a_township_governs_its_own_township():
    assert governed_units(DIRECTORY, "lw-buwen") == {"lw-buwen", "lw-buwen-village"}


def test_a_unit_the_directory_does_not_know_governs_itself_only():
    assert governed_units(DIRECTORY, "nowhere") == {"nowhere"}
    assert governed_units({}, "city-org") == {"city-org"}


def test_a_loop_in_the_directory_ends():
    looped = {"a": ("b", "county"), "b": ("a", "county")}
    assert governed_units(looped, "a") == {"a", "b"}
    assert subtree(looped, "a") == {"a", "b"}
