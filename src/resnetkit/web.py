"""Text that goes into HTML pages (the serve page, the explain page)."""

from __future__ import annotations

import json
from typing import Any


def script_json(value: Any) -> str:
    """JSON that can sit inside a <script> element whatever strings it holds: '<', '>' and '&' are
    escaped, so a class name like '</script><script>...' stays a string and never ends the element."""
    text = json.dumps(value, allow_nan=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text
