"""Factorising id columns without a hash table, when the ids pack into a small range.

Real exports number their customers and orders: integers, or text of one fixed width
such as ``C0021763`` or ``O000357557``. Such ids map one to one onto integers of a
range barely wider than their count (for text, each byte position is a digit of a
mixed-radix number whose base is the range of bytes seen there). Codes then come from
direct addressing (mark the keys present, number them by a running sum), several
times faster than hashing ten million values, and the distinct ids come out sorted:
by value for integers, in code point order for text.

Anything else (ids of several widths, missing values, sparse numbers, UUIDs) returns
``None`` and is factorised by hashing as before.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

#: Rows handled per step when packing text: the slice's bytes stay in cache.
_BLOCK_ROWS = 1 << 16

#: Rows summarised together when taking the per-position byte range: wide rows keep
#: numpy's reduction loop long (it vectorises along rows, which are short otherwise).
_ROWS_PER_REDUCTION = 64


_MASKED_INTEGERS = (
    pd.Int8Dtype,
    pd.Int16Dtype,
    pd.Int32Dtype,
    pd.Int64Dtype,
    pd.UInt8Dtype,
    pd.UInt16Dtype,
    pd.UInt32Dtype,
    pd.UInt64Dtype,
)


class DenseIds(NamedTuple):
    """Ids coded by direct addressing."""

    #: Code of each row (int32, or int64 past 2**31 distinct ids).
    codes: np.ndarray
    #: The distinct ids as text, sorted (see the module docstring).
    uniques: pd.Index
    #: For text ids, the smallest and largest byte seen at each position; ``None``
    #: for integers.
    byte_low: np.ndarray | None = None
    byte_high: np.ndarray | None = None


def dense_codes(values: pd.Series) -> DenseIds | None:
    """The ids coded by direct addressing, or ``None`` when they do not pack densely.

    Dense means into a range at most a few times their number of rows.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        return _dense_text_codes(values)
    if isinstance(dtype, pd.ArrowDtype) and _is_arrow_text(dtype.pyarrow_dtype):
        return _dense_text_codes(values)
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return _dense_integer_codes(values.to_numpy())
    if isinstance(dtype, _MASKED_INTEGERS):
        if values.hasnans:
            return None
        return _dense_integer_codes(values.to_numpy(dtype=dtype.numpy_dtype))
    return None


def _largest_span(n_rows: int) -> int:
    # Direct addressing costs memory and time in proportion to the span: allow a few
    # times the rows (a little more for small inputs, where it is cheap anyway).
    return max(4 * n_rows, 1 << 22)


