"""Damaging files the way disks and copies do, for the tests that check they are refused."""

from pathlib import Path


def flip_middle(source: Path, target: Path, member: str = "") -> None:
    """Copy ``source`` to ``target`` with 64 bytes in the middle inverted (of the first zip member whose
    name contains ``member``, for an archive): the size is unchanged, the file still parses."""
    data = bytearray(source.read_bytes())
    start, end = len(data) // 2, len(data) // 2 + 64
    if member:
        import zipfile

        with zipfile.ZipFile(source) as z:
            info = max((i for i in z.infolist() if member in i.filename), key=lambda i: i.file_size)
        offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        start = offset + info.compress_size // 2
        end = start + 64
    data[start:end] = bytes(255 - b for b in data[start:end])
    target.write_bytes(bytes(data))
