"""Authorisation on the running system: every operation, every role, every unit, the broker.

The operations come from each service's ``/openapi.json``, so a new endpoint is covered the
day it appears; its expected policy is declared below (``POLICY``), and an operation with
no declared policy fails the suite. Three layers are checked:

- function level: every role an operation does not allow gets 403, no token 401, and
  expired, unsigned, wrongly signed, ``alg: none`` and wrong-algorithm tokens 401;
- object level (BOLA): for every operation on data a unit owns, a caller of another
  unit (or a supervisor outside its jurisdiction) is refused or sees nothing, while the
  owner, on the same object, is let in — so the refusal is about the unit, not the data;
- the broker: a partner's own RabbitMQ account cannot consume, declare, bind, delete or
  publish anywhere but its own queue.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import jwt
import pika
import pika.exceptions
import pytest
import requests
from proofkit import bearer, items, start_system

from eventbus import names, testing
from eventbus.connection import connect
from servicekit import auth
from servicekit.localsystem import NIGHTTALK, SERVICES

pytestmark = pytest.mark.proof

R, P, S, A = "reception", "partner", "supervisor", "admin"
ANY = frozenset(auth.ROLES)
OWNED = "owned"  # the data belongs to a unit: a BOLA probe below must cover the operation
OPEN311_KEYS = {"key-lw": "lw", "key-xc": "xc"}


@dataclass(frozen=True)
class Policy:
    """Who may call an operation: roles of a bearer token, an Open311 key, or anyone."""

    roles: frozenset[str] = frozenset()
    scope: str = OWNED  # OWNED, or why no unit owns what it reads or changes
    auth: str = "bearer"  # "bearer", "api_key" (Open311) or "public"


def allow(*roles: str, scope: str = OWNED) -> Policy:
    return Policy(frozenset(roles), scope)


CITY = "city-wide configuration or directory, the same for every unit"
OWN_UNIT = "acts for the caller's own unit (from the token); the body names no other"
# The expected policy of every operation of every service, keyed (service, METHOD, path).
POLICY: dict[tuple[str, str, str], Policy] = {
    ("intake", "POST", "/v1/visits"): allow(R, scope=OWN_UNIT),
    ("intake", "GET", "/v1/visits/{visit_id}"): allow(*ANY),
    ("intake", "GET", "/v1/cases"): allow(*ANY),
    ("intake", "GET", "/v1/cases/{ref}"): allow(*ANY),
    ("intake", "GET", "/v1/sessions"): allow(*ANY),
    ("intake", "POST", "/v1/sessions"): allow(R, scope=OWN_UNIT),
    ("intake", "GET", "/open311/v2/services.{fmt}"): Policy(scope=CITY, auth="public"),
    ("intake", "GET", "/open311/v2/services/{code}.{fmt}"): Policy(scope=CITY, auth="public"),
    ("intake", "GET", "/open311/v2/requests.{fmt}"): Policy(auth="api_key"),
    ("intake", "POST", "/open311/v2/requests.{fmt}"): Policy(scope=OWN_UNIT, auth="api_key"),
    ("intake", "GET", "/open311/v2/requests/{ref}.{fmt}"): Policy(auth="api_key"),
    ("routing", "GET", "/v1/assignments"): allow(P, S, A),
    ("routing", "GET", "/v1/assignments/{assignment_id}"): allow(P, S, A),
    ("routing", "POST", "/v1/assignments/{assignment_id}/accept"): allow(P),
    ("routing", "POST", "/v1/assignments/{assignment_id}/return"): allow(P),
    ("routing", "POST", "/v1/assignments/{assignment_id}/transfer"): allow(P),
    ("routing", "POST", "/v1/assignments/{assignment_id}/progress"): allow(P),
    ("routing", "POST", "/v1/assignments/{assignment_id}/resolve"): allow(P),
    ("routing", "POST", "/v1/assignments/{assignment_id}/extension"): allow(P),
    ("routing", "POST", "/v1/assignments/{assignment_id}/co-handlers"): allow(P),
    ("routing", "POST", "/v1/assignments/{assignment_id}/extension/decision"): allow(S, A),
    ("routing", "POST", "/v1/assignments/{assignment_id}/arbitration"): allow(S, A),
    ("routing", "GET", "/v1/inbox"): allow(P),
    ("routing", "GET", "/v1/units"): allow(*ANY, scope=CITY),
    ("routing", "GET", "/v1/units/{code}"): allow(*ANY, scope=CITY),
    ("routing", "POST", "/v1/units"): allow(A, scope=CITY),
    ("routing", "PATCH", "/v1/units/{code}"): allow(A, scope=CITY),
    ("routing", "GET", "/v1/units/{code}/webhook"): allow(A, P),
    ("routing", "PUT", "/v1/units/{code}/webhook"): allow(A, P),
    ("routing", "DELETE", "/v1/units/{code}/webhook"): allow(A, P),
    ("routing", "GET", "/v1/rules"): allow(A, S, scope=CITY),
    ("routing", "POST", "/v1/rules"): allow(A, scope=CITY),
    ("routing", "GET", "/v1/rules/{rule_id}"): allow(A, S, scope=CITY),
    ("routing", "PATCH", "/v1/rules/{rule_id}"): allow(A, scope=CITY),
    ("routing", "DELETE", "/v1/rules/{rule_id}"): allow(A, scope=CITY),
    ("supervision", "GET", "/v1/cases/{ref}"): allow(*ANY),
    ("supervision", "GET", "/v1/cases/{ref}/timeline"): allow(*ANY),
    ("supervision", "POST", "/v1/cases/{ref}/feedback"): allow(R, S, A),
    ("supervision", "PUT", "/v1/cases/{ref}/supervisor"): allow(S, A),
    ("supervision", "GET", "/v1/board"): allow(S, A),
    ("supervision", "GET", "/v1/stats"): allow(*ANY),
    ("supervision", "GET", "/v1/cadre"): allow(S, A),
    ("supervision", "GET", "/v1/meetings/{month}/agenda"): allow(S, A),
    ("supervision", "POST", "/v1/meetings/{month}/decisions"): allow(S, A),
    ("supervision", "GET", "/v1/ladder"): allow(S, A, scope=CITY),
    ("supervision", "PUT", "/v1/ladder/{step}"): allow(A, scope=CITY),
    ("notify", "GET", "/v1/notifications"): allow(R, S, A),
    ("notify", "GET", "/v1/notifications/{notification_id}"): allow(R, S, A),
    ("notify", "GET", "/v1/deliveries"): allow(R, S, A),
    ("notify", "GET", "/v1/deliveries/{delivery_id}"): allow(R, S, A),
    ("notify", "GET", "/v1/deliveries/{delivery_id}/letter.html"): allow(R, S, A),
    ("notify", "GET", "/v1/deliveries/{delivery_id}/letter.pdf"): allow(R, S, A),
    ("notify", "POST", "/v1/deliveries/{delivery_id}/retry"): allow(A, scope=CITY),
    ("notify", "GET", "/v1/rules"): allow(A, S, scope=CITY),
    ("notify", "PUT", "/v1/rules"): allow(A, scope=CITY),
    ("notify", "GET", "/v1/templates"): allow(A, scope=CITY),
    ("notify", "GET", "/v1/templates/{kind}/{channel}/{language}"): allow(A, scope=CITY),
    ("notify", "PUT", "/v1/templates/{kind}/{channel}/{language}"): allow(A, scope=CITY),
    ("notify", "DELETE", "/v1/templates/{kind}/{channel}/{language}"): allow(A, scope=CITY),
}

# Placeholder path values: the function-level checks run before any lookup.
PLACEHOLDERS = {
    "fmt": "json",
    "month": "2026-11",
    "kind": "receipt",
    "channel": "sms",
    "language": "zh",
    "code": "lw",
    "ref": "lw-20261115-0001",
    "step": "level-1",
}

VISIT = {
    "channel": "night_talk",
    "received_at": "2026-11-15T17:05:00+08:00",
    "leader": "黄宝山",
    "headcount": 2,
    "visitor": {"name": "林河清", "phone": "13905961234", "id_number": "350602195001011234"},
    "issues": [
        {
            "category": "medical_reimbursement",
            "summary": "医药费无法报销",
            "disposition": {"action": "sign_over", "unit": "lw-guokeng"},
        }
    ],
}


@pytest.fixture(scope="module")
def system(module_amqp_url, db_backend, proof_logs):
    """Yield the whole system with two Open311 keys (lw and xc), logging into the proof run."""
    folder = proof_logs / "test_authorisation"
    folder.mkdir()
    keys = ",".join(f"{k}={u}" for k, u in OPEN311_KEYS.items())
    env = {"NIGHTTALK_OPEN311_KEYS": keys}
    with start_system(module_amqp_url, db_backend, folder, extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def operations(system, http) -> list[tuple[str, str, str]]:
    """Return every (service, METHOD, path) the services' OpenAPI documents declare."""
    found = []
    for service in SERVICES:
        spec = http.get(system.url(service, "/openapi.json")).json()
        for path, item in spec["paths"].items():
            for method in item:
                if method in ("get", "post", "put", "patch", "delete"):
                    found.append((service, method.upper(), path))
    return found


