"""A supervisor's jurisdiction: the area its unit governs, read from a copy of the directory.

DESIGN.md: "a city department the whole city, a county's departments that county". So:
a city-level unit governs the whole city; a county-level unit (a county's government or
one of its departments) the county it belongs to, that is the topmost county-level unit
above it and every unit below that; a township its own township and what lies below. A
unit the directory does not know governs itself only.

Each service keeps its own copy of routing's directory (``unit.changed``); it hands this
module that copy as a mapping of unit code to (parent, level).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

CITY, COUNTY = "city", "county"

Directory = Mapping[str, tuple[str | None, str | None]]


def read_directory(session: Session, unit_model) -> dict[str, tuple[str | None, str | None]]:
    """Return a service's copy of the directory (a model with ``code``, ``parent`` and
    ``level``) as unit code → (parent, level)."""
    rows = session.execute(select(unit_model.code, unit_model.parent, unit_model.level))
    return {code: (parent, level) for code, parent, level in rows}


def governed_units(directory: Directory, unit: str) -> set[str] | None:
    """Return the units a supervisor of ``unit`` governs; None means the whole city."""
    entry = directory.get(unit)
    if entry is None:
        return {unit}
    _parent, level = entry
    if level == CITY:
        return None
    root = unit
    if level == COUNTY:
        seen = {unit}
        parent = entry[0]
        # Up through county-level units to the county itself; ``seen`` ends a loop.
        while parent in directory and parent not in seen and directory[parent][1] == COUNTY:
            root = parent
            seen.add(parent)
            parent = directory[parent][0]
    return subtree(directory, root)


def subtree(directory: Directory, root: str) -> set[str]:
    """Return ``root`` and every unit below it, at any depth."""
    children: dict[str, list[str]] = {}
    for code, (parent, _level) in directory.items():
        if parent is not None:
            children.setdefault(parent, []).append(code)
    found, frontier = {root}, [root]
    while frontier:
        # ``found`` also ends a loop a corrupted directory may hold.
        frontier = [c for p in frontier for c in children.get(p, ()) if c not in found]
        found.update(frontier)
    return found


def unit_and_above(directory: Directory, unit: str) -> set[str]:
    """Return ``unit`` and every unit above it, up to the top of the directory.

    A complaint accusing one of them accuses the caller's unit or a unit it belongs to:
    it is kept from the caller (DESIGN: never the accused unit "or that unit's own
    sub-units"), in routing and in supervision alike.
    """
    found = {unit}
    while unit in directory and directory[unit][0] is not None:
        unit = directory[unit][0]
        if unit in found:
            break  # a loop a corrupted directory may hold
        found.add(unit)
    return found
