"""A pattern rule matches the whole value: a final line feed is not let through."""

import pytest
from marshmallow import Schema, ValidationError, fields

from servicekit import text


@pytest.mark.parametrize("value", ["city-org\n", "city-org\nx", "\ncity-org", "City-org"])
def test_a_full_match_refuses_a_value_with_more_than_the_pattern(value):
    # marshmallow's Regexp uses re.match, where `$` also matches before a final "\n".
    rule = text.FullMatch(r"^[a-z0-9][a-z0-9-]{0,62}$", error="must be a unit code")
    with pytest.raises(ValidationError, match="must be a unit code"):
        rule(value)


def test_a_full_match_takes_a_value_the_pattern_matches_whole():
    rule = text.FullMatch(r"^[a-z0-9][a-z0-9-]{0,62}$")
    assert rule("city-org") == "city-org"


@pytest.mark.parametrize("rule", [text.NO_CONTROL, text.NOT_BLANK], ids=["free", "required"])
def test_the_free_text_rules_match_whole_values(rule):
    assert isinstance(rule, text.FullMatch)
    assert rule("蓝田\n第二行\n") == "蓝田\n第二行\n"


def test_the_document_states_a_full_match_pattern_as_written():
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    class Unit(Schema):
        code = fields.String(validate=text.FullMatch(r"^[a-z]+$"))

    spec = APISpec("t", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema("Unit", schema=Unit)
    assert spec.to_dict()["components"]["schemas"]["Unit"]["properties"]["code"] == {
        "type": "string",
        "pattern": "^[a-z]+$",
    }
