"""Resource limits on the running system: body size, page size, and one caller's flood.

- Every operation that takes a body (from the services' OpenAPI) answers an oversize body
  with 413 in the JSON error shape, whether the size is announced or the body is chunked.
- Every operation that answers a list either takes a page size with a documented maximum,
  and refuses one over it with 422 naming the parameter, or is bounded by what it reads
  (declared below with the bound); an operation with neither fails the suite.
- A flood from one token is answered 429 with ``Retry-After`` once over the per-caller limit
  (``NIGHTTALK_RATE_LIMIT``, set low here), while other callers are all served, and their
  latency stays within a stated bound.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid

import pytest
import requests
from proofkit import size, start_system

from servicekit import auth
from servicekit.localsystem import SERVICES
from servicekit.web import MAX_BODY_BYTES

pytestmark = pytest.mark.proof

FLOOD_SECONDS = size(5, 20)
FLOODERS = 6  # threads of the one flooding token
# Requests per second per caller and per API worker, for this module's system: low, so
# even a flood slowed by a loaded machine goes over it, yet over the others' 2 a second.
RATE = 5
WORKERS = 2  # WEB_CONCURRENCY of servicekit.localsystem
PAGE_PARAMETERS = ("page_size", "limit")
# List answers with no page size, and what bounds them.
BOUNDED = {
    ("intake", "/v1/visits/{visit_id}"): "one visit: its issues are bounded by the visit schema",
    ("intake", "/v1/sessions"): "a period of at most 400 days: its monthly days and extras",
    ("intake", "/open311/v2/services.{fmt}"): "the category catalogue",
    ("intake", "/open311/v2/services/{code}.{fmt}"): "one category",
    ("intake", "/open311/v2/requests.{fmt}"): "at most 200 results (MAX_RESULTS)",
    ("intake", "/open311/v2/requests/{ref}.{fmt}"): "one request",
    ("supervision", "/v1/cases/{ref}/timeline"): "at most 1000 entries, then 'truncated'",
    ("supervision", "/v1/meetings/{month}/agenda"): "at most 1000 cases, then 'truncated'",
    ("supervision", "/v1/ladder"): "the ladder's configured steps",
    ("notify", "/v1/notifications"): "one case: a notification per kind, recipient, channel",
    ("notify", "/v1/rules"): "the configured rules: events × recipients",
    ("notify", "/v1/templates"): "kinds × channels × languages",
    ("notify", "/v1/templates/{kind}/{channel}/{language}"): "one template",
}


def token(*roles: str, sub: str | None = None) -> dict[str, str]:
    """Return a city-org token with the roles, under its own subject (its own rate count)."""
    minted = auth.mint("city-org", list(roles) or sorted(auth.ROLES), sub=sub or uuid.uuid4().hex)
    return {"Authorization": f"Bearer {minted}"}


@pytest.fixture(scope="module")
def system(module_amqp_url, db_backend, proof_logs):
    """Yield the whole system with a low per-caller rate limit, logging into the proof run."""
    folder = proof_logs / "test_resource_limits"
    folder.mkdir()
    env = {"NIGHTTALK_RATE_LIMIT": f"{RATE}/second"}
    with start_system(module_amqp_url, db_backend, folder, extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def specs(system) -> dict[str, dict]:
    return {s: requests.get(system.url(s, "/openapi.json"), timeout=10).json() for s in SERVICES}


def operations(specs):
    for service, spec in specs.items():
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                if method in ("get", "post", "put", "patch", "delete"):
                    yield service, method.upper(), path, operation


def concrete(path: str) -> str:
    values = {"fmt": "json", "month": "2026-11", "code": "lw", "step": "level-1"}
    values |= {"kind": "receipt", "channel": "sms", "language": "zh", "ref": "lw-20261115-0001"}
    values["code"] = "wage_arrears" if path.startswith("/open311/") else "lw"
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path.replace("{", "").replace("}", "")  # ids: any text, never looked up


def test_an_oversize_body_gets_413_on_every_operation_that_takes_one(system, specs, proof):
    proof.row(
        "resource limits: oversize bodies",
        done=(
            f"sent every operation that takes a body (from the OpenAPI) {MAX_BODY_BYTES + 1} "
            "bytes of JSON (Open311: of form) with Content-Length, and chunked without it"
        ),
        must_hold="413 in the JSON error shape naming the limit; never 2xx, 422 or 500",
    )
    wrong, sent = [], 0
    pad = "x" * MAX_BODY_BYTES
    for service, method, path, operation in operations(specs):
        if "requestBody" not in operation:
            continue
        url = system.url(service, concrete(path))
        if path.startswith("/open311/"):
            attempts = {"form": {"data": {"api_key": "k", "description": pad}}}
        else:
            body = json.dumps({"pad": pad}).encode()
            attempts = {
                "announced": {"data": body},
                "chunked": {
                    "data": iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
                },
            }
        for how, kwargs in attempts.items():
            headers = token() if not path.startswith("/open311/") else {}
            if "form" not in attempts:
                headers["Content-Type"] = "application/json"
            answer = requests.request(method, url, headers=headers, timeout=30, **kwargs)
            sent += 1
            # The JSON error names the limit; Open311's error list says it is too large.
            named = "too large" if path.startswith("/open311/") else str(MAX_BODY_BYTES)
            if answer.status_code != 413 or named not in answer.text:
                wrong.append(f"{method} {path} {how}: {answer.status_code} {answer.text[:120]}")
    proof.figure("oversize requests", sent)
    proof.figure("limit (bytes)", MAX_BODY_BYTES)
    proof.figure("wrongly answered", len(wrong))
    assert sent, "no operation takes a body: the OpenAPI was not read"
    assert not wrong, "\n".join(wrong)


def _resolve(spec, schema):
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def answers_a_list(spec, operation) -> bool:
    """Return True if the operation's 200 answer is, or holds, an array."""
    content = operation["responses"].get("200", {}).get("content", {})
    schema = _resolve(spec, content.get("application/json", {}).get("schema", {}))
    if schema.get("type") == "array":
        return True
    return any(
        _resolve(spec, prop).get("type") == "array"
        for prop in schema.get("properties", {}).values()
    )


