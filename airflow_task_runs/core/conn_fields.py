"""Connection form fields every cloud shares (plain data: provider info reads them without the hooks)."""

from __future__ import annotations

from typing import Any

#: largest output a fetch reads to a destination unless the connection says otherwise: no cloud
#: publishes a limit, and an answer that never ends must still end (the disk is not infinite)
DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024**3


def max_output_bytes_field(default: int = DEFAULT_MAX_OUTPUT_BYTES) -> dict[str, Any]:
    """The ``max_output_bytes`` extra: the largest output one fetch reads (see core.http.max_output_bytes)."""
    return {
        "label": "Largest output (bytes)",
        "description": "A fetch stops past this many bytes of one output, writes nothing and fails naming it: "
        "an answer that never ends must still end. Raise it for legitimately larger outputs.",
        "schema": {"type": ["integer", "null"], "default": default, "minimum": 1},
    }
