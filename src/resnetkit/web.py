"""Text that goes into HTML pages (the serve page, the explain page)."""

from __future__ import annotations

import base64
import io
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


def image_base64(image: Any, format: str = "PNG", **options: Any) -> str:
    """A PIL image encoded (PNG by default) as base64 text, for JSON answers and data: URIs."""
    buffer = io.BytesIO()
    (image.convert("RGB") if format == "JPEG" else image).save(buffer, format=format, **options)
    return base64.b64encode(buffer.getvalue()).decode()


def data_uri(image: Any, format: str = "PNG", **options: Any) -> str:
    """A PIL image as a data: URI, which a page can show without any request."""
    return f"data:image/{format.lower()};base64," + image_base64(image, format, **options)
