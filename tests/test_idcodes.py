"""Ids coded by direct addressing (``segmentkit.contracts._idcodes``): same meaning as hashing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit.contracts import _idcodes
from segmentkit.contracts._idcodes import dense_codes

ARROW_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)


def _decoded(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    dense = dense_codes(values)
    assert dense is not None, "expected the direct-addressing path"
    return dense.codes, dense.uniques


def _check_codes(values: pd.Series) -> None:
    codes, uniques = _decoded(values)
    assert len(codes) == len(values)
    assert uniques.is_unique
    assert uniques.is_monotonic_increasing or values.dtype.kind in "iu"
    # Every row decodes to its own text.
    assert list(uniques[codes]) == [str(v) for v in values]
    # Codes are dense: every distinct id is used.
    assert set(codes.tolist()) == set(range(len(uniques)))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=6).flatmap(
        lambda width: st.lists(
            st.text(
                alphabet=st.sampled_from("AZaz09-_.é€ "), min_size=width, max_size=width
            ).filter(lambda t: len(t.encode()) == width),
            min_size=1,
            max_size=60,
        )
    )
)
def test_fixed_width_texts_decode_to_themselves_in_code_point_order(texts: list[str]) -> None:
    values = pd.Series(texts, dtype=ARROW_TEXT)
    dense = dense_codes(values)
    if dense is None:  # a sparse byte range can exceed the span allowed: hashing then
        return
    _check_codes(values)
    assert list(dense.uniques) == sorted(set(texts))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=-(2**40), max_value=2**40), min_size=1, max_size=50),
    st.sampled_from(["int64", "int32", "Int64"]),
)
def test_integers_decode_to_their_text(numbers: list[int], dtype: str) -> None:
    if dtype == "int32":
        numbers = [n % 2**31 for n in numbers]
    values = pd.Series(numbers, dtype=dtype)
    dense = dense_codes(values)
    span = max(numbers) - min(numbers) + 1
    if span > 1 << 22:
        assert dense is None
        return
    _check_codes(values)


def test_small_integer_types_do_not_overflow() -> None:
    values = pd.Series([-100, 100, 5, -100], dtype="int8")
    codes, uniques = _decoded(values)
    assert list(uniques) == ["-100", "5", "100"]
    assert codes.tolist() == [0, 2, 1, 0]


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(["ab", "abc"], dtype=ARROW_TEXT),  # widths differ
        pd.Series(["ab", None, "ab"], dtype=ARROW_TEXT),  # missing id
        pd.Series([1, None], dtype="Int64"),
        pd.Series([0, 10**12]),  # sparse numbers
        pd.Series(["a", "b"], dtype=object),  # Python objects: hashing path
        pd.Series([1.0, 2.0]),
    ],
)
def test_other_ids_are_left_to_hashing(values: pd.Series) -> None:
    assert dense_codes(values) is None


@pytest.mark.parametrize("block_rows", [1, 3, 1 << 16])
def test_texts_decoded_block_by_block_and_in_two_threads(monkeypatch, block_rows) -> None:
    # Small blocks and a low threshold run the paths that large inputs take.
    monkeypatch.setattr(_idcodes, "_BLOCK_ROWS", block_rows)
    monkeypatch.setattr(_idcodes, "_THREADED_ROWS", 2)
    rng = np.random.default_rng(1)
    values = pd.Series([f"O{n:07d}" for n in rng.integers(0, 500, 300)], dtype=ARROW_TEXT)
    _check_codes(values)


@pytest.mark.parametrize("odd_row", [0, 65_535, 65_536, 65_537, 199_999])
def test_one_text_of_another_width_anywhere_is_left_to_hashing(odd_row: int) -> None:
    # The widths are checked block by block: the odd text may sit at a block's edge.
    texts = np.array([f"C{i % 90_000:05d}" for i in range(200_000)], dtype=object)
    wide, narrow = f"{texts[odd_row]}X", texts[odd_row][:-1]
    texts[odd_row] = wide
    texts[(odd_row + 1) % len(texts)] = narrow  # total length unchanged
    assert dense_codes(pd.Series(texts, dtype=ARROW_TEXT)) is None


def test_keys_past_32_bits_stay_exact() -> None:
    # 5 positions with 256 possible bytes each would be 2**40 keys; a sparse sample
    # exceeds the span allowed, so a dense 3-position block with a wide alphabet is
    # used: 91**3 > 2**19 keys, packed without wrapping.
    rng = np.random.default_rng(0)
    alphabet = np.array([chr(c) for c in range(0x21, 0x7C)])
    rows = rng.integers(0, len(alphabet), size=(5000, 3))
    texts = ["".join(row) for row in alphabet[rows]]
    values = pd.Series(texts, dtype=ARROW_TEXT)
    _check_codes(values)


def test_transactions_give_the_same_features_on_either_path() -> None:
    """Text ids (direct addressing) and the same ids as Python objects (hashing)."""
    raw, mapping = sk.datasets.load_sample()
    arrow = raw.copy()
    objects = raw.copy()
    for name in ("customer_id", "order_id", "product_id"):
        column = mapping[name]
        arrow[column] = raw[column].astype(str).str.zfill(12).astype(ARROW_TEXT)
        objects[column] = arrow[column].astype(object)
    # Households are numbered densely; baskets and products (11-digit numbers) are
    # too sparse and take the hashing path on both sides.
    assert dense_codes(arrow[mapping["customer_id"]]) is not None
    fast = sk.extract_features(sk.Transactions.from_frame(arrow, **mapping)).frame
    hashed = sk.extract_features(sk.Transactions.from_frame(objects, **mapping)).frame
    pd.testing.assert_frame_equal(fast, hashed)
