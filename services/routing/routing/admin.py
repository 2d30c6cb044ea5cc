"""The admin's changes to the unit directory and the routing rules.

Each change of a unit bumps its revision and publishes ``unit.changed`` (the full
snapshot) in the same transaction, so the services that keep a copy of the
directory follow it. A rule never points at an unknown or inactive unit: rules are
checked when written, and a unit some rule names cannot be retired.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from sqlalchemy import exists, select

from eventbus.unit_of_work import UnitOfWork
from routing import directory, events, models
from routing.directory import SessionDirectory, UnitRecord
from routing.usecases import Conflict, Invalid, NotFound


def announce(uow: UnitOfWork, unit: models.Unit) -> None:
    """Publish the unit's snapshot (``unit.changed``) with this transaction."""
    for outgoing in events.to_integration(models.UnitChanged(unit)):
        uow.emit(outgoing)


def _chain(known: SessionDirectory, parent: models.Unit) -> list[models.Unit]:
    return [parent, *directory.ancestors(known, parent.code)]


def add_unit(uow: UnitOfWork, data: dict[str, Any]) -> models.Unit:
    """Add a unit under an existing parent; its area follows from the parents if not given."""
    session = uow.session
    if session.get(models.Unit, data["code"]) is not None:
        raise Conflict(f"unit {data['code']!r} exists: change it with PATCH")
    # Locked: a retirement of the parent, which holds its own row, waits for this unit to
    # be added and then finds it among its active children.
    parent = session.get(models.Unit, data["parent"], with_for_update=True)
    if parent is None:
        raise Invalid(f"parent {data['parent']!r} is no unit", "parent")
    if data.get("active", True) and not parent.active:
        raise Conflict(
            f"its parent {parent.code!r} is inactive: reactivate that first, or add this "
            "unit inactive"
        )
    record = UnitRecord(
        code=data["code"],
        name=data["name"],
        level=data["level"],
        parent=data["parent"],
        area=data.get("area") or models.CITY_AREA,
        leader=data.get("leader"),
        active=data.get("active", True),
        amqp=data.get("amqp", False),
    )
    known = SessionDirectory(session)
    try:
        if "area" not in data:
            derived = directory.area_of(
                directory.MemoryDirectory([record, *_chain(known, parent)]), record
            )
            record = replace(record, area=derived)
        directory.check_hierarchy([record], known)
    except ValueError as exc:
        message = str(exc).removeprefix("invalid unit directory: ")
        field = "area" if "area is" in message else "parent"
        raise Invalid(message, field) from exc
    unit = models.Unit(
        code=record.code,
        name=record.name,
        level=record.level,
        parent=record.parent,
        area=record.area,
        leader=record.leader,
        active=record.active,
        amqp=record.amqp,
        revision=1,
    )
    session.add(unit)
    session.flush()
    announce(uow, unit)
    return unit


def change_unit(uow: UnitOfWork, code: str, changes: dict[str, Any], *, default_unit: str):
    """Rename, change the leader of, retire or reactivate a unit; announce it if changed."""
    session = uow.session
    unit = session.get(models.Unit, code, with_for_update=True)
    if unit is None:
        raise NotFound("no such unit")
    if changes.get("active") is False and unit.active:
        if code == default_unit:
            raise Conflict(f"{code!r} is the default unit: it takes every case no rule claims")
        rule_ids = list(session.scalars(select(models.Rule.id).where(models.Rule.unit == code)))
        if rule_ids:
            raise Conflict(
                f"routing rules name {code!r}: point them elsewhere first ({', '.join(rule_ids)})"
            )
        # Supervising units, jurisdictions and complaints go through parents: an active
        # unit under a retired one is what reactivation refuses below.
        children = directory.active_children(session, code)
        if children:
            raise Conflict(directory.still_governs(code, children))
    if changes.get("active") and not unit.active and unit.parent is not None:
        # Locked: a retirement of the parent, which holds its own row, waits for this
        # reactivation to commit and then finds this unit among its active children.
        parent = session.get(models.Unit, unit.parent, with_for_update=True)
        if parent is not None and not parent.active and parent.parent is not None:
            raise Conflict(f"its parent {parent.code!r} is inactive: reactivate that first")
    if all(getattr(unit, name) == value for name, value in changes.items()):
        return unit
    for name, value in changes.items():
        setattr(unit, name, value)
    unit.revision = (unit.revision or 0) + 1
    session.flush()
    announce(uow, unit)
    return unit


# -- rules ---------------------------------------------------------------------------------


def _check_rule_unit(session, code: str) -> None:
    unit = session.get(models.Unit, code)
    if unit is None:
        raise Invalid(f"unit {code!r} is no unit", "unit")
    if not unit.active:
        raise Invalid(f"unit {code!r} is inactive: a rule may not send cases to it", "unit")


def _check_area(session, area: str) -> None:
    if area == models.ANY:
        return
    if not session.scalar(select(exists().where(models.Unit.area == area))):
        raise Invalid(f"no unit is in area {area!r}: give a county code, 'city' or '*'", "area")


def add_rule(uow: UnitOfWork, data: dict[str, Any]) -> models.Rule:
    """Add a (category, area) → unit rule."""
    session = uow.session
    _check_area(session, data["area"])
    _check_rule_unit(session, data["unit"])
    existing = session.scalars(
        select(models.Rule).where(
            models.Rule.category == data["category"], models.Rule.area == data["area"]
        )
    ).first()
    if existing is not None:
        raise Conflict(
            f"a rule for ({data['category']}, {data['area']}) exists: {existing.id}; change it"
        )
    now = dt.datetime.now(dt.UTC)
    rule = models.Rule(
        category=data["category"],
        area=data["area"],
        unit=data["unit"],
        due_days=data.get("due_days"),
        created_at=now,
        updated_at=now,
    )
    session.add(rule)
    session.flush()
    return rule


def change_rule(uow: UnitOfWork, rule_id: str, changes: dict[str, Any]) -> models.Rule:
    """Point a rule at another unit, or change its deadline."""
    session = uow.session
    rule = session.get(models.Rule, rule_id)
    if rule is None:
        raise NotFound("no such rule")
    if "unit" in changes:
        _check_rule_unit(session, changes["unit"])
    for name, value in changes.items():
        setattr(rule, name, value)
    rule.updated_at = dt.datetime.now(dt.UTC)
    session.flush()
    return rule


def remove_rule(uow: UnitOfWork, rule_id: str) -> None:
    """Delete a rule: its cases fall to the next most specific rule, or the default."""
    rule = uow.session.get(models.Rule, rule_id)
    if rule is None:
        raise NotFound("no such rule")
    uow.session.delete(rule)
