"""Fit time of BG/NBD, Pareto/NBD and Gamma-Gamma at scale: segmentkit, lifetimes, pymc-marketing.

    python benchmarks/bench_btyd.py [--customers 1000000] [--models bg pnbd gg]

runs segmentkit in this interpreter, lifetimes in ``--lifetimes-python`` (default
/work/venv-lifetimes/bin/python; see benchmarks/lifetimes_reference.py for that venv)
and pymc-marketing's MAP fit in ``--pymc-python`` (default benchmarks/.venv-peers, made
by run_peers.sh); an engine that cannot be imported or runs past ``--timeout`` is
reported with the reason. Every engine fits the same customers: a simulated BG/NBD
base with purchase times in whole days, expressed in weeks, and a Gamma-Gamma spend for
the repeat buyers. lifetimes and pymc-marketing get the per-customer arrays, as their
documentation fits them; segmentkit groups identical rows itself. Each (engine, model)
runs in a fresh process, after its imports, and the table gives the largest relative
difference of any parameter from lifetimes' (pymc-marketing's MAP includes its default
priors, so its parameters differ from the maximum likelihood ones).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
MODELS = {"bg": "BG/NBD", "pnbd": "Pareto/NBD", "gg": "Gamma-Gamma"}
NAMES = {
    "bg": ("r", "alpha", "a", "b"),
    "pnbd": ("r", "alpha", "s", "beta"),
    "gg": ("p", "q", "v"),
}


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
    # Gamma-Gamma spend: the mean of x gamma(p, nu) draws, nu ~ gamma(q, v), in cents.
    nu = rng.gamma(3.0, 1 / 15.0, n)
    spend = rng.gamma(np.maximum(6.0 * x, 1e-9), 1 / (np.maximum(x, 1.0) * nu))
    spend = np.where(x > 0, np.round(spend, 2), 0.0)
    return pd.DataFrame(
        {"frequency": x, "recency": last / 7, "T": days / 7, "monetary_value": spend}
    )


def _repeaters(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["frequency"] > 0) & (frame["monetary_value"] > 0)]


def run(engine: str, model: str, n: int) -> dict:
    frame = customers(n)
    data = _repeaters(frame) if model == "gg" else frame
    warnings.filterwarnings("ignore")
    if engine == "lifetimes":
        import lifetimes

        fitter = {
            "bg": lifetimes.BetaGeoFitter,
            "pnbd": lifetimes.ParetoNBDFitter,
            "gg": lifetimes.GammaGammaFitter,
        }[model]()
        columns = (
            ("frequency", "monetary_value") if model == "gg" else ("frequency", "recency", "T")
        )
        start = time.perf_counter()
        fitter.fit(*(data[c].to_numpy() for c in columns))
        seconds = time.perf_counter() - start
        params = {k: float(v) for k, v in fitter.params_.items()}
    elif engine == "pymc":
        from pymc_marketing import clv

        cls = {"bg": clv.BetaGeoModel, "pnbd": clv.ParetoNBDModel, "gg": clv.GammaGammaModel}
        table = data.reset_index(drop=True).rename_axis("customer_id").reset_index()
        start = time.perf_counter()
        fitted = cls[model](data=table)
        fitted.fit(method="map")
        seconds = time.perf_counter() - start
        posterior = fitted.idata.posterior
        params = {k: float(posterior[k].to_numpy().ravel()[0]) for k in NAMES[model]}
    else:
        import segmentkit as sk

        # The lazy import of scipy is not part of the fit (the peers import theirs first).
        cls = {"bg": sk.BetaGeoModel, "pnbd": sk.ParetoNBDModel, "gg": sk.GammaGammaModel}
        fitted = cls[model](min_repeaters=0)
        start = time.perf_counter()
        fitted.fit(data)
        seconds = time.perf_counter() - start
        params = dict(fitted.params_)
    return {"engine": engine, "model": model, "customers": n, "seconds": seconds, "params": params}


def _child(python: str, engine: str, model: str, n: int, timeout: float) -> dict:
    command = [python, str(Path(__file__)), "--engine", engine, "--models", model]
    try:
        done = subprocess.run(
            [*command, "--customers", str(n)],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"ran past the {timeout:.0f} s timeout"}
    except OSError as error:
        return {"error": f"not available ({error.strerror}: {python})"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return {"error": f"not available ({last})"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _max_rel(ours: dict, theirs: dict) -> float:
    return max(abs(ours[k] - theirs[k]) / abs(theirs[k]) for k in theirs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--engine", choices=["segmentkit", "lifetimes", "pymc"])
    parser.add_argument("--lifetimes-python", default="/work/venv-lifetimes/bin/python")
    parser.add_argument("--pymc-python", default=str(HERE / ".venv-peers" / "bin" / "python"))
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--out", default=str(HERE / "results" / "btyd.json"))
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run(args.engine, args.models[0], args.customers)))
        return
    n = args.customers
    rows = []
    for model in args.models:
        ours = _child(sys.executable, "segmentkit", model, n, args.timeout)
        life = _child(args.lifetimes_python, "lifetimes", model, n, args.timeout)
        pymc = _child(args.pymc_python, "pymc", model, n, args.timeout)
        rows.append({"model": model, "segmentkit": ours, "lifetimes": life, "pymc": pymc})
        print(_line(n, rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


def _seconds(result: dict) -> str:
    return f"{result['seconds']:.2f}" if "seconds" in result else result["error"]


def _line(n: int, row: dict) -> str:
    ours, life, pymc = row["segmentkit"], row["lifetimes"], row["pymc"]
    ratio = diff = pymc_diff = "–"
    if "seconds" in ours and "seconds" in life:
        ratio = f"{life['seconds'] / ours['seconds']:.1f}×"
        diff = f"{_max_rel(ours['params'], life['params']):.1e}"
        if "seconds" in pymc:
            pymc_diff = f"{_max_rel(pymc['params'], life['params']):.1e}"
    cells = [f"{n:,}", MODELS[row["model"]], _seconds(ours), _seconds(life), _seconds(pymc)]
    return "| " + " | ".join([*cells, ratio, diff, pymc_diff]) + " |"


if __name__ == "__main__":
    main()
