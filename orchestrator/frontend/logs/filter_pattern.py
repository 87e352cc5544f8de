"""CloudWatch Logs filter patterns for unstructured events: terms, quoted phrases, ``?term``
(any of these) and ``-term`` (none of these), as CloudWatch matches them: case-sensitive, a
term anywhere in the message.

``ERROR`` matches messages holding ERROR; ``ERROR Exception`` those holding both;
``"Internal Server Error"`` the phrase; ``?ERROR ?WARN`` either; ``ERROR -Retrying`` ERROR without
Retrying. JSON (``{ $.level = … }``), space-delimited (``[ip, …]``) and regular expression
(``%…%``) patterns are refused with a clear message (not supported yet), never matched wrongly.
"""
from dataclasses import dataclass, field


class PatternError(ValueError):
    """A filter pattern the lab cannot use; the message is for the caller."""


@dataclass(frozen=True)
class Pattern:
    """A parsed pattern: every ``required`` text, at least one of ``any_of`` (if any), no ``excluded``."""

    required: tuple = ()
    any_of: tuple = ()
    excluded: tuple = ()
    terms: tuple = field(default=(), compare=False)

    def matches(self, message):
        if any(text not in message for text in self.required):
            return False
        if self.any_of and not any(text in message for text in self.any_of):
            return False
        return not any(text in message for text in self.excluded)


def _tokens(pattern):
    """(sign, text) for each term of ``pattern``: sign is "", "?" or "-"."""
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i].isspace():
            i += 1
            continue
        sign = ""
        if pattern[i] in "?-" and i + 1 < n and not pattern[i + 1].isspace():
            sign, i = pattern[i], i + 1
        if pattern[i] == '"':
            text, i = [], i + 1
            while i < n and pattern[i] != '"':
                if pattern[i] == "\\" and i + 1 < n:
                    i += 1
                text.append(pattern[i])
                i += 1
            if i >= n:
                raise PatternError("Invalid filter pattern: a quoted phrase is not closed (a \" is missing).")
            i += 1
            yield sign, "".join(text)
        else:
            start = i
            while i < n and not pattern[i].isspace():
                if pattern[i] == '"':
                    raise PatternError("Invalid filter pattern: a \" may only start a quoted phrase.")
                i += 1
            yield sign, pattern[start:i]


def parse(pattern):
    """The Pattern of a filter pattern string ("" or None matches every event)."""
    text = (pattern or "").strip()
    if text.startswith("{"):
        raise PatternError("JSON filter patterns ({ $.field = value }) are not supported by Fargate Lab yet; "
                           "use terms, \"quoted phrases\", ?term or -term.")
    if text.startswith("["):
        raise PatternError("Space-delimited filter patterns ([field, ...]) are not supported by Fargate Lab yet; "
                           "use terms, \"quoted phrases\", ?term or -term.")
    if text.startswith("%"):
        raise PatternError("Regular expression filter patterns (%...%) are not supported by Fargate Lab yet; "
                           "use terms, \"quoted phrases\", ?term or -term.")
    required, any_of, excluded = [], [], []
    for sign, term in _tokens(text):
        if term == "":
            continue
        {"": required, "?": any_of, "-": excluded}[sign].append(term)
    return Pattern(tuple(required), tuple(any_of), tuple(excluded), tuple(required + any_of))