def _codes_of_keys(keys: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes in key order, and the distinct keys.

    ``keys`` is consumed: when codes and keys have the same width, the codes are
    written over the keys.
    """
    present = np.zeros(span, dtype=bool)
    present[keys] = True
    distinct = np.flatnonzero(present)
    del present
    code_type = np.int32 if len(distinct) < 2**31 else np.int64
    # Numbering the distinct keys by a scatter of their positions: sequential writes,
    # cheaper than a running sum over the whole span.
    rank = np.zeros(span, dtype=code_type)
    rank[distinct] = np.arange(len(distinct), dtype=code_type)
    if keys.itemsize != np.dtype(code_type).itemsize:
        return rank[keys], distinct
    # Block by block into the keys' own memory: no fresh array of a code per row (the
    # kernel zeroes every new page, a cost that rivals the lookups at 10M rows), and
    # each block's keys are still in cache when overwritten.
    codes = keys.view(code_type)

    def look_up(part: list[slice]) -> None:
        for block in part:
            np.take(rank, keys[block], out=codes[block])

    _in_halves(look_up, len(keys))
    return codes, distinct


def _in_halves(work: Callable[[list[slice]], None], n_rows: int) -> None:
    """Run ``work`` over blocks of rows: large inputs as two halves in two threads.

    For numpy work that releases the GIL. When the other core is busy (coding another
    id column) the halves merely take turns; when it is free they run side by side.
    """
    blocks = [slice(first, first + _BLOCK_ROWS) for first in range(0, n_rows, _BLOCK_ROWS)]
    if n_rows < _THREADED_ROWS:
        work(blocks)
        return
    half = len(blocks) // 2
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(work, [blocks[:half], blocks[half:]]))


# --------------------------------------------------------------------------- integers


def _dense_integer_codes(numbers: np.ndarray) -> DenseIds | None:
    if len(numbers) == 0:
        return None
    low, high = int(numbers.min()), int(numbers.max())
    span = high - low + 1
    if span > _largest_span(len(numbers)) or high >= 2**63:
        return None
    key_type = np.int32 if span < 2**31 else np.int64
    # In int64 (small types would overflow): the differences fit the span.
    keys = (numbers.astype(np.int64, copy=False) - np.int64(low)).astype(key_type, copy=False)
    codes, distinct = _codes_of_keys(keys, span)
    import pyarrow as pa

    texts = pa.array(distinct + low, type=pa.int64()).cast(pa.string())
    return DenseIds(
        codes, pd.Index(pd.array(texts, dtype=pd.StringDtype("pyarrow", na_value=np.nan)))
    )


# --------------------------------------------------------------------------- text


def _is_arrow_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def _dense_text_codes(values: pd.Series) -> DenseIds | None:
    import pyarrow as pa

    texts = pa.array(values.array)
    chunks = texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]
    chunks = [chunk for chunk in chunks if len(chunk)]
    if not chunks or texts.null_count or not all(_is_arrow_text(c.type) for c in chunks):
        return None
    matrices = _byte_matrices(chunks)
    if matrices is None:
        return None
    width = matrices[0].shape[1]
    low, high = _byte_ranges(matrices, width)
    radix = high.astype(np.int64) - low + 1
    # Place values of the mixed-radix number, last byte least significant: numeric
    # order of the keys is then the byte order of the texts.
    place = np.ones(width, dtype=object)
    for position in range(width - 2, -1, -1):
        place[position] = place[position + 1] * int(radix[position + 1])
    span = int(place[0]) * int(radix[0])
    n_rows = len(values)
    if span > _largest_span(n_rows):
        return None
    keys = _pack(matrices, low, radix, place.astype(np.int64), span, n_rows)
    codes, distinct = _codes_of_keys(keys, span)
    del keys
    return DenseIds(codes, _texts_of_keys(distinct, low, radix, values.dtype), low, high)


def _byte_matrices(chunks: list[Any]) -> list[np.ndarray] | None:
    """Each chunk's UTF-8 bytes as a (rows, width) view, or ``None`` if widths differ."""

    matrices = []
    width = None
    for chunk in chunks:
        offsets, data = text_buffers(chunk)
        total = int(offsets[-1]) - int(offsets[0])
        if total % len(chunk):
            return None
        chunk_width = total // len(chunk)
        if chunk_width == 0 or (width is not None and chunk_width != width):
            return None
        if not _evenly_spaced(offsets, chunk_width):
            return None
        width = chunk_width
        matrices.append(data[int(offsets[0]) : int(offsets[-1])].reshape(len(chunk), width))
    return matrices


def text_buffers(texts: Any) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow string array's offsets (one more than its texts) and UTF-8 bytes.

    Numpy views of Arrow's buffers, no copy; text ``i`` is
    ``data[offsets[i]:offsets[i + 1]]``. Missing texts are not marked.
    """
    import pyarrow as pa

    buffers = texts.buffers()
    offset_type = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=offset_type)
    offsets = offsets[texts.offset : texts.offset + len(texts) + 1]
    if buffers[2] is None:  # only empty texts
        return offsets, np.zeros(0, dtype=np.uint8)
    return offsets, np.frombuffer(buffers[2], dtype=np.uint8)


def _evenly_spaced(offsets: np.ndarray, step: int) -> bool:
    """Whether every offset is the previous one plus ``step`` (every text that wide)."""
    pattern = np.arange(0, (_BLOCK_ROWS + 1) * step, step, dtype=np.int64)
    # Block by block against one pattern: no array of differences for every row.
    for first in range(0, len(offsets), _BLOCK_ROWS):
        block = offsets[first : first + _BLOCK_ROWS + 1]
        if not np.array_equal(block - block[0], pattern[: len(block)]):
            return False
    return True


def _byte_ranges(matrices: list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest byte seen at each position."""
    low = np.full(width, 255, dtype=np.uint8)
    high = np.zeros(width, dtype=np.uint8)
    group = _ROWS_PER_REDUCTION
    for matrix in matrices:
        whole = len(matrix) // group * group
        parts = [matrix[whole:]]
        if whole:
            wide = matrix[:whole].reshape(-1, group * width)
            parts += [
                wide.min(axis=0).reshape(group, width),
                wide.max(axis=0).reshape(group, width),
            ]
        for part in parts:
            if len(part):
                np.minimum(low, part.min(axis=0), out=low)
                np.maximum(high, part.max(axis=0), out=high)
    return low, high


def _pack(
    matrices: list[np.ndarray],
    low: np.ndarray,
    radix: np.ndarray,
    place: np.ndarray,
    span: int,
    n_rows: int,
) -> np.ndarray:
    # Unsigned keys: the sum of raw bytes times place values may pass the type's range
    # before the offset of the smallest bytes is taken off. Unsigned arithmetic wraps
    # modulo 2**bits, so the difference is still exact once it fits, which keys do.
    key_type = np.uint32 if span <= 2**32 else np.uint64
    bits = 32 if key_type is np.uint32 else 64
    varying = np.flatnonzero(radix > 1)
    offset = int(sum(int(low[p]) * int(place[p]) for p in varying)) % 2**bits
    offset = key_type(offset)
    keys = np.zeros(n_rows, dtype=key_type)
    start = 0
    for matrix in matrices:
        for first in range(0, len(matrix), _BLOCK_ROWS):
            block = matrix[first : first + _BLOCK_ROWS]
            out = keys[start : start + len(block)]
            for position in varying:
                out += block[:, position] * key_type(place[position])
            out -= offset
            start += len(block)
    return keys


#: Rows (or distinct ids) from which lookups and decoding run in two threads.
_THREADED_ROWS = 1 << 20


def _decode_block(
    keys: np.ndarray, out: np.ndarray, low: np.ndarray, radix: np.ndarray, key_type: Any
) -> None:
    """Write the bytes of each key's text into ``out`` (one row per key)."""
    # Digits peeled from the least significant position; a block at a time, so the
    # strided writes of each position stay in cache.
    rest = keys.astype(key_type)
    for position in range(len(low) - 1, -1, -1):
        if radix[position] == 1:
            out[:, position] = low[position]
            continue
        rest, digit = np.divmod(rest, key_type(radix[position]))
        np.add(digit, low[position], out=out[:, position], casting="unsafe")


def _texts_of_keys(
    distinct: np.ndarray, low: np.ndarray, radix: np.ndarray, dtype: Any
) -> pd.Index:
    """The texts the distinct keys were packed from (the packing is one to one)."""
    import pyarrow as pa

    width = len(low)
    matrix = np.empty((len(distinct), width), dtype=np.uint8)
    # 32-bit unsigned division when the keys fit: several times faster than in int64.
    key_type = np.uint32 if len(distinct) == 0 or int(distinct[-1]) < 2**32 else np.uint64

    def decode(part: list[slice]) -> None:
        for block in part:
            _decode_block(distinct[block], matrix[block], low, radix, key_type)

    _in_halves(decode, len(distinct))
    total = matrix.size
    offset_type = pa.large_string() if total >= 2**31 else pa.string()
    offsets = np.arange(0, total + 1, width, dtype=np.int64 if total >= 2**31 else np.int32)
    texts = pa.Array.from_buffers(
        offset_type,
        len(distinct),
        [None, pa.py_buffer(offsets), pa.py_buffer(matrix.reshape(-1))],
    )
    if isinstance(dtype, pd.ArrowDtype):
        return pd.Index(pd.array(texts.cast(dtype.pyarrow_dtype), dtype=dtype))
    return pd.Index(pd.array(texts, dtype=dtype))
