"""Runs of equal adjacent values: order lines usually come grouped by order.

Exports list an order's lines together, so ten million lines hold a few million
runs of one order each. Work done per run instead of per line (scattering an
order's customer, checking that an order has one customer) touches memory at
random a few million times instead of ten million; finding the runs is one
sequential pass. Lines that are not grouped still give correct results: each
line is then its own run.
"""

from __future__ import annotations

import numpy as np


def run_starts(values: np.ndarray) -> np.ndarray:
    """Positions where a run of equal adjacent values starts (the first is 0)."""
    change = np.empty(len(values), dtype=bool)
    if len(values):
        change[0] = True
        np.not_equal(values[1:], values[:-1], out=change[1:])
    return np.flatnonzero(change)


def constant_within_runs(values: np.ndarray, runs_of: np.ndarray) -> bool:
    """Whether ``values`` never changes inside a run of ``runs_of``."""
    if len(values) < 2:
        return True
    same_run = runs_of[1:] == runs_of[:-1]
    same_run &= values[1:] != values[:-1]
    return not same_run.any()


def keys_used(run_keys: np.ndarray, n_keys: int) -> np.ndarray:
    """Which of the keys ``0..n_keys - 1`` occur, from each run's key."""
    used = np.zeros(n_keys, dtype=bool)
    used[run_keys] = True
    return used


def one_run_each(used: np.ndarray, n_runs: int) -> bool:
    """Whether every key that occurs is exactly one run.

    Each key that occurs has at least one run, so that holds exactly when there are as
    many keys in use as runs. (Counting the key range instead is wrong: an unused key
    can make up for a key split over two runs.)
    """
    return int(np.count_nonzero(used)) == n_runs


def runs_holding(positions: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The runs holding the (sorted) ``positions``, and how many of them each holds."""
    run_of = np.searchsorted(starts, positions, side="right") - 1
    return np.unique(run_of, return_counts=True)


def run_lengths(runs: np.ndarray, starts: np.ndarray, n_values: int) -> np.ndarray:
    """Length of each of ``runs``, a subset of the runs (all of them costs a full array)."""
    following = runs + 1
    ends = np.where(
        following < len(starts), starts[np.minimum(following, len(starts) - 1)], n_values
    )
    return ends - starts[runs]


def run_sums(
    values: np.ndarray, starts: np.ndarray, *, skip: np.ndarray, skip_runs: np.ndarray
) -> np.ndarray:
    """Sum of each run's values, leaving out the (sorted) positions ``skip``.

    ``skip_runs`` are the runs holding them (see :func:`runs_holding`). Those runs
    are summed again over their kept values alone (not as total minus skipped), so a
    run whose values are all skipped sums to exactly 0 rather than to a residue.
    """
    if len(starts) == 0:
        return np.zeros(0)
    sums = np.add.reduceat(values, starts)
    if len(skip) == 0:
        return sums
    # Only the runs holding a skipped value are summed again: no copy of every
    # value with the skipped ones blanked.
    lengths = run_lengths(skip_runs, starts, len(values))
    first_line = np.repeat(starts[skip_runs], lengths)
    # Position of each line inside its run: 0, 1, ... restarting at every run.
    within = np.arange(len(first_line)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    lines = first_line + within
    kept = np.ones(len(lines), dtype=bool)
    kept[np.searchsorted(lines, skip)] = False
    owner = np.repeat(np.arange(len(skip_runs)), lengths)
    sums[skip_runs] = np.bincount(
        owner[kept], weights=values[lines[kept]], minlength=len(skip_runs)
    )
    return sums
