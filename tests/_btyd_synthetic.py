"""A simulated BG/NBD customer base, shared by the model tests and
``benchmarks/lifetimes_reference.py`` (which runs in lifetimes' own environment, so this
module needs only numpy and pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic(n: int, seed: int) -> pd.DataFrame:
    """A simulated BG/NBD customer base, in weeks (BTYD columns)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.6, 1 / 4.0, n)  # purchases per week while active
    drop = rng.beta(1.0, 3.0, n)  # chance of leaving after each repeat purchase
    T = np.round(rng.uniform(10.0, 52.0, n), 2)
    times = np.cumsum(rng.exponential(1.0, (n, 80)), axis=1) / rate[:, None]
    x = np.minimum((times <= T[:, None]).sum(axis=1), rng.geometric(drop))
    last = times[np.arange(n), np.maximum(x - 1, 0)]
    t_x = np.where(x > 0, np.minimum(np.round(last, 2), T), 0.0)
    m = np.where(x > 0, np.round(rng.gamma(4.0, 10.0, n) + 5.0, 2), 0.0)
    return pd.DataFrame(
        {"frequency": x.astype(float), "recency": t_x, "T": T, "monetary_value": m}
    )


def wholesale_heavy(n: int, seed: int) -> pd.DataFrame:
    """Everyone still buying at the end, ten wholesalers with 300+ purchase days (weeks).

    Nothing in these data shows a customer leaving, so the drop-out parameters have no
    interior optimum: lifetimes' BG/NBD fit raises ``ConvergenceError`` here.
    """
    rng = np.random.default_rng(seed)
    T = rng.integers(30, 52, n).astype(float)
    x = rng.poisson(rng.gamma(2.0, 1.0, n) * T)
    x[:10] = 300 + rng.integers(0, 50, 10)
    t_x = np.where(x > 0, np.clip(T - rng.exponential(0.3, n), 0.0, T), 0.0)
    return pd.DataFrame({"frequency": x.astype(float), "recency": np.round(t_x, 3), "T": T})