def test_every_list_is_paged_with_a_cap_or_bounded(system, specs, proof):
    proof.row(
        "resource limits: page sizes",
        done=(
            "for every GET answering a list (from the OpenAPI): asked a page one over its "
            "documented maximum, and exactly the maximum"
        ),
        must_hold=(
            "over the maximum: 422 naming the parameter; the maximum: 200 with at most that "
            "many rows; a list with no page size has a declared bound"
        ),
    )
    wrong, paged, bounded, unpaged = [], 0, 0, set()
    for service, method, path, operation in operations(specs):
        if method != "GET" or not answers_a_list(specs[service], operation):
            continue
        params = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
        pager = next((params[n] for n in PAGE_PARAMETERS if n in params), None)
        if pager is None:
            unpaged.add((service, path))
            if (service, path) not in BOUNDED:
                wrong.append(f"{method} {path}: a list with no page size and no declared bound")
            bounded += 1
            continue
        cap = pager.get("schema", {}).get("maximum")
        if cap is None:
            wrong.append(f"{method} {path}: {pager['name']} has no documented maximum")
            continue
        paged += 1
        url = system.url(service, concrete(path))
        query = {"from": "2026-11-01", "to": "2026-11-30"} if path == "/v1/cadre" else {}
        over = requests.get(url, params={**query, pager["name"]: cap + 1}, headers=token())
        errors = over.json().get("errors", {}).get("query", {}) if over.content else {}
        if over.status_code != 422 or pager["name"] not in errors:
            wrong.append(f"{method} {path} {pager['name']}={cap + 1}: {over.status_code}")
        at_cap = requests.get(url, params={**query, pager["name"]: cap}, headers=token())
        rows = at_cap.json() if at_cap.status_code == 200 else None
        rows = rows.get("items", []) if isinstance(rows, dict) else rows
        if rows is None or len(rows) > cap:
            wrong.append(f"{method} {path} {pager['name']}={cap}: {at_cap.status_code}")
    proof.figure("paged lists", paged)
    proof.figure("lists bounded by what they read", bounded)
    proof.figure("wrongly answered", len(wrong))
    assert paged, "no paged list found: the OpenAPI was not read"
    assert not set(BOUNDED) - unpaged, f"stale BOUNDED entries: {sorted(set(BOUNDED) - unpaged)}"
    assert not wrong, "\n".join(wrong)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Others:
    """Callers other than the flooder: each a subject of its own, reading in a loop."""

    def __init__(self, system, count: int = 4):
        self.url = system.url("intake", "/v1/cases")
        self.tokens = [token("reception", sub=f"other-{i}") for i in range(count)]
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()

    def run(self, seconds: float) -> None:
        """Read for ``seconds`` from every other caller at once, two calls a second each."""
        stop = time.monotonic() + seconds

        def reader(headers):
            with requests.Session() as http:
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    answer = http.get(self.url, headers=headers, timeout=30)
                    elapsed = (time.perf_counter() - started) * 1000
                    with self._lock:
                        self.latencies.append(elapsed)
                        self.statuses.append(answer.status_code)
                    time.sleep(0.5)  # an ordinary client: two calls a second, under RATE

        threads = [threading.Thread(target=reader, args=(t,)) for t in self.tokens]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def test_a_flood_from_one_token_is_limited_and_others_are_served(system, proof):
    seconds = FLOOD_SECONDS
    # Generous: the flood, the others and every process share 2 cores with other work.
    bound_ms = 3000
    proof.row(
        "resource limits: one token's flood",
        done=(
            f"with NIGHTTALK_RATE_LIMIT={RATE}/second, {WORKERS} workers: 4 other callers read "
            f"intake's case list for {seconds} s alone, then again while {FLOODERS} threads "
            "of one token flood the same endpoint"
        ),
        must_hold=(
            "the flood gets 429 with Retry-After in the JSON error shape, and at most "
            f"{RATE} × {WORKERS} workers × (seconds + 4, a window's slack) answers; the "
            f"others get no 429 and their p99 under the flood stays under {bound_ms} ms "
            "(generous: 2 cores shared)"
        ),
    )
    baseline = Others(system)
    baseline.run(1.0)  # warm the workers' connections and caches: not part of the baseline
    baseline = Others(system)
    baseline.run(seconds)
    assert set(baseline.statuses) == {200}, f"baseline answers: {set(baseline.statuses)}"

    flood_url = system.url("intake", "/v1/cases")
    flooder = token("reception", sub="flooder")
    counts: dict[int, int] = {}
    samples: list[requests.Response] = []
    stop = threading.Event()
    lock = threading.Lock()

    def flood():
        with requests.Session() as http:
            while not stop.is_set():
                answer = http.get(flood_url, headers=flooder, timeout=30)
                with lock:
                    counts[answer.status_code] = counts.get(answer.status_code, 0) + 1
                    if answer.status_code == 429 and len(samples) < 3:
                        samples.append(answer)

    flooders = [threading.Thread(target=flood) for _ in range(FLOODERS)]
    started = time.monotonic()
    for thread in flooders:
        thread.start()
    during = Others(system)
    try:
        during.run(seconds)
        probes = [
            requests.get(system.url("intake", p), timeout=10) for p in ("/healthz", "/metrics")
        ]
    finally:
        stop.set()
        for thread in flooders:
            thread.join()
    flood_seconds = time.monotonic() - started

    before_p50, before_p99 = (_percentile(baseline.latencies, q) for q in (0.5, 0.99))
    during_p50, during_p99 = (_percentile(during.latencies, q) for q in (0.5, 0.99))
    proof.figure("flood requests", sum(counts.values()))
    proof.figure("flood 429", counts.get(429, 0))
    proof.figure("flood served", counts.get(200, 0))
    proof.figure("others' requests", len(during.statuses))
    proof.figure("others' 429", during.statuses.count(429))
    proof.figure("others p50/p99 before (ms)", f"{before_p50:.0f} / {before_p99:.0f}")
    proof.figure("others p50/p99 under flood (ms)", f"{during_p50:.0f} / {during_p99:.0f}")
    ratio = statistics.median(during.latencies) / statistics.median(baseline.latencies)
    proof.figure("others' median, under flood / before", f"{ratio:.1f}×")

    assert counts.get(429, 0) > 0, f"the flood was never limited: {counts}"
    assert set(counts) <= {200, 429}, f"the flood got other answers: {counts}"
    assert counts.get(200, 0) <= RATE * WORKERS * (flood_seconds + 4), counts
    for refused in samples:
        assert int(refused.headers["Retry-After"]) >= 0
        body = refused.json()
        assert body["code"] == 429 and body["status"] == "Too Many Requests", body
        assert "rate limit" in body["message"], body
    assert all(p.status_code == 200 for p in probes), "probes or metrics were limited"
    assert set(during.statuses) == {200}, f"others were refused: {set(during.statuses)}"
    assert during_p99 < bound_ms, f"others' p99 under the flood: {during_p99:.0f} ms"
