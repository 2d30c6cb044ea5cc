"""Bearer JWTs: mint them for operators, check them on every request but the probes.

Tokens are HS256 with a secret shared by the services (``NIGHTTALK_JWT_SECRET``);
only that algorithm is accepted, so ``alg: none`` and algorithm-confusion tokens
fail. Claims: ``sub``, ``unit`` (unit code), ``roles`` (subset of ROLES), ``exp``.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from dataclasses import dataclass

import jwt
from flask import current_app, g, request
from flask_smorest import abort

ROLES = frozenset({"reception", "partner", "supervisor", "admin"})
ISSUER = "nighttalk"
ALGORITHM = "HS256"
DEV_SECRET = "dev-only-secret-change-me-in-production-0123456789"
# Matched whole (fullmatch): with re.match, `$` also matches before a final line feed, and a
# token for 'city-org\n' was minted and accepted (its cases' numbers then held the "\n").
UNIT_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def secret() -> str:
    """Return the signing secret from the environment."""
    return os.environ.get("NIGHTTALK_JWT_SECRET", DEV_SECRET)


def accepted_secrets() -> list[str]:
    """Return the secrets tokens may be signed with: the current one, then the previous ones.

    Rotation: put the old secret in ``NIGHTTALK_JWT_PREVIOUS_SECRETS`` (comma-separated)
    and the new one in ``NIGHTTALK_JWT_SECRET``; drop the old one once its tokens expired.
    """
    previous = os.environ.get("NIGHTTALK_JWT_PREVIOUS_SECRETS", "")
    return [secret(), *(s.strip() for s in previous.split(",") if s.strip())]


# The services publish the subject as who acted (an action's `by`), and their consumers
# read it up to this length: a longer one would be refused downstream, its effect lost.
MAX_SUBJECT = 100


@dataclass(frozen=True)
class Principal:
    """Who is calling: a subject acting for a unit, with roles."""

    sub: str
    unit: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        """Return True if the caller holds any of the given roles."""
        return bool(self.roles.intersection(roles))


def mint(
    unit: str, roles: list[str], *, sub: str | None = None, ttl: int = 3600, key: str | None = None
) -> str:
    """Return a signed token for a unit and roles, valid for ``ttl`` seconds."""
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(sorted(unknown))}")
    if not UNIT_CODE.fullmatch(unit):
        raise ValueError(f"not a unit code: {unit!r}")
    if sub is not None and not _is_subject(sub):
        raise ValueError(f"sub must be a text of 1 to {MAX_SUBJECT} characters")
    now = dt.datetime.now(dt.UTC)
    claims = {
        "iss": ISSUER,
        "sub": sub or f"{unit}:operator",
        "unit": unit,
        "roles": sorted(set(roles)),
        "iat": now,
        "exp": now + dt.timedelta(seconds=ttl),
    }
    return jwt.encode(claims, key or secret(), algorithm=ALGORITHM)


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or wrongly signed."""


def verify(token: str, key: str | None = None) -> Principal:
    """Return the principal of a valid token, or raise InvalidToken saying why."""
    keys = [key] if key else accepted_secrets()
    for candidate in keys:
        try:
            claims = jwt.decode(
                token,
                candidate,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "sub", "iss"]},
                leeway=30,
            )
            break
        except jwt.InvalidSignatureError as exc:
            if candidate is keys[-1]:
                raise InvalidToken(f"invalid token: {exc}") from exc
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
    unit, roles = claims.get("unit"), claims.get("roles")
    if not isinstance(unit, str) or not UNIT_CODE.fullmatch(unit):
        raise InvalidToken("invalid token: claim 'unit' must be a unit code")
    # Each role a text before the set: a list or an object inside cannot be hashed.
    if (
        not isinstance(roles, list)
        or not roles
        or not all(isinstance(role, str) for role in roles)
        or not set(roles) <= ROLES
    ):
        raise InvalidToken(
            f"invalid token: claim 'roles' must be a non-empty subset of {sorted(ROLES)}"
        )
    sub = claims.get("sub")
    if not _is_subject(sub):
        raise InvalidToken(
            f"invalid token: claim 'sub' must be a text of 1 to {MAX_SUBJECT} characters"
        )
    return Principal(sub=sub, unit=unit, roles=frozenset(roles))


def _is_subject(sub: object) -> bool:
    return isinstance(sub, str) and bool(sub.strip()) and len(sub) <= MAX_SUBJECT


def current_principal() -> Principal:
    """Return the caller of the current request (set by :func:`require`)."""
    return g.principal


MISSING = "missing bearer token: send 'Authorization: Bearer <JWT>'"


def bearer_principal() -> Principal:
    """Return the principal of the request's bearer token, or raise InvalidToken saying why.

    Verified once per request and kept on ``g``: the rate limiter asks before the view's
    :func:`require` does, and a signature check is the costliest step of a small request.
    """
    if "_bearer" not in g:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidToken(MISSING)
            g._bearer = verify(token.strip(), current_app.config.get("JWT_SECRET"))
        except InvalidToken as exc:
            g._bearer = exc
    if isinstance(g._bearer, InvalidToken):
        raise g._bearer
    return g._bearer


def require(*roles: str):
    """Refuse the request with 401 without a valid token, 403 without one of ``roles``."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            try:
                principal = bearer_principal()
            except InvalidToken as exc:
                abort(401, message=str(exc))
            if roles and not principal.has(*roles):
                abort(403, message=f"this needs one of the roles: {', '.join(roles)}")
            g.principal = principal
            return view(*args, **kwargs)

        wrapper._nighttalk_roles = roles  # noqa: SLF001 - read by the OpenAPI decoration
        return wrapper

    return decorator