def bad_tokens() -> dict[str, str]:
    """Return tokens that must all be refused, each claiming the admin role."""
    claims = {
        "iss": auth.ISSUER,
        "sub": "intruder",
        "unit": "city-org",
        "roles": ["admin"],
        "exp": int(time.time()) + 3600,
    }
    signed = jwt.encode(claims, auth.secret(), algorithm="HS256")
    header, payload, _signature = signed.split(".")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns that the secret is short for HS512
        hs512 = jwt.encode(claims, auth.secret(), algorithm="HS512")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return {
        "expired": auth.mint("city-org", ["admin"], ttl=-3600),
        "unsigned": f"{header}.{payload}.",
        "wrongly signed": jwt.encode(claims, "not-the-secret-" * 4, algorithm="HS256"),
        "alg none": f"{none_header}.{payload}.",
        "wrong algorithm (HS512)": hs512,
        "signature of another token": f"{header}.{payload}.{signed.split('.')[2][::-1]}",
        "not a JWT": "not-a-token",
    }


def concrete(path: str) -> str:
    """Fill a path's parameters with placeholders (a fresh UUID for ids)."""
    values = {**PLACEHOLDERS, "code": "wage_arrears"} if "/open311/" in path else PLACEHOLDERS
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), str(uuid.uuid4())), path)


