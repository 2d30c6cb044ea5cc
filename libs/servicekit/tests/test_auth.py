"""Bearer tokens: what is accepted and what is refused, and secret rotation."""

import jwt
import pytest

from servicekit import auth


def test_a_minted_token_verifies():
    principal = auth.verify(auth.mint("lw-buwen", ["partner"]))
    assert (principal.unit, principal.roles) == ("lw-buwen", frozenset({"partner"}))


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"unit": "lw-buwen", "roles": ["partner"]}, "exp"),
        ({"unit": "Not A Unit", "roles": ["partner"], "exp": 4_000_000_000}, "unit"),
        # A regex's `$` also matches before a final line feed: the unit must end with it.
        ({"unit": "city-org\n", "roles": ["partner"], "exp": 4_000_000_000}, "unit"),
        ({"unit": "lw-buwen", "roles": ["root"], "exp": 4_000_000_000}, "roles"),
        ({"unit": "lw-buwen", "roles": [], "exp": 4_000_000_000}, "roles"),
        ({"unit": "lw-buwen", "roles": "partner", "exp": 4_000_000_000}, "roles"),
        # A list or an object inside: unhashable, once a TypeError (a 500).
        ({"unit": "lw-buwen", "roles": [["partner"]], "exp": 4_000_000_000}, "roles"),
        ({"unit": "lw-buwen", "roles": ["partner", {"a": 1}], "exp": 4_000_000_000}, "roles"),
        ({"unit": "lw-buwen", "roles": [1], "exp": 4_000_000_000}, "roles"),
        ({"unit": "lw-buwen", "roles": [None], "exp": 4_000_000_000}, "roles"),
    ],
)
def test_tokens_with_bad_claims_are_refused(claims, reason):
    token = jwt.encode({"iss": "nighttalk", "sub": "x", **claims}, auth.secret(), algorithm="HS256")
    with pytest.raises(auth.InvalidToken, match=reason):
        auth.verify(token)


@pytest.mark.parametrize("unit", ["city-org\n", "\ncity-org", "city\norg", "City-org", ""])
def test_no_token_is_minted_for_what_is_not_a_unit_code(unit):
    # intake made case numbers with such a unit ('city-org\n-20261123-0001'), which
    # supervision dead-lettered: the case never had a deadline clock.
    with pytest.raises(ValueError, match="not a unit code"):
        auth.mint(unit, ["reception"])


def test_alg_none_and_other_algorithms_are_refused():
    claims = {
        "iss": "nighttalk",
        "sub": "x",
        "unit": "city-org",
        "roles": ["admin"],
        "exp": 4_000_000_000,
    }
    with pytest.raises(auth.InvalidToken):
        auth.verify(jwt.encode(claims, key=None, algorithm="none"))
    with pytest.raises(auth.InvalidToken):
        auth.verify(jwt.encode(claims, auth.secret(), algorithm="HS512"))


def test_rotation_accepts_previous_secrets_until_they_are_dropped(monkeypatch):
    old = "the-old-secret-that-signed-yesterdays-tokens-0001"
    new = "the-new-secret-that-signs-todays-tokens-000000002"
    monkeypatch.setenv("NIGHTTALK_JWT_SECRET", old)
    yesterdays = auth.mint("city-org", ["admin"])
    monkeypatch.setenv("NIGHTTALK_JWT_SECRET", new)
    monkeypatch.setenv("NIGHTTALK_JWT_PREVIOUS_SECRETS", old)
    assert auth.verify(yesterdays).unit == "city-org"
    assert auth.verify(auth.mint("city-org", ["admin"])).unit == "city-org"
    monkeypatch.delenv("NIGHTTALK_JWT_PREVIOUS_SECRETS")
    with pytest.raises(auth.InvalidToken, match="invalid token"):
        auth.verify(yesterdays)


@pytest.mark.parametrize("sub", ["", "   ", "x" * 101, 42, ["lw-buwen:clerk"]])
def test_a_subject_that_is_not_a_short_text_is_refused(sub):
    # Services publish the subject as who acted (`by`); their consumers read 100 at most.
    claims = {"iss": "nighttalk", "sub": sub, "unit": "lw-buwen", "roles": ["partner"]}
    token = jwt.encode({**claims, "exp": 4_000_000_000}, auth.secret(), algorithm="HS256")
    with pytest.raises(auth.InvalidToken, match="(?i)sub"):  # PyJWT refuses a non-text
        auth.verify(token)


def test_the_longest_subject_is_accepted_and_a_longer_one_is_not_minted():
    longest = "lw-buwen:" + "办" * (auth.MAX_SUBJECT - len("lw-buwen:"))
    assert auth.verify(auth.mint("lw-buwen", ["partner"], sub=longest)).sub == longest
    with pytest.raises(ValueError, match="sub"):
        auth.mint("lw-buwen", ["partner"], sub=longest + "x")
