"""Refuse zip bombs in Office packages (.docx, .xlsx, .pptx: all OPC zips) before a parser inflates them.

The parsers read each member with `ZipFile.read`, which inflates a member's whole deflate stream in one call,
whatever size its header declares. So two passes run here first: the declared sizes are held to the limits
below, then every member is inflated in bounded chunks to prove it holds no more than it declares.
"""

from __future__ import annotations

import copy
import io
import zipfile
import zlib

from ingest.errors import LoadError, one_line

MIB = 1024 * 1024
# Most members a package may list; real documents hold tens to a few thousand.
MAX_MEMBERS = 10_000
# Largest uncompressed size one member may declare (a big embedded image or video still fits).
MAX_MEMBER_BYTES = 256 * MIB
# Largest uncompressed size all members together may declare.
MAX_TOTAL_BYTES = 512 * MIB
# Highest uncompressed:compressed ratio for a member, and for the whole package; XML compresses about 10:1,
# deflate's ceiling is about 1030:1.
MAX_RATIO = 200
# Members (and packages) smaller than this uncompressed may compress as well as they like.
RATIO_FLOOR_BYTES = 1 * MIB
# Bytes inflated per read in the verifying pass, which bounds what it holds in memory at once.
CHUNK_BYTES = 1 * MIB
# Office packages use only these (ECMA-376 Part 2); zipfile's bzip2 and lzma readers inflate without a bound.
ALLOWED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
# A zip's way of failing depends on where it is broken: directory, local header, or deflate stream.
_BROKEN = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)


def check_zip_package(data: bytes, kind: str) -> None:
    """Raise LoadError (one line) unless `data` is a zip whose members are safe to inflate. `kind` names the
    format in messages, e.g. ".docx"."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _BROKEN as exc:
        raise LoadError(f"not a readable {kind} file: {one_line(exc)}") from exc
    with archive:
        members = archive.infolist()
        _check_declared(members, kind)
        for member in members:
            _check_inflated(archive, member, kind)


def _check_declared(members: list[zipfile.ZipInfo], kind: str) -> None:
    """The limits, against what the central directory declares; nothing is inflated."""
    refuse = f"refusing {kind} file:"
    if len(members) > MAX_MEMBERS:
        raise LoadError(f"{refuse} it has {len(members)} members, over the limit of {MAX_MEMBERS}")
    total = compressed = 0
    for member in members:
        _check_member(member, refuse)
        total, compressed = total + member.file_size, compressed + member.compress_size
        if total > MAX_TOTAL_BYTES:
            raise LoadError(
                f"{refuse} its members declare over {_size(MAX_TOTAL_BYTES)} uncompressed in total "
                f"(limit reached at member {member.filename!r}, which declares {_size(member.file_size)})"
            )
    # Many small members, each under the floor, must not add up to a bomb either.
    if _over_ratio(total, compressed):
        raise LoadError(
            f"{refuse} its members declare {_size(total)} uncompressed from {_size(compressed)} "
            f"({_ratio(total, compressed)}), over the limit of {MAX_RATIO}:1"
        )


def _check_member(member: zipfile.ZipInfo, refuse: str) -> None:
    name, size, packed = member.filename, member.file_size, member.compress_size
    if member.compress_type not in ALLOWED_METHODS:
        raise LoadError(
            f"{refuse} member {name!r} uses compression method {member.compress_type}; "
            f"only {' and '.join(ALLOWED_METHODS.values())} are allowed"
        )
    if member.flag_bits & 0x1:
        raise LoadError(f"{refuse} member {name!r} is encrypted")
    if size > MAX_MEMBER_BYTES:
        raise LoadError(
            f"{refuse} member {name!r} declares {_size(size)} uncompressed, over the limit of {_size(MAX_MEMBER_BYTES)}"
        )
    if _over_ratio(size, packed):
        raise LoadError(
            f"{refuse} member {name!r} declares {_size(size)} uncompressed from {_size(packed)} "
            f"({_ratio(size, packed)}), over the limit of {MAX_RATIO}:1"
        )


def _check_inflated(archive: zipfile.ZipFile, member: zipfile.ZipInfo, kind: str) -> None:
    """Inflate the member in chunks, allowing one byte past its declared size: a lying header shows up there."""
    probe = copy.copy(member)
    probe.file_size = member.file_size + 1  # zipfile stops at the declared size; read past it to see more
    probe.CRC = None  # the CRC covers the declared bytes only (and is checked when the parser reads them)
    inflated = 0
    try:
        with archive.open(probe) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                inflated += len(chunk)
                if inflated > member.file_size:
                    break
    except _BROKEN as exc:
        raise LoadError(f"not a readable {kind} file: {one_line(exc)}") from exc
    if inflated != member.file_size:
        real = "more than" if inflated > member.file_size else f"{_size(inflated)}, not"
        raise LoadError(
            f"refusing {kind} file: member {member.filename!r} inflates to {real} the {_size(member.file_size)} "
            "it declares"
        )


def _over_ratio(size: int, compressed: int) -> bool:
    return size > RATIO_FLOOR_BYTES and size > MAX_RATIO * compressed


def _ratio(size: int, compressed: int) -> str:
    return f"ratio {size / compressed:.0f}:1" if compressed else "nothing compressed"


def _size(count: int) -> str:
    return f"{count / MIB:.1f} MiB" if count >= MIB else f"{count} bytes"
