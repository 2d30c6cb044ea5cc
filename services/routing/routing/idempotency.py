"""Idempotency-Key on the POSTs that create things: a retry returns the first answer.

As intake does it: the first response is stored with the request's fingerprint in
the same transaction as what it created; a retry with the same key and body gets
it back and creates nothing, the same key with another body is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from eventbus.unit_of_work import UnitOfWork
from routing import models


class IdempotencyConflict(Exception):
    """An Idempotency-Key was reused with a different request."""


def fingerprint(payload: Any) -> str:
    """Return a stable hash of a request body, to tell a retry from a different request."""
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()


def _earlier(uow: UnitOfWork, unit: str, key: str, print_: str) -> dict[str, Any] | None:
    earlier = uow.session.get(models.IdempotentRequest, (unit, key))
    if earlier is None:
        return None
    if earlier.request_hash != print_:
        raise IdempotencyConflict(key)
    return earlier.response


def create_once(
    uow: UnitOfWork,
    *,
    unit: str,
    key: str | None,
    payload: Any,
    create: Callable[[UnitOfWork], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``create`` and commit, unless this key was answered before: then replay that."""
    print_ = fingerprint(payload)
    with uow:
        if key:
            earlier = _earlier(uow, unit, key, print_)
            if earlier is not None:
                return earlier
        body = create(uow)
        if key:
            uow.session.add(
                models.IdempotentRequest(
                    unit=unit,
                    key=key,
                    request_hash=print_,
                    status_code=201,
                    response=body,
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
            try:
                uow.session.flush()
            except IntegrityError:
                # The same key raced us from another worker and won: answer as it did.
                uow.session.rollback()
                earlier = _earlier(uow, unit, key, print_)
                if earlier is None:
                    raise
                return earlier
        uow.commit()
        return body
