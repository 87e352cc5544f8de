"""What every AWS API of the lab reads off the wire, checked once: bodies, JSON, numbers, text.

The ECS, ECR and ELBv2 views (and the dashboard's JSON field) all parse through these helpers
and turn ``Malformed`` into their own error shape, so a hostile body is refused the same way
everywhere and never reaches code that would fail on it (a RecursionError, an ``int()`` of a
Unicode digit, a control character written into XML).
"""
import json
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig

# Deeper than any shape of the served models (a task definition is about 6 levels deep).
MAX_JSON_DEPTH = 64
# Characters XML 1.0 cannot carry at all, not even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# C0 and C1 control characters but tab, newline and carriage return (those are refused, where
# AWS refuses them, by each field's own pattern).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class Malformed(ValueError):
    """A request the protocol cannot carry; the message is for the caller."""


class BadText(Malformed):
    """Well-formed JSON holding a string no API stores: a NUL or a lone surrogate."""


class TooLarge(Malformed):
    """A request body larger than the lab accepts."""


def body(request):
    """The raw request body; TooLarge when it is larger than the lab accepts (1 MiB)."""
    try:
        return request.body
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raise TooLarge(f"The request body is larger than the {limit // 1024} KiB the lab accepts.") from None


def _no_constant(name):
    raise Malformed(f"'{name}' is not a JSON number.")


def json_object(raw):
    """The JSON object of a request body (empty is ``{}``, as the SDKs send for no parameters).

    Refuses what is not strict JSON (NaN, Infinity), what is not an object, what nests deeper
    than MAX_JSON_DEPTH levels (before any code recurses into it), and, as BadText, strings a
    database cannot store (NUL, lone surrogates), wherever they sit, keys included."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("Not valid UTF-8.") from None
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise Malformed(f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.") from None
    except Malformed:
        raise
    except ValueError:
        raise Malformed("Not valid JSON.") from None
    if not isinstance(value, dict):
        raise Malformed("The JSON must be an object.")
    _check_tree(value)
    return value


def _check_tree(value):
    """Raise Malformed for nesting deeper than MAX_JSON_DEPTH, BadText for an unstorable string
    (walked with a stack, not recursion: the point is to stop what would recurse too deep)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise Malformed(f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.")
        children = list(item.values()) + list(item) if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, str):
                _check_text(child)
            elif isinstance(child, (dict, list)):
                stack.append((child, depth + 1))


def _check_text(text):
    if "\x00" in text:
        raise BadText("Strings must not contain NUL characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadText("Strings must be valid Unicode text (a lone surrogate is not).") from None


def ascii_int(text, *, signed=False, max_digits=18):
    """The integer ``text`` spells in ASCII digits (an optional "-" when ``signed``), else None.

    ``str.isdigit()`` says yes to "²" and "①" (which ``int()`` refuses) and ``int()`` takes
    "١٢" and " 12 ": numbers on the wire are ASCII digits only, so every parse goes here."""
    if not isinstance(text, str):
        return None
    digits = text[1:] if signed and text.startswith("-") else text
    if not 0 < len(digits) <= max_digits or not digits.isascii() or not digits.isdigit():
        return None
    return int(text)


def has_control_characters(text):
    """Whether ``text`` holds a control character other than tab, newline or carriage return."""
    return bool(_CONTROL.search(text))


def xml_text(value):
    """``value`` as text XML 1.0 can carry: characters it cannot hold become U+FFFD."""
    return _NOT_XML.sub("\ufffd", str(value))
