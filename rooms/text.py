"""What text a field may hold: one rule per kind of field, shared by every edge (API bodies, paths and
queries, topology files) so that a value refused in one place is refused in all.

- FREE_TEXT (notes): any text but NUL and other control characters; line feeds, carriage returns
  and tabs are allowed. Never a lone surrogate (it cannot be stored as UTF-8).
- ONE_LINE (titles, ids, query values; the default): free text without any control character, without
  line or paragraph separators, and without the bidi embedding, override and isolate controls
  (U+202A-U+202E, U+2066-U+2069), which make a reader see characters in another order than stored.
- NAME (people, feed-token labels, places): one line of printable text: no invisible format characters
  either (zero-width spaces, soft hyphens, BOM: two names that look alike must not be different), no
  markup (`<`, `>`), no spaces at either end, and at most MAX_NAME characters.

Pure: `text_problem(value, kind)` says what is wrong in words, or None; the pydantic types below are
the same rule for body models.
"""
from __future__ import annotations

import enum
import re
import unicodedata
from typing import Annotated, Callable

from pydantic import AfterValidator, Field


class TextKind(enum.Enum):
    FREE_TEXT = "free text"
    ONE_LINE = "one line of text"
    NAME = "a name"


MAX_NAME = 200
_SURROGATE = "\ud800-\udfff"
_FREE_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_SURROGATE}]")
_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_SURROGATE}\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAME = re.compile(f"[\x00-\x1f\x7f-\x9f{_SURROGATE}\u2028\u2029\u202a-\u202e\u2066-\u2069<>]")
# The same rules as JSON-schema patterns, so the OpenAPI document says them (documentation only: the
# validators below refuse, in words that name the character).
ONE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*$"
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069<>]*$"


def text_problem(value: str, kind: TextKind = TextKind.ONE_LINE) -> str | None:
    """What makes `value` unfit for a field of this kind, in words; None if it fits."""
    # `is`, not a dict keyed by the enum: an Enum's hash is Python code, and a 20,000-site document
    # has 100,000 strings
    forbidden = _ONE_LINE if kind is TextKind.ONE_LINE else _NAME if kind is TextKind.NAME else _FREE_TEXT
    bad = forbidden.search(value)
    if bad is not None:
        return f"{kind.value} may not contain {_describe(bad.group())} (at character {bad.start()})"
    if kind is not TextKind.NAME:
        return None
    if len(value) > MAX_NAME:
        return f"a name is at most {MAX_NAME} characters"
    if value != value.strip():
        return "a name may not begin or end with a space"
    for i, ch in enumerate(value):
        if unicodedata.category(ch) == "Cf":
            return f"a name may not contain the invisible character {_describe(ch)} (at character {i})"
    if value and not any(unicodedata.category(ch)[0] in "LNPS" for ch in value):
        return "a name needs a visible character"
    return None


def _describe(ch: str) -> str:
    if ch in "<>":
        return f"markup ({ch!r})"
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate (U+{code:04X}), which is not text"
    name = unicodedata.name(ch, "")
    if unicodedata.category(ch) == "Cc":
        return f"a control character (U+{code:04X})"
    return f"U+{code:04X}" + (f" {name}" if name else "")


def _validator(kind: TextKind) -> Callable[[str], str]:
    def check(value: str) -> str:
        problem = text_problem(value, kind)
        if problem is not None:
            raise ValueError(problem)
        return value
    return check


# Body-model field types: the rule, and the pattern that documents it in the OpenAPI schema.
OneLine = Annotated[str, AfterValidator(_validator(TextKind.ONE_LINE)),
                    Field(json_schema_extra={"pattern": ONE_LINE_PATTERN})]
Name = Annotated[str, AfterValidator(_validator(TextKind.NAME)), Field(json_schema_extra={"pattern": NAME_PATTERN})]
FreeText = Annotated[str, AfterValidator(_validator(TextKind.FREE_TEXT))]
