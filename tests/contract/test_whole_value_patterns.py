"""Every pattern a service checks input or events with must match the whole value.

marshmallow's ``Regexp`` matches with ``re.match``, where ``$`` also matches before a final
line feed: ``^[a-z0-9-]+$`` let ``"city-org\\n"`` through. A unit code, case number or phone
with a line feed on its end was taken at one door and refused at the next (a case number
supervision dead-letters), or silently missed (a repeat visitor's phone). ``FullMatch``
(servicekit.text) matches the whole value; these tests hold every service to it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from marshmallow import Schema, validate

from servicekit.text import FullMatch

SERVICES = ("intake", "routing", "supervision", "notify")


def _validators(value) -> list:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [v for item in value for v in _validators(item)]
    if isinstance(value, validate.And):
        return [v for item in value.validators for v in _validators(item)]
    return [value]


def regexps_of(package: str) -> list[tuple[str, validate.Regexp]]:
    """Return every Regexp validator a package's modules hold, by where it was found."""
    found: list[tuple[str, validate.Regexp]] = []
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        if ".migrations" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            for validator in _validators(value):
                if isinstance(validator, validate.Regexp):
                    found.append((f"{info.name}.{name}", validator))
            if inspect.isclass(value) and issubclass(value, Schema):
                for field_name, field in value._declared_fields.items():
                    inner = [field, *filter(None, [getattr(field, "inner", None)])]
                    for each in inner:
                        for validator in _validators(getattr(each, "validators", None)):
                            if isinstance(validator, validate.Regexp):
                                found.append((f"{info.name}.{name}.{field_name}", validator))
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_pattern_of_a_service_matches_the_whole_value(service):
    found = regexps_of(service)
    assert found, f"{service} checks nothing by pattern?"
    partial = sorted({where for where, v in found if not isinstance(v, FullMatch)})
    assert partial == [], f"patterns matched with re.match ($ before a line feed): {partial}"


def test_a_whole_value_pattern_refuses_a_trailing_line_feed():
    unit = FullMatch(r"^[a-z0-9][a-z0-9-]{0,62}$")
    assert unit("city-org") == "city-org"
    with pytest.raises(Exception, match="String does not match"):
        unit("city-org\n")
    assert validate.Regexp(unit.regex.pattern)("city-org\n")  # what re.match let through
