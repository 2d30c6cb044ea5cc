"""Idempotency-Key on the POSTs that create things: a retry returns the first answer.

The first answer is stored with the request's fingerprint in the same transaction as
what it created; a retry with the same key and body gets it back and creates nothing;
the same key with another body is refused. Each service keeps the records in its own
table (a mapped class with unit, key, request_hash, status_code, response, created_at).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from eventbus.unit_of_work import UnitOfWork


class IdempotencyConflict(Exception):
    """An Idempotency-Key was reused with a different request."""


def fingerprint(payload: Any) -> str:
    """Return a stable hash of a request body, to tell a retry from a different request."""
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False).encode()
    ).hexdigest()


def _earlier(uow: UnitOfWork, model, unit: str, key: str, print_: str) -> dict[str, Any] | None:
    earlier = uow.session.get(model, (unit, key))
    if earlier is None:
        return None
    if earlier.request_hash != print_:
        raise IdempotencyConflict(key)
    return earlier.response


def run_once(
    uow: UnitOfWork,
    *,
    model,
    unit: str,
    key: str | None,
    fingerprint: str,
    create: Callable[[UnitOfWork], dict[str, Any]],
    status_code: int = 201,
) -> tuple[dict[str, Any], bool]:
    """Run ``create`` and commit, unless this key was answered before: then replay that.

    Return (the answer, whether this call created it).

    A unique index refusing what ``create`` writes, or the key's record, means a
    concurrent request got there first: the same key's first request, still at work
    when the client retried, or another request creating the same thing. PostgreSQL
    made this one wait for that transaction's end, so everything is looked at again in
    a fresh unit of work: the first answer is replayed for the same key, and ``create``,
    run again, now sees what the other request made and says so (a 409 naming it).
    """
    for attempt in range(2):
        with uow:
            if key:
                earlier = _earlier(uow, model, unit, key, fingerprint)
                if earlier is not None:
                    return earlier, False
            try:
                body = create(uow)
                if key:
                    uow.session.add(
                        model(
                            unit=unit,
                            key=key,
                            request_hash=fingerprint,
                            status_code=status_code,
                            response=body,
                            created_at=dt.datetime.now(dt.UTC),
                        )
                    )
                uow.session.flush()
            except IntegrityError:
                if attempt:
                    raise  # not a race: the same refusal with the other request done
                continue  # leaving the unit of work drops this attempt and its events
            uow.commit()
            return body, True
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
