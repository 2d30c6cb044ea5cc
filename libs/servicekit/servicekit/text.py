"""What free text a service stores, as patterns both marshmallow and the API documents use.

Each rule is one regular expression written with explicit character classes, never ``\\s``:
Python and the ECMAScript regex of JSON Schema disagree on what ``\\s`` covers (``\\x1c`` to
``\\x1f`` and ``\\x85`` are spaces to one and not the other), and a client or schemathesis
reading the document must accept exactly the strings the service accepts.
"""

from __future__ import annotations

import re

from marshmallow import ValidationError, validate

# No text field can store NUL: PostgreSQL refuses it in text. Nor a lone surrogate, which
# has no UTF-8 form; but that is no Unicode string at all (I-JSON, RFC 7493, forbids it),
# so the patterns leave it out: a range of surrogates in a pattern makes schemathesis drop
# the pattern and send anything as valid. The request guard in servicekit.web refuses both
# anywhere in a request.
UNSTORABLE = r"\x00"
# The other control characters nobody types at a desk (tab, line feed and carriage return
# aside): refused in free text up front, naming the field.
CONTROL = r"\x01-\x08\x0b\x0c\x0e-\x1f\x7f"
# Unicode's non-characters of the BMP, which no keyboard types and no text exchanged should
# hold: XML 1.0 cannot carry U+FFFE and U+FFFF at all (one in a case broke the Open311 XML
# feed of its unit). The 32 at the ends of the other planes (U+1FFFE ... U+10FFFF) are left
# alone: XML carries them, and a pattern holding a character beyond the BMP cannot be stated
# alike for Python and ECMAScript (\U0001FFFE against \u{1FFFE}; schemathesis rewrites a
# literal one into the Python escape, which its ECMAScript check then rejects).
NONCHARACTER = r"\ufdd0-\ufdef\ufffe\uffff"
# What Python's str.strip() removes, and the byte order mark: a text of only these is blank.
SPACE = r"\t\n\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"

STORABLE_PATTERN = rf"^[^{UNSTORABLE}]*$"
TEXT_PATTERN = rf"^[^{UNSTORABLE}{CONTROL}{NONCHARACTER}]*$"
_TYPED = rf"[^{UNSTORABLE}{CONTROL}{NONCHARACTER}]"
NOT_BLANK_PATTERN = rf"^{_TYPED}*[^{UNSTORABLE}{CONTROL}{NONCHARACTER}{SPACE}]{_TYPED}*$"


class FullMatch(validate.Regexp):
    """A pattern rule that the whole value must match, as JSON Schema's ``pattern`` reads it.

    marshmallow's ``Regexp`` uses ``re.match``, where ``$`` also matches before a final line
    feed: ``^[a-z]+$`` lets ``"abc\\n"`` through, while ECMAScript's ``$`` (the document's)
    ends the input. The pattern shows in the document as written.
    """

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


# A field's own pattern shows in the document in place of STORABLE_PATTERN; these refuse
# what it refuses, and more.
NO_CONTROL = FullMatch(
    TEXT_PATTERN, error="must not contain control characters nor non-characters (U+FFFE…)"
)
NOT_BLANK = FullMatch(
    NOT_BLANK_PATTERN,
    error="must not be blank nor contain control characters nor non-characters (U+FFFE…)",
)


_UNSTORABLE_CHARACTER = re.compile(rf"[{UNSTORABLE}\ud800-\udfff]")


def has_unstorable(text: str) -> bool:
    """Return True if a string holds a character no text field can store."""
    return _UNSTORABLE_CHARACTER.search(text) is not None
