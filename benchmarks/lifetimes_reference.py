"""Reference fits of the archived `lifetimes` package, for tests/test_models_reference.py.

Runs in its own virtual environment (lifetimes is not a segmentkit dependency):

    python3 -m venv /work/venv-lifetimes
    /work/venv-lifetimes/bin/pip install lifetimes pandas      # lifetimes 0.11.3
    /work/venv-lifetimes/bin/python benchmarks/lifetimes_reference.py [CDNOW_master.txt.gz]

Prints the numbers the tests hold. The summary is lifetimes' own
``summary_data_from_transaction_data`` (distinct purchase days, calibration end
1997-09-30 inclusive) with recency and T divided by 7: weekly units.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter
from lifetimes.utils import summary_data_from_transaction_data

# The same simulated base as the tests (numpy and pandas only).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _btyd_synthetic import synthetic, wholesale_heavy

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cdnow" / "CDNOW_master.txt.gz"
IDS = ["00001", "00003", "00004", "00005", "00010", "00100", "01000", "05000", "10000",
       "15000", "20000", "23570"]  # fmt: skip
HORIZON = 39.0


def cdnow_summary(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": str, "date": str})
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    days = summary_data_from_transaction_data(
        raw, "customer_id", "date", monetary_value_col="dollar_value",
        observation_period_end="1997-09-30", freq="D",
    )  # fmt: skip
    return days.assign(recency=days["recency"] / 7, T=days["T"] / 7)


def fits(summary: pd.DataFrame, ids: list, pareto: bool = True) -> dict:
    x, t_x, T = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    out: dict = {}
    bg = BetaGeoFitter().fit(x, t_x, T)
    out["bg"] = bg.params_.to_dict()
    out["bg_ll"] = float(-bg._negative_log_likelihood_ * len(x))
    sel = summary.loc[ids]
    sx, st, sT = (sel[c].to_numpy() for c in ("frequency", "recency", "T"))
    out["bg_p_alive"] = bg.conditional_probability_alive(sx, st, sT).tolist()
    out["bg_expected"] = bg.conditional_expected_number_of_purchases_up_to_time(
        HORIZON, sx, st, sT
    ).tolist()
    out["bg_p_alive_sum"] = float(np.sum(bg.conditional_probability_alive(x, t_x, T)))
    out["bg_expected_sum"] = float(
        np.sum(bg.conditional_expected_number_of_purchases_up_to_time(HORIZON, x, t_x, T))
    )
    if pareto:
        np.random.seed(0)  # noqa: NPY002 - lifetimes starts from the legacy global state
        pnbd = ParetoNBDFitter().fit(x, t_x, T)
        out["pnbd"] = pnbd.params_.to_dict()
        out["pnbd_p_alive"] = pnbd.conditional_probability_alive(sx, st, sT).tolist()
        out["pnbd_expected"] = pnbd.conditional_expected_number_of_purchases_up_to_time(
            HORIZON, sx, st, sT
        ).tolist()
        out["pnbd_p_alive_sum"] = float(np.sum(pnbd.conditional_probability_alive(x, t_x, T)))
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    gg = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    out["gg"] = gg.params_.to_dict()
    out["gg_spend"] = gg.conditional_expected_average_profit(
        sel["frequency"], sel["monetary_value"]
    ).tolist()
    return out


def degenerate() -> dict:
    """Nobody buys again: lifetimes' BG/NBD fit."""
    T = np.linspace(5.0, 39.0, 200)
    zeros = np.zeros_like(T)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params = BetaGeoFitter().fit(zeros, zeros, T).params_.to_dict()
        return {"bg_no_repeat": params}
    except Exception as error:  # the reference records whatever lifetimes does
        return {"bg_no_repeat": f"{type(error).__name__}: {str(error).strip()}"}


def wholesale() -> dict:
    """Nobody leaves, a few wholesalers: what lifetimes' BG/NBD fit does (it raises)."""
    frame = wholesale_heavy(500, 3)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = BetaGeoFitter().fit(frame["frequency"], frame["recency"], frame["T"])
        return {"bg_wholesale": fitted.params_.to_dict()}
    except Exception as error:  # the reference records whatever lifetimes does
        return {"bg_wholesale": f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"}


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    result = {"cdnow": fits(cdnow_summary(path), IDS)}
    small = synthetic(400, 7)
    result["synthetic"] = fits(small, [0, 1, 2, 3, 5, 8, 13, 21, 34, 55])
    result.update(degenerate())
    result.update(wholesale())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
