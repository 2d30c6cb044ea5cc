"""The unit directory (联动单位): load it from data, seed it, walk its hierarchy.

The hierarchy is city → county/district → township, held by each unit's ``parent``.
Routing only ever walks *up* it (a unit's ancestors), so "is X in Y's subtree" is
answered without loading the whole directory.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.models import CITY, CITY_AREA, COUNTY, LEVELS, TOWNSHIP, Rule, Unit
from servicekit.text import FullMatch

UNIT_CODE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
UNIT_CODE = FullMatch(UNIT_CODE_PATTERN, error="must be a unit code such as 'lw-buwen'")
# Deeper than any real hierarchy: a longer walk up means the parents form a loop.
MAX_DEPTH = 16

# The level a unit's parent may have: a township sits under a county, a county-level
# unit under the city or its county government, a city department under the city.
PARENT_LEVELS = {CITY: {CITY}, COUNTY: {CITY, COUNTY}, TOWNSHIP: {COUNTY}}


class UnitLike(Protocol):
    code: str
    parent: str | None
    level: str
    area: str
    active: bool


class Directory(Protocol):
    """Where routing looks units up: the database in service, a dict in unit tests."""

    def get(self, code: str) -> UnitLike | None:
        """Return the unit with this code, or None."""


class SessionDirectory:
    """The directory as the database holds it, read through a session's identity map."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, code: str) -> Unit | None:
        unit = self.session.get(Unit, code)
        if unit is not None:
            # Held for the session's life: its identity map holds objects weakly, so a
            # unit only checked (the chosen unit is active) was let go and read again by
            # the next lookup of the same transaction (routing a case read its unit twice).
            self.session.info.setdefault("directory_units", {})[code] = unit
        return unit


@dataclass(frozen=True)
class UnitRecord:
    """A unit as the data file or a test describes it."""

    code: str
    name: str
    level: str
    parent: str | None
    area: str
    leader: str | None = None
    active: bool = True
    amqp: bool = False


class MemoryDirectory:
    """A directory held in a dict (data files being checked, unit tests)."""

    def __init__(self, units: Iterable[UnitLike]) -> None:
        self.units = {unit.code: unit for unit in units}

    def get(self, code: str) -> UnitLike | None:
        return self.units.get(code)


class _Layered:
    """Look units up in ``first``, then in ``then`` (records being loaded over the database)."""

    def __init__(self, first: Directory, then: Directory | None) -> None:
        self.first = first
        self.then = then

    def get(self, code: str) -> UnitLike | None:
        unit = self.first.get(code)
        if unit is None and self.then is not None:
            unit = self.then.get(code)
        return unit


class HierarchyError(ValueError):
    """The parents of the directory form a loop or point at no unit."""


def ancestors(directory: Directory, code: str) -> Iterator[UnitLike]:
    """Yield the units above ``code``, its parent first, up to the root."""
    seen = {code}
    unit = directory.get(code)
    while unit is not None and unit.parent is not None:
        if unit.parent in seen or len(seen) > MAX_DEPTH:
            raise HierarchyError(f"the parents of {code!r} form a loop")
        seen.add(unit.parent)
        unit = directory.get(unit.parent)
        if unit is None:
            return
        yield unit


def in_subtree(directory: Directory, code: str, root: str) -> bool:
    """Return True if ``code`` is ``root`` itself or one of its sub-units, at any depth."""
    if code == root:
        return True
    return any(unit.code == root for unit in ancestors(directory, code))


def area_of(directory: Directory, unit: UnitLike) -> str:
    """Return the area a unit sits in: its topmost county-level unit, else "city"."""
    chain = [unit, *ancestors(directory, unit.code)]
    counties = [u.code for u in chain if u.level == COUNTY]
    return counties[-1] if counties else CITY_AREA


# -- the data file ---------------------------------------------------------------------


class UnitRecordSchema(Schema):
    code = fields.String(required=True, validate=UNIT_CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    parent = fields.String(load_default=None, allow_none=True, validate=UNIT_CODE)
    area = fields.String(required=True, validate=UNIT_CODE)
    leader = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))
    active = fields.Boolean(load_default=True)
    amqp = fields.Boolean(load_default=False)


