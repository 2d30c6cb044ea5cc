"""Bad input: schemathesis runs every operation of every service's OpenAPI document.

Each service's real Flask app is built on a fresh, migrated database of the run's backend
(SQLite or PostgreSQL), routing's with the unit directory its positive cases refer to,
and served over HTTP on a local port. Schemathesis's engine (the one its command line
runs) then goes through all its phases (examples, coverage, fuzzing, stateful) with
positive and negative data; every call carries a token holding a role the operation
accepts, so well-formed requests reach the handlers. Every built-in check runs, and
whatever one finds fails the scenario with the request that shows it.

The app rather than the running system: this scenario is about input handling, and one
process per service keeps about a thousand cases per service within the everyday suite.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import schemathesis
from proofkit import size
from schemathesis.engine import events, from_schema
from schemathesis.engine.statistic import Statistic
from werkzeug.serving import make_server

from servicekit import auth, migrations

pytestmark = pytest.mark.proof

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "routing", "supervision", "notify")
# Units of the named directory (services/routing/tests/data/units_named.json).
CITY_UNIT = "city-org"
PARTNER_UNIT = "lw-guokeng"
# Which unit a token of each role speaks for, so that its positive cases reach data it may see.
UNIT_OF_ROLE = {"admin": CITY_UNIT, "supervisor": CITY_UNIT, "reception": CITY_UNIT}
UNIT_OF_ROLE["partner"] = PARTNER_UNIT

# Where the apps publish after a commit: nowhere (a closed port), as in the services' own
# API tests. Events stay in the outbox; relaying them is not what this scenario is about,
# and a publish refused by a vhost without the topology costs each accepted call a retry.
NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"
POSITIVE = "positive_data_acceptance"
# Checks that cannot hold for one operation, each with the reason. All but one are rules
# across fields or on stored data, which an OpenAPI 3.0 document cannot state: schemathesis
# then takes a refused request for a valid one. The rules are tested in the services' tests.
EXCLUDED: dict[str, dict[str, tuple[str, str]]] = {
    "intake": {
        "GET /v1/cases": (POSITIVE, "'to' must be after 'from'"),
        "GET /v1/sessions": (POSITIVE, "'to' must be after 'from'"),
        "GET /open311/v2/requests.{fmt}": (POSITIVE, "end_date must not be before start_date"),
        "POST /open311/v2/requests.{fmt}": (
            POSITIVE,
            "a location is lat and long together, address_string or address_id",
        ),
    },
    "routing": {
        "POST /v1/units": (POSITIVE, "the parent must be a unit of the directory"),
        "PATCH /v1/rules/{rule_id}": (POSITIVE, "the unit must be one of the directory"),
        "POST /v1/rules": (POSITIVE, "the area must be one some unit of the directory is in"),
        "PUT /v1/units/{code}/webhook": (
            POSITIVE,
            "an IP address must be public or in the networks the operator allows",
        ),
    },
    "supervision": {
        "GET /v1/stats": (POSITIVE, "'to' must not be before 'from'"),
        "GET /v1/cadre": (POSITIVE, "'to' must not be before 'from'"),
        "PUT /v1/ladder/{step}": (
            POSITIVE,
            "a step gives either percent_of_term or months/days_after_due",
        ),
        "POST /v1/meetings/{month}/decisions": (
            POSITIVE,
            "which of unit and due_at a decision names depends on the decision",
        ),
    },
    "notify": {
        "PUT /v1/rules": (POSITIVE, "which kinds of message an event tells depends on the event"),
        "PUT /v1/templates/{kind}/{channel}/{language}": (
            POSITIVE,
            "which fields a template may use depends on the kind in its path",
        ),
        # Not a rule the document cannot state, but a resource that outlives its DELETE.
        "GET /v1/templates/{kind}/{channel}/{language}": (
            "use_after_free",
            "DELETE drops the city's edit; the template then reads as the built-in default "
            "(edited: false), as its description says",
        ),
    },
}


@dataclass
class Outcome:
    """What schemathesis did to one service and what it found."""

    documented: set[str] = field(default_factory=set)
    operations: set[str] = field(default_factory=set)
    cases: int = 0
    # Calls answered 2xx: positive data that reached a handler and was served.
    accepted: int = 0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def roles_by_operation(app) -> dict[tuple[str, str], tuple[str, ...]]:
    """Return the roles each operation's view requires, keyed by (METHOD, OpenAPI path)."""
    roles = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            handler = getattr(view_class, method.lower(), None)
            roles[(method, path)] = getattr(handler, "_nighttalk_roles", None) or ()
    return roles


def token_for(roles: tuple[str, ...]) -> str:
    """Mint a token allowed to call an operation: admin where admin may, else its first role."""
    role = "admin" if not roles or "admin" in roles else roles[0]
    return auth.mint(UNIT_OF_ROLE[role], [role])


