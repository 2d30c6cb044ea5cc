"""The proof suite: the whole system under faults, bad input and attack, reported as figures.

Every scenario records one row (scenario, what was done, what must hold, the figure) with
the ``proof`` fixture; whether it held is the test's own outcome, so a row can never say
"held" for an assertion that failed. The table is printed at the end of the run and
written to ``var/proof/<date>.md``.

Two sizes: the short one runs in ``make test`` (and CI); ``make proof`` sets
``NIGHTTALK_PROOF=full`` for longer streams and more cases: ``proofkit.size`` chooses.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from proofkit import FULL, ROOT, start_system

from eventbus import testing
from servicekit.localsystem import SmsGateway

# Every process log of the proof run lands here, so the confidentiality scan reads them all.
LOGS_KEY = pytest.StashKey[Path]()


@dataclass
class Row:
    scenario: str
    done: str = ""
    must_hold: str = ""
    figures: dict[str, object] = field(default_factory=dict)
    outcome: str = "not run"


class ProofReport:
    """The rows of one test: ``proof.row(...)`` then ``proof.figure(name, value)``."""

    def __init__(self, rows: list[Row]):
        self._rows = rows
        self.current: Row | None = None

    def row(self, scenario: str, *, done: str, must_hold: str) -> Row:
        self.current = Row(scenario, done, must_hold)
        self._rows.append(self.current)
        return self.current

    def figure(self, name: str, value: object) -> None:
        assert self.current is not None, "call proof.row(...) before proof.figure(...)"
        self.current.figures[name] = value


_ROWS: dict[str, list[Row]] = {}


@pytest.fixture
def proof(request) -> ProofReport:
    """Record this scenario's row for the proof table."""
    return ProofReport(_ROWS.setdefault(request.node.nodeid, []))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    rows = _ROWS.get(item.nodeid, [])
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        for row in rows:
            row.outcome = {"passed": "held", "failed": "FAILED", "skipped": "skipped"}[
                report.outcome
            ]


def _table() -> str:
    lines = [
        "| scenario | what was done | what must hold | held | figures |",
        "|---|---|---|---|---|",
    ]
    for rows in _ROWS.values():
        for r in rows:
            figures = ", ".join(f"{k} = {v}" for k, v in r.figures.items())
            lines.append(f"| {r.scenario} | {r.done} | {r.must_hold} | {r.outcome} | {figures} |")
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter):
    if not _ROWS:
        return
    table = _table()
    terminalreporter.section(f"proof ({'full' if FULL else 'short'})")
    terminalreporter.write_line(table)
    out = ROOT / "var" / "proof"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{dt.date.today().isoformat()}-{'full' if FULL else 'short'}.md"
    path.write_text(table + "\n")
    terminalreporter.write_line(f"written to {path.relative_to(ROOT)}")


@pytest.fixture(scope="session")
def proof_logs(request, tmp_path_factory) -> Path:
    """Return the folder every process of the proof run logs into."""
    folder = tmp_path_factory.mktemp("proof-logs")
    request.config.stash[LOGS_KEY] = folder
    return folder


@pytest.fixture(scope="module")
def module_amqp_url():
    """Yield a vhost of the module's own, so no scenario reads another's leftovers."""
    with testing.temporary_vhost("nighttalk-proof") as url:
        yield url


@pytest.fixture(scope="module")
def system(module_amqp_url, db_backend, proof_logs, request):
    """Yield the whole system for one module of scenarios; its logs go to the proof run's."""
    folder = proof_logs / request.module.__name__.rsplit(".", 1)[-1]
    folder.mkdir()
    with start_system(module_amqp_url, db_backend, folder) as running:
        yield running


@pytest.fixture(scope="module")
def gateway():
    """Yield an SMS gateway of the test's own (localsystem.SmsGateway), for a module's system."""
    sms = SmsGateway()
    yield sms
    sms.close()
