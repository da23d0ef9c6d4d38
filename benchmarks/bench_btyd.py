"""Fit time of BG/NBD on a large synthetic customer base: segmentkit against lifetimes.

    python benchmarks/bench_btyd.py [--customers 1000000]         # both, side by side

runs segmentkit in this interpreter and lifetimes in ``--lifetimes-python``
(default /work/venv-lifetimes/bin/python; see benchmarks/lifetimes_reference.py for
that venv). Both fit the same customers: a simulated BG/NBD base with purchase times
in whole days, expressed in weeks. lifetimes gets the per-customer arrays, as its
documentation fits them; segmentkit groups identical rows itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd


def customers(n: int, seed: int = 2024) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.6, 1 / 4.0, n)
    drop = rng.beta(1.0, 3.0, n)
    days = rng.integers(70, 365, n).astype(float)
    x = np.zeros(n)
    last = np.zeros(n)
    clock = np.zeros(n)
    death = rng.geometric(drop)
    for _ in range(60):  # 60 purchase draws per customer, vectorised over customers
        clock = clock + rng.exponential(1.0, n) / rate * 7
        counted = (clock <= days) & (x < death)
        x = np.where(counted, x + 1, x)
        last = np.where(counted, np.ceil(clock), last)
    return pd.DataFrame({"frequency": x, "recency": last / 7, "T": days / 7})


def run(engine: str, n: int) -> dict:
    frame = customers(n)
    if engine == "lifetimes":
        from lifetimes import BetaGeoFitter

        start = time.perf_counter()
        fitted = BetaGeoFitter().fit(*(frame[c].to_numpy() for c in ("frequency", "recency", "T")))
        seconds = time.perf_counter() - start
        params = fitted.params_.to_dict()
    else:
        import segmentkit as sk

        model = sk.BetaGeoModel()  # the lazy import of scipy is not part of the fit
        start = time.perf_counter()
        params = model.fit(frame).params_
        seconds = time.perf_counter() - start
    return {"engine": engine, "customers": n, "seconds": seconds, "params": params}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=["segmentkit", "lifetimes"])
    parser.add_argument("--lifetimes-python", default="/work/venv-lifetimes/bin/python")
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run(args.engine, args.customers)))
        return
    ours = run("segmentkit", args.customers)
    command = [args.lifetimes_python, str(Path(__file__)), "--engine", "lifetimes"]
    done = subprocess.run(
        [*command, "--customers", str(args.customers)], capture_output=True, text=True, check=False
    )
    theirs = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    print(f"customers: {args.customers:,}")
    print(f"segmentkit  {ours['seconds']:8.2f} s  {_fmt(ours['params'])}")
    if theirs is None:
        print(f"lifetimes   failed: {done.stderr.strip().splitlines()[-1:]}")
        return
    print(f"lifetimes   {theirs['seconds']:8.2f} s  {_fmt(theirs['params'])}")
    print(f"speed-up    {theirs['seconds'] / ours['seconds']:8.1f}x")


def _fmt(params: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in params.items())


if __name__ == "__main__":
    main()
