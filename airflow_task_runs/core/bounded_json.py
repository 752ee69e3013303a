"""JSON from a cloud, parsed only when its nesting is shallow: flat memory whatever the body says.

Python's ``json`` recurses per nesting level (a body nested 100,000 deep raises
``RecursionError``) and ijson's memory grows with depth. No cloud's answer here is nested more
than a dozen levels, so anything deeper than :data:`MAX_JSON_DEPTH` is refused before parsing.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: deepest nesting accepted in any answer (the APIs' own documents stay under ~12 levels)
MAX_JSON_DEPTH = 64

# A complete JSON string (escapes included); what is left between strings is structure.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_PLAIN_STRING = re.compile(rb'"[^"]*"')
# brackets as parentheses (nesting depth does not depend on the kind), quotes kept, the rest dropped
_TO_PARENS = bytes.maketrans(b"[]{}", b"()()")
_NOT_MARKS = bytes(b for b in range(256) if b not in b'[]{}"')


class JsonTooDeep(ValueError):
    """The document nests deeper than the limit (raised before any parsing)."""

    def __init__(self, depth: int, limit: int) -> None:
        self.depth = depth
        self.limit = limit
        super().__init__(f"the JSON nests at least {depth} levels deep, over the limit of {limit}")


def json_depth(data: bytes, stop_above: int | None = None) -> int:
    """The deepest ``[``/``{`` nesting of ``data``, brackets inside strings not counted.

    C-speed scans only: every byte but brackets and quotes is dropped, the strings between the
    quotes are cut out, and innermost ``()`` pairs are removed a level per pass. ``stop_above``
    ends the count early (a hostile depth costs that many passes). Mismatched brackets stop the
    count; the parser reports them.
    """
    if b'\\"' in data:  # an escaped quote: strings found one by one
        parens = _STRING.sub(b"", data).translate(_TO_PARENS, _NOT_MARKS)
    else:  # every quote delimits a string: adjacent quotes enclose no bracket and can go
        parens = data.translate(_TO_PARENS, _NOT_MARKS).replace(b'""', b"")
        if b'"' in parens:  # strings that hold brackets
            parens = _PLAIN_STRING.sub(b"", parens)
    depth = 0
    while parens and (stop_above is None or depth <= stop_above):
        inner = parens.replace(b"()", b"")  # non-overlapping: exactly the pairs innermost now
        if len(inner) == len(parens):
            break
        parens, depth = inner, depth + 1
    return depth


def check_depth(data: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    depth = json_depth(data, stop_above=limit)
    if depth > limit:
        raise JsonTooDeep(depth, limit)


def loads(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` after a depth check; :class:`JsonTooDeep` or ``ValueError`` for a bad body."""
    raw = data.encode() if isinstance(data, str) else data
    check_depth(raw, limit)
    try:
        return json.loads(raw)
    except RecursionError:  # cannot happen below the limit; never let it out raw
        raise JsonTooDeep(limit + 1, limit) from None
