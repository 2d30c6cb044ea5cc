"""Confidentiality on the running system: what partners receive, what every log holds.

Named to run last in tests/proof: the log scan reads every process log the proof run wrote
(the ``proof_logs`` folder), and the logs of this module's own system, which carries its
own traffic through every path that handles a visitor's identity, so the scan means
something when this module runs alone:

- visits with names, phones and ID numbers, a returning visitor (same ID number);
- accusations: a case signed over to the unit it accuses, one to a unit under the accused
  county, one left to the rules, then a partner trying to transfer the accusing case, or
  add a co-handler, to the accused (DOMAIN: a complaint never reaches the unit it accuses);
- notifications (receipts, routed notices) and their delivery attempts;
- Open311 requests with a phone, a name and an e-mail;
- bad input that carries identity: invalid phones and ID numbers, malformed JSON, Open311.
"""

from __future__ import annotations

import functools
import json
import random
import re
import time
import uuid
from pathlib import Path

import pytest
import requests
from proofkit import bearer, items

from eventbus import testing

pytestmark = pytest.mark.proof

# What a Chinese mobile number or a resident ID number looks like in any log, including
# those of other modules, whose visitors this module does not know. Bounded by anything
# but a letter or digit, so hex ids and timestamps do not match.
MOBILE = re.compile(r"(?<![0-9A-Za-z])\+?(?:86)?1[3-9]\d{9}(?![0-9A-Za-z])")
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
RECEIVED_AT = "2026-11-15T17:05:00+08:00"


# Whole-system journeys: a minute before a missing effect is called missing.
eventually = functools.partial(testing.eventually, timeout=60.0, interval=0.2)


class Visitor:
    """A made-up visitor: a name, a mobile number and an ID number unique to this run."""

    def __init__(self, rng: random.Random, n: int):
        self.name = f"保密访客{n}{rng.choice('甲乙丙丁戊己庚辛')}"
        self.phone = f"13{rng.randint(5, 9)}{rng.randint(0, 99_999_999):08d}"
        self.id_number = f"350602{rng.randint(1940, 2000)}0101{rng.randint(0, 999):03d}X"

    def secrets(self) -> list[str]:
        return [self.name, self.phone, self.id_number]

    def body(self, issues: list[dict]) -> dict:
        return {
            "channel": "night_talk",
            "received_at": RECEIVED_AT,
            "leader": "黄宝山",
            "headcount": 1,
            "visitor": {"name": self.name, "phone": self.phone, "id_number": self.id_number},
            "issues": issues,
        }


def issue(summary: str, category: str, *, accused: str | None = None, to: str | None = None):
    body = {"category": category, "summary": summary}
    if accused:
        body["accused"] = {"unit": accused, "person": "某干部"}
    body["disposition"] = {"action": "sign_over", "unit": to} if to else {"action": "route"}
    return body


class Traffic:
    """What this module sent: its visitors, its accusing cases and whom they accuse."""

    def __init__(self):
        self.visitors: list[Visitor] = []
        self.other_secrets: list[str] = []  # Open311 and bad-input identities
        self.accusing: dict[str, dict] = {}  # case_number -> {"case_id", "accused"}
        self.cases: list[str] = []
        self.refused_paths: dict[str, int] = {}

    def secrets(self) -> list[str]:
        return [s for v in self.visitors for s in v.secrets()] + self.other_secrets


def subtree(http, system, unit: str) -> set[str]:
    """Return the unit and every unit below it, from routing's directory."""
    admin = bearer("city-org", "admin")
    found, frontier = {unit}, [unit]
    while frontier:
        parent = frontier.pop()
        got = http.get(
            system.url("routing", "/v1/units"),
            params={"parent": parent, "page_size": 100},
            headers=admin,
        ).json()
        for row in items(got):
            if row["code"] not in found:
                found.add(row["code"])
                frontier.append(row["code"])
    return found


