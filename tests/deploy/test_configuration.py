"""docs/configuration.md lists exactly the environment variables the code reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The process environment only: a WSGI request's environ (CONTENT_LENGTH) is not configuration.
READ = re.compile(
    r"""(?<!request\.)(?:environ\.get|environ\[|getenv)\(?\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|envvar\s*=\s*["']([A-Z][A-Z0-9_]+)["']"""  # click's options read from the environment
)
# Names read through a small helper (env("NIGHTTALK_..."), _env_flag(...)) are still literals.
OURS = re.compile(r"""["']((?:NIGHTTALK|INTAKE|ROUTING|SUPERVISION|NOTIFY)_[A-Z0-9_]+)["']""")
# Read under a computed name: f"{service.upper()}_DATABASE_URL" in servicekit.db.
COMPUTED = {f"{s}_DATABASE_URL" for s in ("INTAKE", "ROUTING", "SUPERVISION", "NOTIFY")}
DOCUMENTED = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|", re.MULTILINE)


def _code_files():
    for folder in ("libs", "services"):
        for path in (ROOT / folder).rglob("*.py"):
            parts = set(path.relative_to(ROOT).parts)
            if "tests" in parts or "migrations" in parts:
                continue
            yield path


def read_by_code() -> set[str]:
    names = set(COMPUTED)
    for path in _code_files():
        text = path.read_text()
        names.update(name for pair in READ.findall(text) for name in pair if name)
        names.update(OURS.findall(text))
    return names


def documented() -> set[str]:
    return set(DOCUMENTED.findall((ROOT / "docs" / "configuration.md").read_text()))


def test_every_variable_the_code_reads_is_documented():
    missing = read_by_code() - documented()
    assert not missing, f"document these in docs/configuration.md: {sorted(missing)}"


def test_every_documented_variable_is_read_by_the_code():
    unused = documented() - read_by_code()
    assert not unused, f"docs/configuration.md lists variables no code reads: {sorted(unused)}"


def test_the_scan_finds_what_it_should():
    # Guard the regular expression itself: these are read in known places.
    assert {
        "AMQP_URL",
        "NIGHTTALK_JWT_SECRET",
        "LOG_LEVEL",
        "ROUTING_DEFAULT_UNIT",
    } <= read_by_code()
