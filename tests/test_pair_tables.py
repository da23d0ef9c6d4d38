"""The (customer, value) pair tables the pandas features and the affinity table share."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

import segmentkit as sk
import segmentkit.features._numpy as numpy_path
from segmentkit._common._sorting import stable_order
from segmentkit.features._numpy import _Lines
from segmentkit.features._pairs import PairTable


@st.composite
def order_lines(draw):
    """Lines listed order by order (each order one run), customers and values drawn."""
    n_orders = draw(st.integers(1, 30))
    customers = draw(st.lists(st.integers(0, 5), min_size=n_orders, max_size=n_orders))
    sizes = draw(st.lists(st.integers(1, 4), min_size=n_orders, max_size=n_orders))
    order = np.repeat(np.arange(n_orders), sizes)
    n = len(order)
    values = np.array(draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n)))
    amounts = np.array(draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)), dtype=float)
    mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return np.repeat(np.array(customers), sizes), order, values, amounts, mask


def _lines(customer: np.ndarray, order: np.ndarray) -> _Lines:
    tx = pd.DataFrame({"order_key": order.astype(np.int32), "is_return": False})
    ns = np.zeros(len(order), dtype=np.int64)
    return _Lines(tx, customer.astype(np.intp), ns, 6, 0)


@settings(max_examples=150, deadline=None)
@given(order_lines())
def test_pair_questions_equal_a_pandas_group_by(lines):
    customer, order, values, amounts, mask = lines
    rows = _lines(customer, order)
    # Sorting the runs gives exactly the stable sort of the lines by customer.
    np.testing.assert_array_equal(rows.by_customer, np.argsort(customer, kind="stable"))
    np.testing.assert_array_equal(rows.customer_in_order, np.sort(customer))
    table = PairTable.build(rows.by_customer, rows.customer_in_order, values, 4)

    frame = pd.DataFrame({"c": customer, "v": values, "a": amounts, "o": order, "m": mask})
    known = frame[frame["v"] >= 0]
    grouped = known.groupby(["c", "v"])
    assert list(zip(table.customer, table.value, strict=True)) == list(grouped.groups)
    np.testing.assert_array_equal(table.any(mask), grouped["m"].any().to_numpy())
    picked = known.assign(a=known["a"].where(known["m"], 0.0))
    np.testing.assert_array_equal(
        table.sum(amounts, mask), picked.groupby(["c", "v"])["a"].sum().to_numpy()
    )
    chosen = known[known["m"]].groupby(["c", "v"])["o"].nunique()
    want = chosen.reindex(list(grouped.groups), fill_value=0).to_numpy()
    for adjacent in (False, True):  # orders are runs here: both ways hold
        np.testing.assert_array_equal(table.distinct(order, mask, adjacent=adjacent), want)
    times = amounts.astype(np.int64) * 10 + order
    first, last = table.span(times, mask)
    timed = known.assign(t=times[frame["v"] >= 0]).where(known["m"])
    spans = timed.assign(c=known["c"], v=known["v"]).groupby(["c", "v"])["t"]
    earliest, latest = spans.min().to_numpy(), spans.max().to_numpy()
    none = np.isnan(earliest)  # no line of the pair in the mask
    assert (first[none] == np.iinfo(np.int64).max).all()
    assert (last[none] == np.iinfo(np.int64).min).all()
    np.testing.assert_array_equal(first[~none], earliest[~none].astype(np.int64))
    np.testing.assert_array_equal(last[~none], latest[~none].astype(np.int64))
    held = table.any(mask)
    per_customer = pd.Series(held, index=table.customer).groupby(level=0).sum()
    np.testing.assert_array_equal(
        table.count_per_customer(held, 6), per_customer.reindex(range(6), fill_value=0)
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**20), max_size=200), st.integers(0, 3))
def test_stable_order_is_a_stable_argsort(keys, extra_bits):
    keys_ = np.array(keys, dtype=np.int64)
    n_keys = (int(keys_.max()) + 1 if len(keys_) else 1) << extra_bits
    np.testing.assert_array_equal(stable_order(keys_, n_keys), np.argsort(keys_, kind="stable"))


def test_pair_tables_built_on_two_threads_give_the_same_features(monkeypatch):
    raw, mapping = sk.datasets.load_sample()
    tx = sk.Transactions.from_frame(raw, **mapping)
    alone = sk.extract_features(tx).frame
    table = sk.affinity(tx)
    monkeypatch.setattr(numpy_path, "_THREADED_LINES", 0)  # the sample is small
    threads = []
    build = PairTable.build.__func__

    def recorded(cls, *args):
        threads.append(threading.current_thread() is threading.main_thread())
        return build(cls, *args)

    monkeypatch.setattr(PairTable, "build", classmethod(recorded))
    pd.testing.assert_frame_equal(sk.extract_features(tx).frame, alone)
    assert threads
    assert not any(threads)  # every table built on a worker thread
    threads.clear()
    pd.testing.assert_frame_equal(sk.affinity(tx), table)
    assert threads
    assert not any(threads)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.integers(0, 3),
            st.sampled_from([0.0, 1.0, 2.5, 4.0]),
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_the_top_value_of_grouped_pairs_equals_the_scattered_reduction(pairs):
    # Distinct (customer, value) pairs listed customer by customer, spend with ties; a
    # pair that is not held (only returns, say) must never be the top one.
    pairs = sorted({(c, v): (s, h) for c, v, s, h in pairs}.items())
    customer = np.array([c for (c, _), _ in pairs], dtype=np.intp)
    value = np.array([v for (_, v), _ in pairs], dtype=np.int64)
    spend = np.array([s for _, (s, _) in pairs], dtype=float)
    held = np.array([h for _, (_, h) in pairs], dtype=bool)
    names = pd.Index(["tents", "Boots", "axes", "boots"])  # codes not in name order
    total = np.bincount(customer[held], weights=spend[held], minlength=6)
    starts = np.flatnonzero(np.r_[True, customer[1:] != customer[:-1]]) if len(pairs) else None
    grouped = numpy_path._top_of_pairs(
        customer, value, spend.copy(), names, 6, total, customer_starts=starts, held=held
    )
    scattered = numpy_path._top_of_pairs(customer[held], value[held], spend[held], names, 6, total)
    np.testing.assert_array_equal(grouped["top"], scattered["top"])
    np.testing.assert_array_equal(grouped["share"], scattered["share"])
