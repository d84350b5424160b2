"""Patterns a regex engine need not run: LITERAL CLASS{m,n} LITERAL (ASCII literals, a
digit, letter or alphanumeric class), recognised in RE2 syntax (`simple_pattern`) and
matched against an Arrow string array with Arrow and NumPy kernels (`class_matches`):
prefix, suffix and length decide a full match with the class test of the middle, exactly
as RE2 would. The contract scan (contract_scan.py) sends a pattern rule here when its
pattern is one; any other pattern goes to RE2.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# built from buffers: pa.scalar() of a Python object imports pandas (see contract_scan)
_FALSE = pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(b"\x00")])[0]

# ASCII characters that stand for themselves in RE2 outside a class
_PLAIN = frozenset(string.ascii_letters + string.digits + " @_-,:;/%&=!<>'\"~`#")
# punctuation a backslash makes literal
_ESCAPABLE = frozenset(".^$*+?()[]{}|\\/-")
_DIGITS = frozenset(string.digits)
_LETTERS = frozenset(string.ascii_letters)
# the class kernels: true when a string is non-empty and every character is in the set
_CLASS_KERNELS: dict[frozenset[str], str] = {
    _DIGITS: "ascii_is_decimal",
    _LETTERS: "ascii_is_alpha",
    _DIGITS | _LETTERS: "ascii_is_alnum",
}
_MAX_REPEAT = 1000  # RE2 rejects larger counts: leave those patterns to its error


@dataclass(frozen=True)
class SimplePattern:
    """A full match of `prefix`, then `low`..`high` characters of the class `kernel` tests
    (none: `prefix` alone is the pattern), then `suffix`."""

    prefix: str
    suffix: str = ""
    kernel: str | None = None
    low: int = 0
    high: int | None = None


@lru_cache(maxsize=256)  # each batch of a column asks again for the same pattern
def simple_pattern(pattern: str) -> SimplePattern | None:
    """`pattern` as a SimplePattern when it is one exactly, else None (RE2 decides)."""
    items = _pattern_items(pattern)
    if items is None:
        return None
    literals: list[list[str]] = [[]]
    quantified: list[tuple[str, int, int | None]] = []
    for item in items:
        if isinstance(item, str):
            literals[-1].append(item)
        else:
            quantified.append(item)
            literals.append([])
    if len(quantified) > 1:
        return None
    prefix = "".join(literals[0])
    if not quantified:
        return SimplePattern(prefix)
    kernel, low, high = quantified[0]
    return SimplePattern(prefix, "".join(literals[1]), kernel, low, high)


_Item = str | tuple[str, int, int | None]  # a literal character, or (kernel, low, high)


def _pattern_items(pattern: str) -> list[_Item] | None:
    """The literal characters and quantified classes of `pattern`, in order; None for
    anything else (alternation, groups, dot, other escapes or classes, lazy quantifiers)."""
    text = pattern.removeprefix("^")
    if text.endswith("$") and not _escaped_end(text):
        text = text[:-1]
    items: list[_Item] = []
    i = 0
    while i < len(text):
        atom = _atom(text, i)
        if atom is None:
            return None
        item, i = atom
        quantifier = _quantifier(text, i)
        if quantifier is None:
            return None
        (low, high), i = quantifier
        if isinstance(item, str) and (low, high) == (1, 1):
            items.append(item)
        elif isinstance(item, frozenset) and item in _CLASS_KERNELS:
            items.append((_CLASS_KERNELS[item], low, high))
        else:
            return None  # a quantified literal, or a class without a kernel
    return items


def _escaped_end(text: str) -> bool:
    backslashes = len(text[:-1]) - len(text[:-1].rstrip("\\"))
    return backslashes % 2 == 1


def _atom(text: str, i: int) -> tuple[str | frozenset[str], int] | None:
    char = text[i]
    if char in _PLAIN:
        return char, i + 1
    if char == "\\" and i + 1 < len(text):
        escaped = text[i + 1]
        if escaped == "d":  # RE2's \d is ASCII 0-9
            return _DIGITS, i + 2
        return (escaped, i + 2) if escaped in _ESCAPABLE else None
    if char == "[":
        end = text.find("]", i + 1)
        members = _class_members(text[i + 1 : end]) if end > i + 1 else None
        return (members, end + 1) if members is not None else None
    return None


def _class_members(body: str) -> frozenset[str] | None:
    r"""The characters of a class body made of ranges a-z, A-Z, 0-9 (or parts of them) and
    \d; None for negation, other characters or escapes."""
    members: set[str] = set()
    i = 0
    while i < len(body):
        if body.startswith("\\d", i):
            members |= _DIGITS
            i += 2
            continue
        low, dash, high = (body[i : i + 3].ljust(3)[k] for k in range(3))
        if dash != "-" or not _same_run(low, high):
            return None
        members |= {chr(c) for c in range(ord(low), ord(high) + 1)}
        i += 3
    return frozenset(members)


def _same_run(low: str, high: str) -> bool:
    runs = (string.digits, string.ascii_lowercase, string.ascii_uppercase)
    return any(low in run and high in run and low <= high for run in runs)


def _quantifier(text: str, i: int) -> tuple[tuple[int, int | None], int] | None:
    """The repetition bounds after position i and where they end; None for lazy or
    possessive forms and bounds RE2 would reject."""
    found: tuple[int, int | None]
    if i >= len(text) or text[i] not in "*+?{":
        return (1, 1), i
    if text[i] != "{":
        found, i = {"*": (0, None), "+": (1, None), "?": (0, 1)}[text[i]], i + 1
    else:
        end = text.find("}", i)
        bounds = text[i + 1 : end].split(",") if end > i else []
        if not 1 <= len(bounds) <= 2 or not all(b.isdigit() for b in bounds[:1]):
            return None
        if len(bounds) == 2 and bounds[1] and not bounds[1].isdigit():
            return None
        low = int(bounds[0])
        high = low if len(bounds) == 1 else (int(bounds[1]) if bounds[1] else None)
        if max(low, high or 0) > _MAX_REPEAT or (high is not None and high < low):
            return None
        found, i = (low, high), end + 1
    if i < len(text) and text[i] in "?+*{":
        return None
    return found, i


def class_matches(values: pa.Array, pattern: SimplePattern) -> pa.Array:
    """Per value: does it fully match `pattern`, one with a class (null for null values).
    The literals are
    ASCII, so their byte and character lengths agree; the middle's byte length is its
    character length whenever the class kernel accepts it (ASCII only).

    The values whose prefix, suffix and middle length fit are the candidates. When the
    bytes of the class in the whole batch show that every candidate's middle is in the
    class (`_middles_in_class`: usually so), the candidates are the matches; otherwise each
    middle is tested on its own (`_middles_fit`)."""
    assert pattern.kernel is not None, "a literal pattern is an equality"
    candidates = _ends_fit(values, pattern)
    if _middles_in_class(values, candidates, pattern):
        return candidates
    return pc.and_(candidates, _bits(_middles_fit(values, pattern)))


def _ends_fit(values: pa.Array, pattern: SimplePattern) -> pa.Array:
    """Per value: are its prefix, suffix and middle length those of the pattern (null for
    null values)."""
    ends = pc.and_(pc.starts_with(values, pattern.prefix), pc.ends_with(values, pattern.suffix))
    return pc.and_(ends, _bits(_middle_lengths_fit(values, pattern)))


def _middle_lengths_fit(values: pa.Array, pattern: SimplePattern) -> np.ndarray[Any, Any]:
    """Per value: is its length that of the prefix, `low`..`high` characters and the
    suffix (in bytes: a middle in the class is ASCII)."""
    offsets = _offsets(values)
    middle = np.diff(offsets)
    middle -= len(pattern.prefix) + len(pattern.suffix)
    fits: np.ndarray[Any, Any] = middle >= pattern.low
    if pattern.high is not None:
        fits &= middle <= pattern.high
    return fits


# The bytes of the values that are not candidates are gathered and counted apart; when
# they are more than this share of the batch's bytes, the middles are tested one by one.
OTHER_BYTES_SHARE = 0.25
# Bytes classified at a time: the scratch arrays stay in the CPU's caches, and are small
# enough to come from the allocator's free lists rather than fresh pages.
CLASS_CHUNK = 1 << 16


def _middles_in_class(
    values: pa.Array,
    candidates: pa.Array,
    pattern: SimplePattern,
    other_share: float = OTHER_BYTES_SHARE,
) -> bool:
    """Is the middle of every candidate (true in `candidates`) all of the class, decided by
    counting instead of testing each middle: the class's bytes in the candidates (all the
    batch's bytes less those of the other values) less their literals' class bytes equal
    the candidates' middle bytes exactly when no middle holds a byte outside the class.
    False also when that is not worth counting (the other values hold too many bytes)."""
    assert pattern.kernel is not None
    if len(values) == 0:
        return True
    offsets = _offsets(values)
    flags = _true_flags(candidates)
    others = np.flatnonzero(~flags)
    starts, lengths = offsets[:-1][others], np.diff(offsets)[others]
    base, total = int(offsets[0]), int(offsets[-1]) - int(offsets[0])
    other_bytes = int(lengths.sum())
    if other_bytes > other_share * total:
        return False
    data = np.frombuffer(values.buffers()[2] or b"", np.uint8, total, base)
    in_class = _class_bytes(data, pattern.kernel)
    if other_bytes:
        # the positions of every byte of the other values, run after run
        firsts = np.repeat(starts - base - (np.cumsum(lengths) - lengths), lengths)
        in_class -= _class_bytes(data[firsts + np.arange(other_bytes)], pattern.kernel)
    count = len(values) - len(others)
    literal_class = sum(_class_of(pattern.kernel, c) for c in pattern.prefix + pattern.suffix)
    middle_bytes = total - other_bytes - count * (len(pattern.prefix) + len(pattern.suffix))
    return in_class - count * literal_class == middle_bytes


def _true_flags(flags: pa.Array) -> np.ndarray[Any, Any]:
    """A boolean array's true values (null: false) as a NumPy bool array."""
    filled = pc.fill_null(flags, _FALSE) if flags.null_count else flags
    bits = np.frombuffer(filled.buffers()[1], np.uint8)
    unpacked = np.unpackbits(bits, count=filled.offset + len(filled), bitorder="little")
    return unpacked[filled.offset :].view(np.bool_)


