"""A file's own hash inside the file: for program formats with no checksum of their own (ExecuTorch's
.pte, LiteRT's .tflite), the card is embedded as raw JSON bytes and records the sha256 of the whole
file computed with that hash's 64 characters set to zeros. Same length, so no offset moves: the
writer seals after the runtime's serializer has laid the file out, and the reader recomputes.
Stdlib only."""

from __future__ import annotations

import hashlib
import json

ZEROS = "0" * 64
FIELD = "weights_sha256"


def placeholder(card_dict: dict) -> bytes:
    """The card's JSON with the hash field zeroed: what the serializer embeds."""
    return json.dumps({**card_dict, FIELD: ZEROS}, sort_keys=True).encode()


def seal(data: bytes, embedded: bytes) -> bytes:
    """``data`` (which embeds ``embedded`` once, as raw bytes) with the zeroed hash replaced by the
    file's sha256."""
    at = data.find(embedded)
    if at < 0:
        raise ValueError("the serializer did not embed the card as raw bytes")
    digest = hashlib.sha256(data).hexdigest()
    final = embedded.replace(f'"{ZEROS}"'.encode(), f'"{digest}"'.encode(), 1)
    return data[:at] + final + data[at + len(embedded) :]


def digest(data: bytes, card_bytes: bytes) -> str:
    """The sha256 of ``data`` with the card's recorded hash replaced by zeros (ValueError if the card
    is not in the file, or not a JSON object with a hash)."""
    at = data.find(card_bytes)
    if at < 0:
        raise ValueError("the card is not where the file says")
    recorded = json.loads(card_bytes.decode())[FIELD]
    blank = card_bytes.replace(f'"{recorded}"'.encode(), f'"{ZEROS}"'.encode(), 1)
    return hashlib.sha256(data[:at] + blank + data[at + len(card_bytes) :]).hexdigest()


def intact(data: bytes, card_bytes: bytes) -> bool:
    """Whether the file matches the hash its card records."""
    try:
        return digest(data, card_bytes) == json.loads(card_bytes.decode()).get(FIELD)
    except (ValueError, KeyError, TypeError, AttributeError):  # not JSON, not an object, no hash
        return False
