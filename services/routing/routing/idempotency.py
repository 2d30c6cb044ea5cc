"""Idempotency-Key on routing's creating POSTs, with routing's own records table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventbus.unit_of_work import UnitOfWork
from routing import models
from servicekit.idempotency import IdempotencyConflict, fingerprint, run_once

__all__ = ["IdempotencyConflict", "create_once", "fingerprint"]


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
