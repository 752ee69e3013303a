"""JSON from a cloud, parsed only when its nesting is shallow: flat memory whatever the body says.

Python's ``json`` recurses per nesting level (a body nested 100,000 deep raises
``RecursionError``) and ijson's memory grows with depth. No cloud's answer here is nested more
than a dozen levels, so anything deeper than :data:`MAX_JSON_DEPTH` is refused before parsing.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

#: deepest nesting accepted in any answer (the APIs' own documents stay under ~12 levels)
MAX_JSON_DEPTH = 64

# A complete JSON string (escapes included); what is left between strings is structure.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))


class JsonTooDeep(ValueError):
    """The document nests deeper than the limit (raised before any parsing)."""

    def __init__(self, depth: int, limit: int) -> None:
        self.depth = depth
        self.limit = limit
        super().__init__(f"the JSON nests at least {depth} levels deep, over the limit of {limit}")


def json_depth(data: bytes) -> int:
    """The deepest ``[``/``{`` nesting of ``data``, brackets inside strings not counted (C-speed scans)."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def check_depth(data: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    depth = json_depth(data)
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