def test_every_operation_has_a_declared_policy(operations, proof):
    proof.row(
        "authorisation: policy covers the API",
        done="read every service's /openapi.json and compare with the declared role policy",
        must_hold="every documented operation has a declared policy and every policy an operation",
    )
    documented = set(operations)
    undeclared = sorted(documented - set(POLICY))
    stale = sorted(set(POLICY) - documented)
    proof.figure("operations", len(documented))
    proof.figure(
        "owned by a unit", sum(POLICY[o].scope == OWNED for o in documented & POLICY.keys())
    )
    assert not undeclared, f"declare the policy of these operations in POLICY: {undeclared}"
    assert not stale, f"POLICY names operations no service documents: {stale}"


def test_function_level_every_wrong_role_and_bad_token_is_refused(system, http, operations, proof):
    proof.row(
        "authorisation: function level",
        done=(
            "called every operation of every service with no token, 7 kinds of bad token "
            "(expired, unsigned, wrongly signed, alg none, HS512, tampered, garbage) and "
            "every role it does not allow; Open311 with a wrong api_key"
        ),
        must_hold="no token or a bad token: 401; a wrong role: 403; a wrong api_key: 403",
    )
    tokens = bad_tokens()
    wrong: list[str] = []
    checked = 0
    for op in operations:
        service, method, path = op
        policy = POLICY[op]
        url = system.url(service, concrete(path))
        if policy.auth == "public":
            answer = http.request(method, url)
            checked += 1
            if answer.status_code != 200:
                wrong.append(f"{method} {path} public: {answer.status_code}")
            continue
        if policy.auth == "api_key":
            form = {"api_key": "not-a-key", "service_code": "wage_arrears"}
            form |= {"description": "路灯不亮", "address_string": "郭坑镇"}
            if method == "GET":
                answer = http.get(url, params={"api_key": "not-a-key"})
            else:
                answer = http.post(url, data=form)
            checked += 1
            if answer.status_code != 403:
                wrong.append(f"{method} {path} wrong api_key: {answer.status_code}")
            continue
        attempts = [("no token", {})]
        attempts += [(name, {"Authorization": f"Bearer {t}"}) for name, t in tokens.items()]
        attempts += [("Basic scheme", {"Authorization": "Basic YWRtaW46YWRtaW4="})]
        for name, headers in attempts:
            answer = http.request(method, url, headers=headers, json={})
            checked += 1
            if answer.status_code != 401:
                wrong.append(f"{method} {path} {name}: {answer.status_code}")
            elif "message" not in answer.json():
                wrong.append(f"{method} {path} {name}: 401 without a message")
        for role in sorted(ANY - policy.roles):
            # city-org: the most senior unit, so only the role can be what is refused.
            answer = http.request(method, url, headers=bearer("city-org", role), json={})
            checked += 1
            if answer.status_code != 403:
                wrong.append(f"{method} {path} as {role}: {answer.status_code}")
    proof.figure("requests", checked)
    proof.figure("wrongly answered", len(wrong))
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------------- object level