def amqp_partners(http, system) -> list[str]:
    """Return the units that read a partner queue (routing's directory says which)."""
    admin, page, codes = bearer("city-org", "admin"), 1, []
    while True:
        got = http.get(
            system.url("routing", "/v1/units"),
            params={"page": page, "page_size": 100},
            headers=admin,
        ).json()
        codes += [u["code"] for u in got["items"] if u.get("amqp") and u.get("active")]
        if page * got["page_size"] >= got["total"]:
            return codes
        page += 1


@pytest.fixture(scope="module")
def traffic(system) -> Traffic:
    """Send every kind of identity-carrying traffic through the running system."""
    rng = random.Random()
    sent = Traffic()
    http = requests.Session()
    # 芗城区 receives; the accused are all of 龙文区, so no reception desk is accused.
    reception = bearer("xc", "reception")

    def post_visit(visitor: Visitor, issues: list[dict]) -> list[dict]:
        def accepted():
            answer = http.post(
                system.url("intake", "/v1/visits"),
                json=visitor.body(issues),
                headers={**reception, "Idempotency-Key": str(uuid.uuid4())},
            )
            # Just started, intake may not have heard of every unit yet (unit.changed).
            if answer.status_code == 422 and "unknown unit" in answer.text:
                return None
            return answer

        # The directory is 448 units' events: on a loaded machine that takes minutes.
        answer = eventually(accepted, timeout=300)
        assert answer.status_code == 201, answer.text
        sent.cases += [c["case_number"] for c in answer.json()["cases"]]
        return answer.json()["cases"]

    accusations = [
        # (accused, sign over to): to the accused itself, to a unit of the accused county,
        # and left to the rules.
        ("lw-buwen", "lw-buwen"),
        ("lw", "lw-guokeng"),
        ("lw-guokeng", None),
    ]
    for n in range(len(accusations) + 2):
        visitor = Visitor(rng, n)
        sent.visitors.append(visitor)
        if n < len(accusations):
            accused, to = accusations[n]
            case = post_visit(
                visitor,
                [issue("举报镇干部优亲厚友", "cadre_conduct", accused=accused, to=to)],
            )[0]
            sent.accusing[case["case_number"]] = {"case_id": case["case_id"], "accused": accused}
        else:
            post_visit(visitor, [issue("医药费无法报销", "medical_reimbursement", to="lw-guokeng")])
    # A returning visitor: the same person again, about a new issue.
    post_visit(sent.visitors[0], [issue("低保未落实", "medical_reimbursement", to="lw-guokeng")])

    # Every accusing case is routed; its handler tries to hand it to the accused.
    admin = bearer("city-org", "admin")
    for number, case in sent.accusing.items():

        def routed(number=number):
            got = http.get(
                system.url("routing", "/v1/assignments"),
                params={"case_number": number},
                headers=admin,
            )
            return items(got.json()) if got.status_code == 200 else None

        [assignment] = eventually(routed)
        case["unit"] = assignment["unit"]
        handler = bearer(assignment["unit"], "partner")
        for action, body in (
            ("transfer", {"to_unit": case["accused"], "reason": "转被举报单位"}),
            ("co-handlers", {"unit": case["accused"], "reason": "请被举报单位协办"}),
        ):
            answer = http.post(
                system.url("routing", f"/v1/assignments/{assignment['assignment_id']}/{action}"),
                json=body,
                headers={**handler, "Idempotency-Key": str(uuid.uuid4())},
            )
            sent.refused_paths[f"{action} {answer.status_code}"] = (
                sent.refused_paths.get(f"{action} {answer.status_code}", 0) + 1
            )
            assert answer.status_code in (409, 422), f"{action} to the accused: {answer.text}"

    # Open311: a phone, a name and an e-mail.
    open311_phone = f"13{rng.randint(5, 9)}{rng.randint(0, 99_999_999):08d}"
    sent.other_secrets += [open311_phone, "匿名市民丙"]
    answer = http.post(
        system.url("intake", "/open311/v2/requests.json"),
        data={
            "api_key": "no-such-key",
            "service_code": "wage_arrears",
            "description": "工地拖欠工资",
            "address_string": "龙文区",
            "phone": open311_phone,
            "first_name": "匿名市民丙",
        },
    )
    assert answer.status_code == 403, answer.text  # no Open311 key in compose's default
    bad_phone = f"13{rng.randint(5, 9)}{rng.randint(0, 99_999_999):08d}"
    answer = http.post(
        system.url("intake", "/open311/v2/requests.json"),
        data={"api_key": "k", "service_code": "wage_arrears", "phone": f"{bad_phone}x"},
    )
    assert answer.status_code == 400, answer.text
    sent.other_secrets.append(bad_phone)

    # Bad input that echoes identity back: it must reach the caller, never the log.
    bad = Visitor(rng, 99)
    sent.other_secrets += [bad.phone, bad.id_number]
    for visitor_fields in (
        {"name": bad.name, "phone": f"{bad.phone}-ext", "id_number": bad.id_number},
        {"name": bad.name, "phone": bad.phone, "id_number": f"{bad.id_number}0"},
    ):
        body = {
            **bad.body([issue("x", "wage_arrears", to="lw-guokeng")]),
            "visitor": visitor_fields,
        }
        answer = http.post(system.url("intake", "/v1/visits"), json=body, headers=reception)
        assert answer.status_code == 422, answer.text
    # Cut short: not JSON, with the identity inside.
    malformed = json.dumps({"visitor": {"phone": bad.phone, "id_number": bad.id_number}})[:-2]
    answer = http.post(
        system.url("intake", "/v1/visits"),
        data=malformed.encode(),
        headers={**reception, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    answer = http.post(
        system.url("intake", "/v1/visits"),
        data=f"phone={bad.phone}",
        headers={**reception, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 415, answer.text

    # Notify has handled every case (receipts, routed notices) and tried to deliver them.
    def notified():
        for number in sent.cases:
            got = http.get(
                system.url("notify", "/v1/deliveries"), params={"case": number}, headers=admin
            )
            rows = got.json() if got.status_code == 200 else []
            if not any(r.get("status") not in ("pending", "sending") for r in rows):
                return False
        return True

    eventually(notified, timeout=180)
    http.close()
    return sent


def test_no_partner_message_carries_an_accusers_identity(system, traffic, proof):
    proof.row(
        "confidentiality: what partners receive",
        done=(
            f"{len(traffic.visitors)} visitors (names, phones, ID numbers), "
            f"{len(traffic.accusing)} accusations (signed over to the accused, to a unit of "
            "the accused county, left to the rules), then the handler tried to transfer to and "
            "co-handle with the accused; read every partner queue, and each accused "
            "unit's inbox, assignments and supervised cases"
        ),
        must_hold=(
            "no partner message carries a visitor's name, phone or ID number; no message, "
            "inbox row, assignment or case of an accusing case reaches the accused or a unit "
            "below it; transfer and co-handling to the accused are refused"
        ),
    )
    http = requests.Session()
    partners = amqp_partners(http, system)
    # Every case meant for a partner queue is there before the queues are read.
    admin = bearer("city-org", "admin")
    for number in traffic.cases:

        def assigned(number=number):
            got = http.get(
                system.url("routing", "/v1/assignments"),
                params={"case_number": number},
                headers=admin,
            )
            return items(got.json()) if got.status_code == 200 else None

        eventually(assigned)
    expected = {unit: 0 for unit in partners}
    for number in traffic.cases:
        rows = items(
            http.get(
                system.url("routing", "/v1/assignments"),
                params={"case_number": number},
                headers=admin,
            ).json()
        )
        for row in rows:
            if row["unit"] in expected:
                expected[row["unit"]] += 1

    def all_published():
        return all(
            testing.queue_depth(system.amqp_url, f"partner.{unit}") >= count
            for unit, count in expected.items()
            if count
        )

    eventually(all_published)
    messages = {}
    for unit in partners:
        depth = testing.queue_depth(system.amqp_url, f"partner.{unit}")
        got = (
            testing.get_messages(system.amqp_url, f"partner.{unit}", count=depth, timeout=10)
            if depth
            else []
        )
        messages[unit] = [
            json.dumps(props.headers or {}, default=str, ensure_ascii=False)
            + body.decode("utf-8", "replace")
            for _, props, body in got
        ]
    everything = "\n".join(m for unit_messages in messages.values() for m in unit_messages)
    reached_accused: list[str] = []
    unit_messages: list[str] = []
    for number, case in traffic.accusing.items():
        for unit in subtree(http, system, case["accused"]):
            if any(number in m or case["case_id"] in m for m in messages.get(unit, [])):
                reached_accused.append(f"{number} on partner.{unit}")
            partner = bearer(unit, "partner")
            inbox = http.get(system.url("routing", "/v1/inbox"), headers=partner)
            listed = http.get(
                system.url("routing", "/v1/assignments"),
                params={"case_number": number},
                headers=partner,
            )
            supervised = http.get(system.url("supervision", f"/v1/cases/{number}"), headers=partner)
            if case["case_id"] in inbox.text or number in inbox.text:
                reached_accused.append(f"{number} in {unit}'s inbox")
            if listed.status_code != 200 or items(listed.json()):
                reached_accused.append(f"{number} in {unit}'s assignments")
            if supervised.status_code != 404:
                reached_accused.append(f"{number} readable by {unit} in supervision")
        # Notify's messages to units and leaders (e-mail, SMS, webhook) about the case.
        accused_units = subtree(http, system, case["accused"])
        deliveries = http.get(
            system.url("notify", "/v1/deliveries"),
            params={"case": number, "limit": 200},
            headers=admin,
        ).json()
        for row in deliveries:
            to_unit = bool(row.get("recipient_ref"))  # a unit or leader recipient
            if to_unit and row.get("recipient_ref") in accused_units:
                reached_accused.append(f"{number}: notify {row['kind']} to {row['recipient_ref']}")
            if to_unit:
                unit_messages.append(json.dumps(row, ensure_ascii=False))
        assert case["unit"] not in accused_units
    http.close()
    everything += "\n".join(unit_messages)
    leaked = [s for s in traffic.secrets() if s in everything]
    proof.figure("partner messages read", sum(len(m) for m in messages.values()))
    proof.figure("notify messages to units read", len(unit_messages))
    proof.figure("partner queues read", len(partners))
    proof.figure("hand-overs to the accused refused", sum(traffic.refused_paths.values()))
    proof.figure("identities found in partner messages", len(leaked))
    proof.figure("accusing cases reaching the accused", len(reached_accused))
    assert sum(len(m) for m in messages.values()) >= sum(expected.values())
    assert not leaked, "visitor identity in partner messages"  # values not printed: PII
    assert not reached_accused, reached_accused


def _log_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.log") if p.is_file())


def test_no_log_line_carries_a_visitors_id_number_or_phone(system, traffic, proof_logs, proof):
    proof.row(
        "confidentiality: logs",
        done=(
            "scanned every process log of the whole proof run (every module's system) and "
            "this module's, after its visits, accusations, notifications, Open311 and bad input"
        ),
        must_hold=(
            "no line holds this module's visitors' names, phones or ID numbers, nor anything "
            "shaped like a mobile number or a resident ID number"
        ),
    )
    time.sleep(1.0)  # let the processes' last lines reach their files
    files = _log_files(proof_logs)
    own = [p for p in files if system.folder in p.parents]
    assert own, f"this module's system wrote no log under {proof_logs}"
    secrets = traffic.secrets()
    # The shapes would catch these very values, had they been logged.
    for visitor in traffic.visitors:
        assert MOBILE.search(f" {visitor.phone} ") and ID_NUMBER.search(f" {visitor.id_number} ")
    findings: list[str] = []
    lines = 0
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            lines += 1
            where = f"{path.relative_to(proof_logs)}:{number}"
            if any(s in line for s in secrets):
                findings.append(f"{where}: one of this module's visitors' identity")
            elif MOBILE.search(line) or ID_NUMBER.search(line):
                findings.append(f"{where}: a mobile or ID number")
    proof.figure("log files", len(files))
    proof.figure("of them this module's", len(own))
    proof.figure("log lines", lines)
    proof.figure("lines with identity", len(findings))
    # Places, not values: the values are the very PII that must not spread.
    assert not findings, "\n".join(findings[:50])