def config(service: str, max_examples: int) -> schemathesis.Config:
    """Return schemathesis's configuration: every phase, every check, both data modes."""
    exclusions = [
        {"include-name": name, "checks": {check: {"enabled": False}}}
        for name, (check, _why) in EXCLUDED[service].items()
    ]
    return schemathesis.Config.from_dict(
        {
            "seed": 20261115,
            # Nothing written into the working tree; each run starts from the seed alone.
            "cache": {"enabled": False},
            "operations": exclusions,
            "generation": {"mode": "all", "max-examples": max_examples},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": max_examples},
            },
            "checks": {"enabled": True},
        }
    )


def run_schemathesis(service: str, app, base_url: str, max_examples: int) -> Outcome:
    """Run every phase of schemathesis against an app and return what it tried and found."""
    schema = schemathesis.openapi.from_url(
        f"{base_url}/openapi.json", config=config(service, max_examples)
    )
    roles = roles_by_operation(app)

    @schema.auth()
    class RoleToken:
        """Give every call a token holding a role the operation accepts."""

        def get(self, case, ctx):
            return token_for(roles.get((ctx.operation.method.upper(), ctx.operation.path), ()))

        def set(self, case, data, ctx):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    outcome = Outcome()
    outcome.documented = {result.ok().label for result in schema.get_all_operations()}
    statistic = Statistic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.is_test_scenario:
            statistic.on_scenario_finished(event.recorder)
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None and interaction.response.status_code < 300:
                    outcome.accepted += 1
        elif isinstance(event, events.NonFatalError):
            outcome.errors.append(
                f"{event.label}: {event.info.title}: {event.info.message}\n"
                + "".join(traceback.format_exception(event.value))
            )
        elif isinstance(event, events.FatalError):
            raise event.exception
    outcome.operations = statistic.tested_operations
    outcome.cases = statistic.total_cases
    for label, grouped in statistic.failures.items():
        for group in grouped.values():
            for failure in group.failures:
                response = group.response
                status = response.status_code if response is not None else "-"
                body = response.text[:300] if response is not None else ""
                outcome.failures.append(
                    f"{label}: {failure.title} ({status}): {failure.message}\n"
                    f"{group.code_sample}\n-> {body}"
                )
    return outcome


@contextlib.contextmanager
def serving(app):
    """Serve an app over HTTP on a free local port for the duration of the block.

    Over HTTP rather than schemathesis's WSGI transport: that transport hands socket
    options to Werkzeug's test client on some probes (``ignored_auth``) and crashes.
    One thread, so requests reach the database one after another, as in a sync worker.
    """
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def build_app(service: str, database_url: str, amqp_url: str):
    """Build a service's app on its database, as its own tests do."""
    module = importlib.import_module(f"{service}.app")
    return module.create_app({"TESTING": True, "DATABASE_URL": database_url, "AMQP_URL": amqp_url})


@pytest.fixture
def service_app(request, make_database, monkeypatch):
    """Yield a service's app on a fresh migrated database, with routing's unit directory."""
    service = request.param
    # Thousands of calls from one token in a minute: the rate limit would answer 429.
    monkeypatch.setenv("NIGHTTALK_RATE_LIMIT", "off")
    url = make_database(service)
    migrations.upgrade(service, service, url)
    app = build_app(service, url, NO_BROKER)
    seed(service, app)
    yield service, app
    app.extensions["runtime"].close()


def seed(service: str, app) -> None:
    """Load what positive cases need to succeed: the unit directory where a service keeps one."""
    runtime = app.extensions["runtime"]
    if service == "routing":
        from routing import directory

        with runtime.sessions() as session:
            directory.seed(
                session,
                directory.load_units(
                    ROOT / "services" / "routing" / "tests" / "data" / "units_named.json"
                ),
            )
            session.commit()


@pytest.mark.parametrize("service_app", SERVICES, indirect=True, ids=SERVICES)
def test_no_bad_input_gets_through(service_app, proof):
    service, app = service_app
    examples = size(3, 20)
    proof.row(
        f"bad input: {service}",
        done=(
            f"schemathesis {schemathesis.__version__}, every operation of {service}'s OpenAPI, "
            f"all phases, positive and negative data, {examples} examples per operation, "
            "valid tokens"
        ),
        must_hold="no server error, no response breaking its schema, no invalid input accepted",
    )
    with serving(app) as base_url:
        outcome = run_schemathesis(service, app, base_url, examples)
    proof.figure("operations", len(outcome.operations))
    proof.figure("cases", outcome.cases)
    proof.figure("answered 2xx", outcome.accepted)
    proof.figure("failures", len(outcome.failures))
    proof.figure("checks excluded on an operation", len(EXCLUDED[service]))
    assert not outcome.errors, "\n".join(outcome.errors)
    assert not outcome.failures, "\n\n".join(outcome.failures)
    assert outcome.documented, "the document lists no operation"
    assert outcome.documented <= outcome.operations, outcome.documented - outcome.operations
    assert outcome.accepted > 0, "no call was answered 2xx: the tokens or the data are wrong"