@dataclass
class World:
    """One case received by lw (龙文区) and signed over to lw-guokeng, seen by every service."""

    visit_id: str
    case_id: str
    case_number: str
    assignment_id: str
    notification_id: str
    delivery_id: str
    open311_number: str
    session_id: str
    month: str  # this month: the case is on its joint meeting's agenda (a named supervisor)


@pytest.fixture(scope="module")
def world(system, http) -> World:
    def accepted():
        answer = http.post(
            system.url("intake", "/v1/visits"),
            json=VISIT,
            headers={**bearer("lw", R), "Idempotency-Key": str(uuid.uuid4())},
        )
        # Just started, intake may not have heard of every unit yet (unit.changed).
        if answer.status_code == 422 and "unknown unit" in answer.text:
            return None
        return answer

    # The directory is 448 units' events: on a loaded machine that takes minutes.
    created = testing.eventually(accepted, "the visit accepted", timeout=300)
    assert created.status_code == 201, created.text
    case = created.json()["cases"][0]
    admin = bearer("city-org", A)

    def assigned():
        got = http.get(
            system.url("routing", "/v1/assignments"),
            params={"case_number": case["case_number"]},
            headers=admin,
        )
        return items(got.json()) if got.status_code == 200 else None

    def supervised():
        got = http.get(system.url("supervision", f"/v1/cases/{case['case_number']}"), headers=admin)
        return got.status_code == 200 and got.json().get("responsible_unit") == "lw-guokeng"

    def notified(kind):
        def fetch():
            got = http.get(
                system.url("notify", f"/v1/{kind}"),
                params={"case": case["case_number"]},
                headers=admin,
            )
            return items(got.json()) if got.status_code == 200 else None

        return fetch

    [assignment] = testing.eventually(assigned, "the assignment", timeout=30)
    testing.eventually(supervised, "the supervised case", timeout=30)
    notification = testing.eventually(notified("notifications"), "the notification", timeout=30)[0]
    delivery = testing.eventually(notified("deliveries"), "the delivery", timeout=30)[0]
    open311 = http.post(
        system.url("intake", "/open311/v2/requests.json"),
        data={
            "api_key": "key-lw",
            "service_code": "wage_arrears",
            "description": "工地拖欠工资",
            "address_string": "龙文区",
        },
    )
    assert open311.status_code == 200, open311.text  # GeoReport v2 answers 200
    now = dt.datetime.now(dt.UTC)
    extra = http.post(
        system.url("intake", "/v1/sessions"),
        json={
            "opens_at": (now + dt.timedelta(days=1)).isoformat(),
            "closes_at": (now + dt.timedelta(days=1, hours=2)).isoformat(),
        },
        headers={**bearer("lw", R), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert extra.status_code == 201, extra.text
    # A named supervisor makes the case major: on this month's agenda of lw's supervisors.
    major = http.put(
        system.url("supervision", f"/v1/cases/{case['case_number']}/supervisor"),
        json={"supervisor": "黄宝山", "supervisor_unit": "lw"},
        headers=bearer("lw", S),
    )
    assert major.status_code == 200, major.text
    return World(
        month=dt.datetime.now(dt.UTC)
        .astimezone(dt.timezone(dt.timedelta(hours=8)))
        .strftime("%Y-%m"),
        visit_id=created.json()["visit_id"],
        case_id=case["case_id"],
        case_number=case["case_number"],
        assignment_id=assignment["assignment_id"],
        notification_id=notification["id"],
        delivery_id=delivery["id"],
        open311_number=open311.json()[0]["service_request_id"],
        session_id=extra.json()["session_id"],
    )


@dataclass(frozen=True)
class Probe:
    """One call as an intruder (must be kept out) and the same call as the owner (let in)."""

    op: tuple[str, str, str]
    path: str
    intruder: dict[str, str]
    owner: dict[str, str]
    kept_out: Callable[[requests.Response], bool]
    let_in: Callable[[requests.Response], bool]
    json: dict | None = None
    params: dict | None = None


def refused(*codes: int) -> Callable[[requests.Response], bool]:
    return lambda r: r.status_code in codes


def ok(r: requests.Response) -> bool:
    return r.status_code == 200


def lists(key: str, value: str, present: bool) -> Callable[[requests.Response], bool]:
    """Check a list answer (200) holds, or lacks, a row whose ``key`` is ``value``."""

    def check(r: requests.Response) -> bool:
        if r.status_code != 200:
            return False
        rows = items(r.json())
        return any(row.get(key) == value for row in rows) == present

    return check


def passes_the_owner_check(r: requests.Response) -> bool:
    """Past the object's owner check: any answer but the 'not yours' 403/404."""
    return r.status_code not in (401, 403) and not (
        r.status_code == 404 and "no such" in r.json().get("message", "")
    )


def probes(w: World) -> list[Probe]:
    """Return the object-level checks, each with its intruder and its rightful caller."""
    # lw (龙文区) received the case; lw-guokeng (郭坑镇, in lw) must resolve it. The intruders
    # are of xc (芗城区), another county: its reception, its partner, its supervisor.
    lw_rec, lw_sup, gk_par = bearer("lw", R), bearer("lw", S), bearer("lw-guokeng", P)
    xc_rec, xc_sup, zs_par = bearer("xc", R), bearer("xc", S), bearer("xc-zhishan", P)
    a, n, d = w.assignment_id, w.notification_id, w.delivery_id
    i, r_, s_, no = "intake", "routing", "supervision", "notify"
    not_found, forbidden = refused(404), refused(403)
    period = {"from": "2026-11-01", "to": "2026-11-30"}
    case_hidden = lists("case_number", w.case_number, False)
    case_listed = lists("case_number", w.case_number, True)
    # fmt: off
    return [
        Probe((i, "GET", "/v1/visits/{visit_id}"), f"/v1/visits/{w.visit_id}", xc_rec, lw_rec,
              not_found, ok),
        Probe((i, "GET", "/v1/visits/{visit_id}"), f"/v1/visits/{w.visit_id}", xc_sup, lw_sup,
              not_found, ok),
        Probe((i, "GET", "/v1/cases"), "/v1/cases", xc_rec, lw_rec,
              case_hidden, case_listed),
        Probe((i, "GET", "/v1/cases"), "/v1/cases", xc_sup, lw_sup,
              case_hidden, case_listed),
        Probe((i, "GET", "/v1/cases/{ref}"), f"/v1/cases/{w.case_number}", xc_rec, lw_rec,
              not_found, ok),
        Probe((i, "GET", "/v1/cases/{ref}"), f"/v1/cases/{w.case_id}", xc_sup, lw_sup,
              not_found, ok),
        Probe((i, "GET", "/v1/sessions"), "/v1/sessions", xc_rec, lw_rec,
              not_found, lists("session_id", w.session_id, True), params={"unit": "lw"}),
        Probe((i, "GET", "/v1/sessions"), "/v1/sessions", xc_sup, lw_sup,
              not_found, lists("session_id", w.session_id, True), params={"unit": "lw"}),
        Probe((i, "GET", "/open311/v2/requests.{fmt}"), "/open311/v2/requests.json", {}, {},
              lists("service_request_id", w.open311_number, False),
              lists("service_request_id", w.open311_number, True), params={"api_key": "key-xc"}),
        Probe((i, "GET", "/open311/v2/requests/{ref}.{fmt}"),
              f"/open311/v2/requests/{w.open311_number}.json", {}, {}, not_found, ok,
              params={"api_key": "key-xc"}),
        Probe((r_, "GET", "/v1/assignments"), "/v1/assignments", zs_par, gk_par,
              lists("assignment_id", a, False), lists("assignment_id", a, True)),
        Probe((r_, "GET", "/v1/assignments"), "/v1/assignments", xc_sup, lw_sup,
              lists("assignment_id", a, False), lists("assignment_id", a, True)),
        Probe((r_, "GET", "/v1/assignments/{assignment_id}"), f"/v1/assignments/{a}", zs_par,
              gk_par, not_found, ok),
        Probe((r_, "GET", "/v1/assignments/{assignment_id}"), f"/v1/assignments/{a}", xc_sup,
              lw_sup, not_found, ok),
        Probe((r_, "GET", "/v1/inbox"), "/v1/inbox", zs_par, gk_par,
              lists("assignment_id", a, False), lists("assignment_id", a, True)),
        Probe((r_, "GET", "/v1/units/{code}/webhook"), "/v1/units/lw-guokeng/webhook", zs_par,
              gk_par, forbidden, passes_the_owner_check),
        Probe((r_, "DELETE", "/v1/units/{code}/webhook"), "/v1/units/lw-guokeng/webhook",
              zs_par, gk_par, forbidden, passes_the_owner_check),
        Probe((s_, "GET", "/v1/cases/{ref}"), f"/v1/cases/{w.case_number}", zs_par, gk_par,
              not_found, ok),
        Probe((s_, "GET", "/v1/cases/{ref}"), f"/v1/cases/{w.case_number}", xc_sup, lw_sup,
              not_found, ok),
        Probe((s_, "GET", "/v1/cases/{ref}"), f"/v1/cases/{w.case_id}", xc_rec, lw_rec,
              not_found, ok),
        Probe((s_, "GET", "/v1/cases/{ref}/timeline"), f"/v1/cases/{w.case_number}/timeline",
              xc_sup, lw_sup, not_found, ok),
        Probe((s_, "GET", "/v1/cases/{ref}/timeline"), f"/v1/cases/{w.case_number}/timeline",
              zs_par, gk_par, not_found, ok),
        Probe((s_, "GET", "/v1/board"), "/v1/board", xc_sup, lw_sup,
              lambda r: ok(r) and w.case_number not in r.text,
              lambda r: ok(r) and w.case_number in r.text),
        Probe((s_, "GET", "/v1/board"), "/v1/board", xc_sup, lw_sup, forbidden, ok,
              params={"unit": "lw"}),
        Probe((s_, "GET", "/v1/stats"), "/v1/stats", xc_rec, lw_rec, forbidden, ok,
              params={**period, "unit": "lw"}),
        Probe((s_, "GET", "/v1/stats"), "/v1/stats", xc_sup, lw_sup, forbidden, ok,
              params={**period, "unit": "lw"}),
        Probe((s_, "GET", "/v1/cadre"), "/v1/cadre", bearer("xc-org", S), bearer("city-org", S),
              forbidden, ok, params=period),
        Probe((s_, "GET", "/v1/meetings/{month}/agenda"), f"/v1/meetings/{w.month}/agenda",
              xc_sup, lw_sup, lambda r: ok(r) and w.case_number not in r.text,
              lambda r: ok(r) and w.case_number in r.text),
        Probe((no, "GET", "/v1/notifications"), "/v1/notifications", xc_rec, lw_rec,
              lists("id", n, False), lists("id", n, True), params={"case": w.case_number}),
        Probe((no, "GET", "/v1/notifications"), "/v1/notifications", xc_sup, lw_sup,
              lists("id", n, False), lists("id", n, True), params={"case": w.case_number}),
        Probe((no, "GET", "/v1/notifications/{notification_id}"), f"/v1/notifications/{n}",
              xc_rec, lw_rec, not_found, ok),
        Probe((no, "GET", "/v1/notifications/{notification_id}"), f"/v1/notifications/{n}",
              xc_sup, lw_sup, not_found, ok),
        Probe((no, "GET", "/v1/deliveries"), "/v1/deliveries", xc_sup, lw_sup,
              lists("id", d, False), lists("id", d, True), params={"case": w.case_number}),
        Probe((no, "GET", "/v1/deliveries/{delivery_id}"), f"/v1/deliveries/{d}", xc_rec,
              lw_rec, not_found, ok),
        Probe((no, "GET", "/v1/deliveries/{delivery_id}"), f"/v1/deliveries/{d}", xc_sup,
              lw_sup, not_found, ok),
        Probe((no, "GET", "/v1/deliveries/{delivery_id}/letter.html"),
              f"/v1/deliveries/{d}/letter.html", xc_rec, lw_rec, not_found,
              passes_the_owner_check),
        Probe((no, "GET", "/v1/deliveries/{delivery_id}/letter.pdf"),
              f"/v1/deliveries/{d}/letter.pdf", xc_sup, lw_sup, not_found,
              passes_the_owner_check),
    ]
    # fmt: on


def actions(w: World) -> list[tuple[tuple[str, str, str], str, dict[str, str], dict]]:
    """Return state-changing calls by intruders; each must be refused and change nothing."""
    a, m = w.assignment_id, w.month
    zs_par, xc_sup, xc_rec = bearer("xc-zhishan", P), bearer("xc", S), bearer("xc", R)
    base = "/v1/assignments/{assignment_id}"
    r_, s_ = "routing", "supervision"
    # fmt: off
    return [
        ((r_, "POST", f"{base}/accept"), f"/v1/assignments/{a}/accept", zs_par, {}),
        ((r_, "POST", f"{base}/return"), f"/v1/assignments/{a}/return", zs_par,
         {"reason": "不属本单位"}),
        ((r_, "POST", f"{base}/transfer"), f"/v1/assignments/{a}/transfer", zs_par,
         {"to_unit": "xc-zhishan", "reason": "转办"}),
        ((r_, "POST", f"{base}/progress"), f"/v1/assignments/{a}/progress", zs_par,
         {"note": "进展"}),
        ((r_, "POST", f"{base}/resolve"), f"/v1/assignments/{a}/resolve", zs_par,
         {"answer": "已办结"}),
        ((r_, "POST", f"{base}/extension"), f"/v1/assignments/{a}/extension", zs_par,
         {"days": 10, "reason": "需要时间"}),
        ((r_, "POST", f"{base}/co-handlers"), f"/v1/assignments/{a}/co-handlers", zs_par,
         {"unit": "xc-zhishan", "reason": "协办"}),
        ((r_, "POST", f"{base}/extension/decision"), f"/v1/assignments/{a}/extension/decision",
         xc_sup, {"grant": True, "reason": "同意"}),
        ((r_, "POST", f"{base}/arbitration"), f"/v1/assignments/{a}/arbitration", xc_sup,
         {"unit": "xc-zhishan", "reason": "裁定"}),
        ((r_, "PUT", "/v1/units/{code}/webhook"), "/v1/units/lw-guokeng/webhook", zs_par,
         {"url": "https://attacker.example/hook"}),
        ((s_, "POST", "/v1/cases/{ref}/feedback"), f"/v1/cases/{w.case_number}/feedback", xc_rec,
         {"satisfied": True}),
        ((s_, "POST", "/v1/cases/{ref}/feedback"), f"/v1/cases/{w.case_number}/feedback", xc_sup,
         {"satisfied": True}),
        ((s_, "PUT", "/v1/cases/{ref}/supervisor"), f"/v1/cases/{w.case_number}/supervisor",
         xc_sup, {"supervisor": "某领导", "supervisor_unit": "xc"}),
        ((s_, "POST", "/v1/meetings/{month}/decisions"), f"/v1/meetings/{m}/decisions", xc_sup,
         {"case": w.case_number, "decision": "note", "note": "督办"}),
    ]
    # fmt: on


def snapshot(system, http, w: World) -> dict:
    """Return what an intruder's action could change: the assignment, case and webhook."""
    admin = bearer("city-org", A)
    assignment = http.get(
        system.url("routing", f"/v1/assignments/{w.assignment_id}"), headers=admin
    )
    case = http.get(system.url("supervision", f"/v1/cases/{w.case_number}"), headers=admin)
    hook = http.get(system.url("routing", "/v1/units/lw-guokeng/webhook"), headers=admin)
    timeline = http.get(
        system.url("supervision", f"/v1/cases/{w.case_number}/timeline"), headers=admin
    )
    return {
        "assignment": assignment.json(),
        "case": case.json(),
        "webhook": hook.status_code,
        "timeline": timeline.json(),
    }


def test_object_level_other_units_are_kept_out(system, http, world, proof):
    proof.row(
        "authorisation: object level (BOLA)",
        done=(
            "a case received by lw and signed over to lw-guokeng; callers of another county "
            "(xc reception, xc-zhishan partner, xc supervisor, xc-org supervisor) read and act "
            "on its visit, case, assignment, notifications, deliveries, Open311 request, "
            "sessions, board, stats, agenda and webhook; the rightful unit makes the same calls"
        ),
        must_hold=(
            "every intruder is refused (403/404) or sees nothing, and changes nothing; the "
            "rightful unit is let in; every unit-owned operation is probed"
        ),
    )
    reads = probes(world)
    writes = actions(world)
    owned = {op for op, policy in POLICY.items() if policy.scope == OWNED}
    probed = {p.op for p in reads} | {op for op, *_ in writes}
    assert not owned - probed, f"no object-level probe for: {sorted(owned - probed)}"
    assert probed <= set(POLICY), f"probes of undeclared operations: {sorted(probed - set(POLICY))}"

    wrong: list[str] = []
    for p in reads:
        service, method, _ = p.op
        url = system.url(service, p.path)
        params = dict(p.params or {})
        intruder = http.request(method, url, headers=p.intruder, params=params, json=p.json)
        if not p.kept_out(intruder):
            wrong.append(f"intruder {method} {p.path} {params}: {intruder.status_code}")
        if p.params and p.params.get("api_key"):
            params["api_key"] = "key-lw"  # Open311: the owner is the key of lw
        owner = http.request(method, url, headers=p.owner, params=params, json=p.json)
        if not p.let_in(owner):
            wrong.append(
                f"owner {method} {p.path} {params}: {owner.status_code} {owner.text[:200]}"
            )

    before = snapshot(system, http, world)
    for op, path, token, body in writes:
        service, method, _ = op
        answer = http.request(
            method,
            system.url(service, path),
            headers={**token, "Idempotency-Key": str(uuid.uuid4())},
            json=body,
        )
        if answer.status_code not in (403, 404):
            wrong.append(f"intruder {method} {path}: {answer.status_code} {answer.text[:200]}")
    after = snapshot(system, http, world)
    proof.figure("reads probed", 2 * len(reads))
    proof.figure("actions attempted by intruders", len(writes))
    proof.figure("unit-owned operations covered", f"{len(owned & probed)}/{len(owned)}")
    proof.figure("wrongly answered", len(wrong))
    assert not wrong, "\n".join(wrong)
    assert after == before, "an intruder's refused action changed the case"


# ------------------------------------------------------------------------------- broker


def _as_user(amqp_url: str, user: str, password: str) -> str:
    parts = urllib.parse.urlparse(amqp_url)
    netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def _routing_cli(system, *args: str) -> subprocess.CompletedProcess:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env |= {"AMQP_URL": system.amqp_url, "ROUTING_DATABASE_URL": system.database_urls["routing"]}
    env["NIGHTTALK_VAR_DIR"] = str(system.folder / "var")
    return subprocess.run(
        [NIGHTTALK, "routing", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _refused_by_broker(action) -> bool:
    try:
        action()
    except pika.exceptions.ChannelClosedByBroker as exc:
        return exc.reply_code == 403  # ACCESS_REFUSED
    return False


def _intrusions(conn, own: str, other: str) -> dict[str, Callable[[], object]]:
    """Return what a partner's account must not do: to the other's queue, or to the topology."""
    own_queue, other_queue = names.partner_queue(own), names.partner_queue(other)

    def publish():
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(names.PARTNERS_EXCHANGE, f"{other}.case.routed", b"forged")

    return {
        "get": lambda: conn.channel().basic_get(other_queue),
        "consume": lambda: conn.channel().basic_consume(other_queue, lambda *a: None),
        "purge": lambda: conn.channel().queue_purge(other_queue),
        "delete": lambda: conn.channel().queue_delete(other_queue),
        "declare": lambda: conn.channel().queue_declare(f"{own_queue}.spy"),
        "bind": lambda: conn.channel().queue_bind(
            own_queue, names.PARTNERS_EXCHANGE, routing_key=f"{other}.#"
        ),
        "publish": publish,
    }


# Two units of different counties; not the ones services/routing's own tests provision,
# since broker users are broker-wide and those tests may run at the same time.
BROKER_UNITS = ("ds-xipu", "xc-shiting")


@pytest.fixture
def partner_accounts(system):
    """Provision the two units' partner accounts as an operator would; revoke them after."""
    urls = {}
    try:
        for unit in BROKER_UNITS:
            made = _routing_cli(system, "partner-account", "create", unit)
            assert made.returncode == 0, made.stderr[-2000:]
            lines = dict(line.split(": ", 1) for line in made.stdout.splitlines() if ": " in line)
            urls[unit] = _as_user(system.amqp_url, lines["user"], lines["password"])
        yield urls
    finally:
        for unit in BROKER_UNITS:
            _routing_cli(system, "partner-account", "revoke", unit)


def test_a_partner_broker_account_reaches_only_its_own_queue(system, partner_accounts, proof):
    proof.row(
        "authorisation: partner broker accounts",
        done=(
            f"provisioned partner accounts of {' and '.join(BROKER_UNITS)} with `nighttalk "
            "routing partner-account create`; each tried to get, consume, declare, bind, "
            "delete and publish on the other's queue and on its own"
        ),
        must_hold=(
            "RabbitMQ refuses (ACCESS_REFUSED) everything but consuming its own queue; "
            "the other's message stays untouched"
        ),
    )
    probe = {unit: uuid.uuid4().hex for unit in BROKER_UNITS}
    for unit, marker in probe.items():
        testing.publish_raw(
            system.amqp_url,
            names.PARTNERS_EXCHANGE,
            f"{unit}.case.routed",
            json.dumps(marker).encode(),
        )
    refusals = 0
    for own, other in (BROKER_UNITS, BROKER_UNITS[::-1]):
        conn = connect(partner_accounts[own])
        try:
            attempts = _intrusions(conn, own, other)
            for name, attempt in attempts.items():
                assert _refused_by_broker(attempt), f"{own} could {name} on {other}'s queue"
                refusals += 1
        finally:
            with contextlib.suppress(pika.exceptions.AMQPError):
                conn.close()
    # Each reads its own message from its own queue, with its own account.
    for unit in BROKER_UNITS:
        [message] = testing.get_messages(
            partner_accounts[unit], names.partner_queue(unit), count=1, timeout=10
        )
        assert json.loads(message[2]) == probe[unit]
    proof.figure("refused by the broker", refusals)
    proof.figure("own messages read", len(BROKER_UNITS))
