"""The decode policies (`--decode`): resnetkit's (EXIF orientation, alpha on white) or the reference
scripts' (``Image.open().convert("RGB")``). Torch- and PIL-free, so the command line offers them at once."""

from __future__ import annotations

from ..errors import InvalidOption

DECODE_POLICIES = ("resnetkit", "reference")


def check_policy(policy: str) -> str:
    if policy not in DECODE_POLICIES:
        raise InvalidOption(f"decode policy {policy!r} is not one of {', '.join(DECODE_POLICIES)}", field="decode")
    return policy