def _class_of(kernel: str, char: str) -> bool:
    return char in _KERNEL_CLASSES[kernel]


_KERNEL_CLASSES = {kernel: members for members, kernel in _CLASS_KERNELS.items()}


def _class_bytes(data: np.ndarray[Any, Any], kernel: str) -> int:
    """How many of the bytes are ASCII characters of the class (multi-byte UTF-8
    characters have no byte below 0x80, so none of theirs is counted)."""
    found = 0
    for start in range(0, len(data), CLASS_CHUNK):
        chunk = data[start : start + CLASS_CHUNK]
        if kernel != "ascii_is_alpha":  # digits: 0x30..0x39
            found += int(np.count_nonzero(np.less(chunk - np.uint8(0x30), 10)))
        if kernel != "ascii_is_decimal":  # letters: 0x41..0x5A, 0x61..0x7A
            folded = chunk | np.uint8(0x20)
            found += int(np.count_nonzero(np.less(folded - np.uint8(0x61), 26)))
    return found


def _middles_fit(values: pa.Array, pattern: SimplePattern) -> np.ndarray[Any, Any]:
    """Per value (whatever its prefix and suffix): is its middle -- the bytes between the
    prefix's length and the suffix's length -- `low`..`high` characters of the class.

    The middles are not copied out (slicing every string costs twice the rest of the
    check): a second string array over the same data buffer, with two offsets per value,
    holds each middle at an even position and the bytes between two middles at the odd
    ones, and the class kernel runs over it once. A middle cut inside a multi-byte
    character holds a non-ASCII byte, which no class accepts; such a value fails its
    prefix or suffix test anyway."""
    assert pattern.kernel is not None
    count, fixed = len(values), len(pattern.prefix) + len(pattern.suffix)
    offsets = _offsets(values)
    if count and int(offsets[-1]) > np.iinfo(offsets.dtype).max - fixed:
        offsets = offsets.astype(np.int64)  # adding the prefix's length must not wrap
    starts, stops = offsets[:-1], offsets[1:]
    middle = stops - starts
    middle -= fixed  # negative when the value is shorter than its prefix and suffix
    fits: np.ndarray[Any, Any] = middle >= pattern.low
    if pattern.high is not None:
        fits &= middle <= pattern.high
    if count == 0:
        return fits
    # even bounds: where each middle starts; odd: where it ends (both within the value)
    bounds = np.empty(2 * count + 1, offsets.dtype)
    first, last = bounds[0:-1:2], bounds[1::2]
    np.add(starts, len(pattern.prefix), out=first)
    np.subtract(stops, len(pattern.suffix), out=last)
    if int(middle.min()) < 0:  # some value is shorter than its prefix and suffix:
        np.minimum(first, stops, out=first)  # keep its pieces inside it, in order
        np.maximum(last, first, out=last)
    bounds[-1] = stops[-1]
    data = values.buffers()[2] or pa.py_buffer(b"")
    piece_type = pa.large_string() if offsets.dtype == np.int64 else pa.string()
    pieces = pa.Array.from_buffers(piece_type, 2 * count, [None, pa.py_buffer(bounds), data])
    accepted = pc.call_function(pattern.kernel, [pieces])
    in_class = np.unpackbits(
        np.frombuffer(accepted.buffers()[1], np.uint8), count=2 * count, bitorder="little"
    )[0::2].view(np.bool_)
    if pattern.low == 0:
        in_class |= middle == 0  # an empty middle is in every class
    fits &= in_class
    return fits


def _offsets(values: pa.Array) -> np.ndarray[Any, Any]:
    """The value offsets of a string or large string array, viewed without copying."""
    dtype = np.dtype(np.int64 if pa.types.is_large_string(values.type) else np.int32)
    return np.frombuffer(
        values.buffers()[1],
        dtype=dtype,
        count=len(values) + 1,
        offset=values.offset * dtype.itemsize,
    )


def _bits(flags: np.ndarray[Any, Any]) -> pa.Array:
    """A NumPy bool array as an Arrow boolean array (no nulls), without converting."""
    packed = np.packbits(flags, bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(flags), [None, pa.py_buffer(packed)])
