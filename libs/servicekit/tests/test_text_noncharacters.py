"""Free text refuses the BMP's non-characters (XML cannot carry U+FFFE and U+FFFF), and
nothing else a language writes."""

from __future__ import annotations

import json
import re

import pytest
from marshmallow import ValidationError

from servicekit import text

NONCHARACTERS = [chr(c) for c in range(0xFDD0, 0xFDF0)] + ["\ufffe", "\uffff"]


@pytest.mark.parametrize("character", NONCHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("rule", [text.NO_CONTROL, text.NOT_BLANK], ids=["free", "required"])
def test_a_noncharacter_is_refused_by_the_free_text_rules(rule, character):
    with pytest.raises(ValidationError, match="non-characters"):
        rule(f"退休教师{character}工资")


@pytest.mark.parametrize(
    "value",
    [
        "退休教师工资拖欠",
        "𠏿𠈓 郭坑镇",  # Ext. B ideographs: astral, like the plane-end non-characters
        "\U000203fe\U0002fffd",  # in UTF-16, the low surrogates of U+1FFFE and U+2FFFF
        "😀 ﷏ ﷰ ￼ �",  # the neighbours of U+FDD0–U+FDEF and of U+FFFE
        "line one\n\tline two\r\n",
    ],
)
def test_text_of_every_language_passes(value):
    assert text.NO_CONTROL(value) == value
    assert text.NOT_BLANK(value) == value


def test_the_documented_patterns_refuse_what_the_rules_refuse():
    # The pattern travels in the OpenAPI document as JSON; read back, it is the same rule.
    for pattern in (text.TEXT_PATTERN, text.NOT_BLANK_PATTERN):
        documented = json.loads(json.dumps(pattern))
        assert documented == pattern
        assert re.search(documented, "退休教师工资") and re.search(documented, "𠏿😀")
        for character in NONCHARACTERS:
            assert not re.search(documented, f"退休{character}"), f"U+{ord(character):04X}"
