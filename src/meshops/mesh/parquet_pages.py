"""Parquet dictionary pages read without the rows: a string column chunk's distinct values,
when its dictionary page holds every one of them (`chunk_dictionary`).

A contract rule on a string column's values (an `IN` list, a pattern) is decided for a whole
row group by its dictionary when no data page fell back to PLAIN encoding: then no row holds
a value outside the dictionary. pyarrow exposes neither a page's encoding nor the dictionary
page alone, so this module reads the page headers itself (Thrift compact protocol, the few
types a page header uses) and decodes the dictionary page (PLAIN byte arrays). Anything it
does not know -- another physical type or codec, a large dictionary, an unknown page --
answers None, and the caller reads the rows with Arrow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# A dictionary page of at most this many values is decoded here (a Python loop); a
# larger one is not looked at.
MAX_DICTIONARY_VALUES = 4096
_DICTIONARY_PAGE, _DATA_PAGE, _DATA_PAGE_V2 = 2, 0, 3  # Parquet PageType
# Parquet Encoding: a dictionary page is PLAIN (0) or PLAIN_DICTIONARY (2); a data page
# of dictionary indices is PLAIN_DICTIONARY (2) or RLE_DICTIONARY (8)
_DICTIONARY_PAGE_ENCODINGS, _INDEX_ENCODINGS = (0, 2), (2, 8)
CODECS = {
    "UNCOMPRESSED": None,
    "SNAPPY": "snappy",
    "GZIP": "gzip",
    "ZSTD": "zstd",
    "BROTLI": "brotli",
    "LZ4_RAW": "lz4_raw",
}


def _any_values(values: pa.Array) -> bool:
    return True


def chunk_dictionary(
    path: str, chunk: pq.ColumnChunkMetaData, worth: Callable[[pa.Array], bool] = _any_values
) -> pa.Array | None:
    """The values of a string column chunk's dictionary page, when that page holds every
    value of the chunk: each of its data pages is dictionary-encoded (none fell back to
    PLAIN). None when that is not so, or not known (no dictionary page, another physical
    type or codec, a dictionary over MAX_DICTIONARY_VALUES values, a page this reader does
    not know), or when `worth(values)` says the answer is not wanted: then the data pages'
    headers are not read. Only the page headers and the dictionary page are read and
    decoded, not the rows.

    The page encodings are read from the page headers (Thrift compact protocol): pyarrow
    exposes neither them nor the dictionary page alone."""
    if (
        chunk.physical_type != "BYTE_ARRAY"
        or not chunk.has_dictionary_page
        or chunk.compression not in CODECS
        or not chunk.dictionary_page_offset
    ):
        return None
    start = int(chunk.dictionary_page_offset)
    end = start + int(chunk.total_compressed_size)
    try:
        with open(path, "rb") as file:
            dictionary, position = _dictionary_page(file, start, end, CODECS[chunk.compression])
            if dictionary is None or not worth(dictionary):
                return None
            indexed = _indexed_values(file, position, end)
    except (OSError, IndexError, KeyError, TypeError, ValueError, pa.ArrowException):
        return None  # a page this reader does not understand: Arrow reads the rows
    return dictionary if indexed == chunk.num_values else None


def _dictionary_page(
    file: BinaryIO, start: int, end: int, codec: str | None
) -> tuple[pa.Array | None, int]:
    """The values of the dictionary page at `start` (None: not one this reader decodes),
    and where the next page begins."""
    header, position = _page_header(file, start, end)
    page = header.get(7)  # dictionary_page_header: num_values, encoding
    if header[1] != _DICTIONARY_PAGE or page is None:
        return None, position
    if page[2] not in _DICTIONARY_PAGE_ENCODINGS or page[1] > MAX_DICTIONARY_VALUES:
        return None, position
    file.seek(position)
    body = file.read(header[3])  # compressed_page_size
    if len(body) != header[3]:
        raise ValueError("dictionary page cut short")
    plain = pa.Codec(codec).decompress(body, header[2]) if codec else body
    return _plain_strings(bytes(plain), page[1]), position + header[3]


def _indexed_values(file: BinaryIO, position: int, end: int) -> int | None:
    """The values (nulls included) of the data pages from `position` to `end`, when every
    one of them holds dictionary indices; None at the first that does not (a PLAIN page: the
    dictionary overflowed) or that this reader does not know."""
    values = 0
    while position < end:
        header, position = _page_header(file, position, end)
        kind = header[1]
        if kind == _DATA_PAGE and header[5][2] in _INDEX_ENCODINGS:
            values += header[5][1]
        elif kind == _DATA_PAGE_V2 and header[8][4] in _INDEX_ENCODINGS:
            values += header[8][1]
        else:
            return None
        position += header[3]
    return values


def _page_header(file: BinaryIO, position: int, end: int) -> tuple[dict[int, Any], int]:
    """The page header at `position` and where the page's body begins. Headers are small
    (a page's statistics make them longer): read a little, more if it was not enough."""
    for size in (1 << 10, 1 << 16, 1 << 20):
        file.seek(position)
        raw = file.read(min(size, end - position))
        try:
            header, used = _thrift_struct(raw, 0)
        except IndexError:
            if len(raw) < size:
                raise  # the chunk ends inside this header
            continue
        return header, position + used
    raise ValueError("a page header over 1 MiB")


def _plain_strings(plain: bytes, count: int) -> pa.Array:
    """`count` PLAIN-encoded BYTE_ARRAY values (a 4-byte little-endian length, then the
    bytes) as UTF-8 strings; ArrowInvalid when they are not UTF-8."""
    offsets, pieces, position = [0], [], 0
    for _ in range(count):
        size = int.from_bytes(plain[position : position + 4], "little")
        piece = plain[position + 4 : position + 4 + size]
        if len(piece) != size:
            raise ValueError("dictionary page shorter than its values")
        pieces.append(piece)
        offsets.append(offsets[-1] + size)
        position += 4 + size
    buffers = [
        None,
        pa.py_buffer(np.array(offsets, dtype=np.int32)),
        pa.py_buffer(b"".join(pieces)),
    ]
    strings = pa.Array.from_buffers(pa.string(), count, buffers)
    strings.validate(full=True)
    return strings


def _varint(raw: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def _thrift_struct(raw: bytes, position: int) -> tuple[dict[int, Any], int]:
    """One Thrift compact-protocol struct: {field id: value} (nested structs as dicts,
    lists as lists; binaries as bytes; doubles and maps skipped as None)."""
    fields: dict[int, Any] = {}
    last = 0
    while True:
        byte = raw[position]
        position += 1
        if byte == 0:
            return fields, position
        kind, delta = byte & 0x0F, byte >> 4
        if delta:
            last += delta
        else:
            value, position = _varint(raw, position)
            last = _zigzag(value)
        fields[last], position = _thrift_value(raw, position, kind)


def _thrift_value(raw: bytes, position: int, kind: int) -> tuple[Any, int]:
    if kind in (1, 2):  # a struct field's boolean is its type
        return kind == 1, position
    if kind == 3:
        return raw[position], position + 1
    if kind in (4, 5, 6):
        value, position = _varint(raw, position)
        return _zigzag(value), position
    if kind == 7:
        return None, position + 8
    if kind == 8:
        size, position = _varint(raw, position)
        if position + size > len(raw):
            raise IndexError("binary value past the end of the bytes read")
        return raw[position : position + size], position + size
    if kind in (9, 10):
        head = raw[position]
        position += 1
        size, element = head >> 4, head & 0x0F
        if size == 15:
            size, position = _varint(raw, position)
        items = []
        for _ in range(size):
            if element in (1, 2):  # a boolean in a list is one byte
                item: Any = raw[position] == 1
                position += 1
            else:
                item, position = _thrift_value(raw, position, element)
            items.append(item)
        return items, position
    if kind == 11:
        size, position = _varint(raw, position)
        if size:
            key, value = raw[position] >> 4, raw[position] & 0x0F
            position += 1
            for _ in range(size):
                _, position = _thrift_value(raw, position, key)
                _, position = _thrift_value(raw, position, value)
        return None, position
    if kind == 12:
        return _thrift_struct(raw, position)
    raise ValueError(f"unknown Thrift compact type {kind}")
