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