class DirectoryFileSchema(Schema):
    # "_comment" lets the data file say what it is; nothing else is accepted.
    comment = fields.String(data_key="_comment")
    units = fields.List(
        fields.Nested(UnitRecordSchema), required=True, validate=validate.Length(min=1, max=10_000)
    )

    @validates_schema
    def _distinct_codes(self, data, **kwargs):
        counts = Counter(unit["code"] for unit in data.get("units", []))
        duplicates = sorted(code for code, count in counts.items() if count > 1)
        if duplicates:
            raise ValidationError(f"units listed twice: {', '.join(duplicates)}", "units")


def default_file() -> Path:
    """Return the directory shipped with the package (the units named in the source)."""
    return Path(str(resources.files("routing") / "data" / "units.json"))


def load_units(path: str | Path | None = None) -> list[UnitRecord]:
    """Read and check a directory file; raise ValueError saying what is wrong in it."""
    raw = json.loads(Path(path or default_file()).read_text(encoding="utf-8"))
    try:
        data = DirectoryFileSchema().load(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid unit directory: {exc.messages}") from exc
    return [UnitRecord(**unit) for unit in data["units"]]


def check_hierarchy(records: list[UnitRecord], known: Directory | None = None) -> None:
    """Refuse records whose parents are unknown, loop, skip levels, or mismatch the area.

    ``known`` holds units already in the database, which records may name as parents.
    """
    both = _Layered(MemoryDirectory(records), known)
    problems = []
    for record in records:
        if record.parent is None:
            if record.level != CITY:
                problems.append(f"{record.code}: only a city-level unit may have no parent")
            elif record.area != CITY_AREA:
                problems.append(f"{record.code}: the area of a root unit is {CITY_AREA!r}")
            continue
        parent = both.get(record.parent)
        if parent is None:
            problems.append(f"{record.code}: parent {record.parent!r} is no unit")
            continue
        if parent.level not in PARENT_LEVELS[record.level]:
            problems.append(
                f"{record.code}: a {record.level}-level unit cannot sit under "
                f"the {parent.level}-level unit {parent.code}"
            )
        try:
            area = area_of(both, record)
        except HierarchyError as exc:
            problems.append(f"{record.code}: {exc}")
            continue
        if record.area != area:
            problems.append(f"{record.code}: area is {area!r} by its parents, not {record.area!r}")
    if problems:
        raise ValueError("invalid unit directory: " + "; ".join(problems))


def is_unit_code(code: str) -> bool:
    """Return whether ``code`` has the shape of a unit code (so a unit may have it)."""
    return re.fullmatch(UNIT_CODE_PATTERN, code) is not None


# -- seeding -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedResult:
    added: int
    updated: int
    unchanged: int
    # The units added or changed, at their new revision: each is announced (unit.changed).
    changed: tuple[Unit, ...] = ()


_FIELDS = ("name", "level", "parent", "area", "leader", "active", "amqp")


def _depth_first(records: list[UnitRecord]) -> list[UnitRecord]:
    # Parents before children, so each parent row exists when its child is written.
    by_code = {r.code: r for r in records}

    def depth(record: UnitRecord) -> int:
        steps = 0
        while record.parent in by_code and steps <= MAX_DEPTH:
            record = by_code[record.parent]
            steps += 1
        return steps

    return sorted(records, key=depth)


# How many of a unit's active sub-units a refusal names (the city has dozens).
NAMED_CHILDREN = 10


def active_children(session: Session, code: str) -> list[str]:
    """Return the codes of the active units whose parent is ``code``, sorted."""
    return list(
        session.scalars(
            select(Unit.code).where(Unit.parent == code, Unit.active).order_by(Unit.code)
        )
    )


def still_governs(code: str, children: list[str]) -> str:
    """Say that ``code`` cannot be retired while ``children`` are active, naming them."""
    named = ", ".join(children[:NAMED_CHILDREN])
    if len(children) > NAMED_CHILDREN:
        named += f" and {len(children) - NAMED_CHILDREN} more"
    return f"active units sit under {code!r}: retire them or move them elsewhere first ({named})"


def _orphaned(session: Session, records: list[UnitRecord]) -> dict[str, list[str]]:
    """Return the units ``records`` retire that would keep active units under them, by code.

    The directory after the seed is the database overlaid with the records, so a file
    may retire a unit together with its sub-units, or move them under another unit.
    """
    after = {
        code: (parent, active)
        for code, parent, active in session.execute(select(Unit.code, Unit.parent, Unit.active))
    }
    before = dict(after)
    after.update({record.code: (record.parent, record.active) for record in records})
    retiring = {
        record.code
        for record in records
        if not record.active and before.get(record.code, (None, True))[1]
    }
    orphaned: dict[str, list[str]] = {}
    for code, (parent, active) in sorted(after.items()):
        if active and parent in retiring:
            orphaned.setdefault(parent, []).append(code)
    return orphaned


def _under_retired(session: Session, records: list[UnitRecord]) -> list[str]:
    """Say which active units ``records`` would place under a parent retired before them.

    The API refuses an active unit under a retired parent (bringing one back, adding or
    moving one there); a file that does so is refused alike, unless it brings the parent
    back too. Parents the file itself retires are :func:`_orphaned`'s.
    """
    before = {
        code: is_active for code, is_active in session.execute(select(Unit.code, Unit.active))
    }
    retired_before = {code for code, is_active in before.items() if not is_active}
    active = {**before, **{record.code: record.active for record in records}}
    return [
        f"{record.code!r} would be active under the retired {record.parent!r}: "
        f"bring {record.parent!r} back in the same file, or list {record.code!r} inactive"
        for record in records
        if record.active and record.parent in retired_before and not active[record.parent]
    ]


def check_retirements(
    session: Session, records: list[UnitRecord], *, default_unit: str | None
) -> None:
    """Refuse retirements the API refuses: the default unit, a unit a routing rule names,
    and a unit with active units under it; and, as the API does, an active unit under a
    parent retired before.

    The first two would leave cases with no one to take them: every case no rule claims
    goes to the default unit, and a rule's cases to its unit. The third would leave
    active units under a retired one, whose supervisors, jurisdiction and complaints
    all go through their parents.
    """
    problems = [
        still_governs(code, children) for code, children in _orphaned(session, records).items()
    ]
    for record in records:
        if record.active:
            continue
        unit = session.get(Unit, record.code)
        if unit is not None and not unit.active:
            continue  # retired already: nothing changes
        if record.code == default_unit:
            problems.append(
                f"{record.code!r} is the default unit: it takes every case no rule claims "
                "(set ROUTING_DEFAULT_UNIT to another unit first)"
            )
        rule_ids = list(session.scalars(select(Rule.id).where(Rule.unit == record.code)))
        if rule_ids:
            problems.append(
                f"routing rules name {record.code!r}: point them elsewhere first "
                f"({', '.join(rule_ids)})"
            )
    if problems:
        raise ValueError("cannot retire units: " + "; ".join(problems))
    misplaced = _under_retired(session, records)
    if misplaced:
        raise ValueError("cannot seed units: " + "; ".join(misplaced))


def seed(
    session: Session, records: list[UnitRecord], *, default_unit: str | None = None
) -> SeedResult:
    """Upsert units into the directory; running it twice changes nothing.

    Units absent from ``records`` are left as they are: retiring a unit is done by
    listing it with ``"active": false``, so past assignments keep their unit. Retiring
    the default unit, a unit a rule names or a unit that would keep active units under
    it is refused (ValueError), changing nothing.
    """
    check_hierarchy(records, SessionDirectory(session))
    check_retirements(session, records, default_unit=default_unit)
    added = updated = unchanged = 0
    changed: list[Unit] = []
    for record in _depth_first(records):
        unit = session.get(Unit, record.code)
        values: Mapping[str, Any] = {name: getattr(record, name) for name in _FIELDS}
        if unit is None:
            unit = Unit(code=record.code, revision=1, **values)
            session.add(unit)
            session.flush()
            added += 1
            changed.append(unit)
        elif any(getattr(unit, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(unit, name, value)
            unit.revision = (unit.revision or 0) + 1
            session.flush()
            updated += 1
            changed.append(unit)
        else:
            unchanged += 1
    return SeedResult(added, updated, unchanged, tuple(changed))


def queue_codes(session: Session) -> list[str]:
    """Return the codes of the active units that read their own partner queue, sorted."""
    return list(
        session.scalars(select(Unit.code).where(Unit.active, Unit.amqp).order_by(Unit.code))
    )


def active_codes(session: Session) -> list[str]:
    """Return the codes of every active unit, sorted."""
    return list(session.scalars(select(Unit.code).where(Unit.active).order_by(Unit.code)))
