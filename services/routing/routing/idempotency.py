"""Idempotency-Key on routing's creating POSTs, with routing's own records table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventbus.unit_of_work import UnitOfWork
from routing import models, usecases
from servicekit.idempotency import IdempotencyConflict, fingerprint, run_once

__all__ = ["IdempotencyConflict", "act_once", "create_once", "fingerprint"]


def create_once(
    uow: UnitOfWork,
    *,
    unit: str,
    key: str | None,
    payload: Any,
    create: Callable[[UnitOfWork], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``create`` and commit, unless this key was answered before: then replay that."""
    body, _created = run_once(
        uow,
        model=models.IdempotentRequest,
        unit=unit,
        key=key,
        fingerprint=fingerprint(payload),
        create=create,
    )
    return body


def act_once(
    uow: UnitOfWork,
    *,
    unit: str,
    key: str | None,
    request: Any,
    act: Callable[[UnitOfWork], dict[str, Any]],
    status_code: int,
) -> dict[str, Any]:
    """Run an assignment action and commit, unless this key was answered before: replay that.

    ``request`` names the action, its assignment and its body: the same key sent for
    another action, assignment or body is refused (IdempotencyConflict).

    A retry sent while the first request was still at work looked for the key before the
    first committed, then waited on the assignment's lock; the state the first left may
    refuse the action again (a second accept is a 409). The key is looked for once more
    then, and the first answer replayed if the first request stored it.
    """
    print_ = fingerprint(request)
    try:
        body, _created = run_once(
            uow,
            model=models.IdempotentRequest,
            unit=unit,
            key=key,
            fingerprint=print_,
            create=act,
            status_code=status_code,
        )
    except usecases.ActionError:
        if not key:
            raise
        with uow:
            earlier = uow.session.get(models.IdempotentRequest, (unit, key))
            if earlier is None:
                raise
            if earlier.request_hash != print_:
                raise IdempotencyConflict(key) from None
            return earlier.response
    return body
