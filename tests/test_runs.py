"""Work per run of equal adjacent values (``segmentkit._common._runs``) against plain loops."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from segmentkit._common._runs import (
    keys_used,
    one_run_each,
    run_lengths,
    run_starts,
    run_sums,
    runs_holding,
)

keys_and_values = st.lists(
    st.tuples(st.integers(0, 3), st.floats(-1e6, 1e6, allow_nan=False), st.booleans()),
    max_size=60,
)


def _runs_by_loop(keys):
    runs = []
    for position, key in enumerate(keys):
        if position == 0 or key != keys[position - 1]:
            runs.append([])
        runs[-1].append(position)
    return runs


@given(keys_and_values)
def test_run_starts_lengths_and_counts(rows):
    keys = np.array([k for k, _, _ in rows], dtype=np.int64)
    skip = np.array([p for p, (_, _, s) in enumerate(rows) if s], dtype=np.int64)
    runs = _runs_by_loop(keys.tolist())
    starts = run_starts(keys)
    assert starts.tolist() == [run[0] for run in runs]
    every_run = np.arange(len(starts))
    assert run_lengths(every_run, starts, len(keys)).tolist() == [len(run) for run in runs]
    holding, counts = runs_holding(skip, starts)
    expected = {i: sum(p in set(skip.tolist()) for p in run) for i, run in enumerate(runs)}
    assert dict(zip(holding.tolist(), counts.tolist(), strict=True)) == {
        i: c for i, c in expected.items() if c
    }


@given(keys_and_values)
def test_run_sums_leave_out_the_skipped_values(rows):
    keys = np.array([k for k, _, _ in rows], dtype=np.int64)
    values = np.array([v for _, v, _ in rows], dtype=float)
    skipped = {p for p, (_, _, s) in enumerate(rows) if s}
    skip = np.array(sorted(skipped), dtype=np.int64)
    starts = run_starts(keys)
    sums = run_sums(values, starts, skip=skip, skip_runs=runs_holding(skip, starts)[0])
    runs = _runs_by_loop(keys.tolist())
    expected = [sum(values[p] for p in run if p not in skipped) for run in runs]
    np.testing.assert_allclose(sums, expected, rtol=1e-12, atol=1e-6)
    for run, total in zip(runs, sums, strict=True):
        if all(p in skipped for p in run):
            assert total == 0.0  # exactly, not a rounding residue


@given(st.lists(st.integers(0, 5), min_size=1, max_size=30))
def test_one_run_each_means_every_key_in_use_is_one_run(keys):
    values = np.array(keys, dtype=np.int64)
    starts = run_starts(values)
    used = keys_used(values[starts], int(values.max()) + 1)
    assert used.tolist() == [k in set(keys) for k in range(int(values.max()) + 1)]
    runs_per_key = {}
    for run in _runs_by_loop(keys):
        runs_per_key[keys[run[0]]] = runs_per_key.get(keys[run[0]], 0) + 1
    assert one_run_each(used, len(starts)) == all(n == 1 for n in runs_per_key.values())
