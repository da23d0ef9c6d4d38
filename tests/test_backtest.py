"""Backtesting the purchase models (issue 15, part 2), and the formulas it needs.

- ``expected_repeat_purchases`` (the unconditional E[X(t)]) against `lifetimes`' values
  and a simulated base;
- ``purchase_probability`` (P of a purchase in a coming period) against simulated bases
  of each model, with a fixed seed and a tolerance of a few standard errors;
- ``sk.backtest``: its tables, its bookkeeping, its baselines, its refusals, and the
  CDNOW split where BG/NBD must beat the frequency-only baseline.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk
from segmentkit.errors import ContractError, InvalidParameterError
from test_report import _check_screenshot, _open
from test_report import browser as _chromium  # noqa: F401 - a fixture, by this name

BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PNBD = {"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67}
AGES = [1.0, 10.0, 39.0, 78.0]
# lifetimes 0.11.3, expected_number_of_purchases_up_to_time at the parameters above.
LIFETIMES_BG = [0.05326789117165627, 0.4324133622344203, 1.1967231933207985, 1.8605190579427455]
LIFETIMES_PNBD = [
    0.050685421319156945,
    0.42465961851091355,
    1.2023523628319928,
    1.8899983705311565,
]


# --- formulas ------------------------------------------------------------------------


def test_expected_repeat_purchases_match_lifetimes() -> None:
    bg = sk.BetaGeoModel.from_params(BG)
    pnbd = sk.ParetoNBDModel.from_params(PNBD)
    np.testing.assert_allclose(bg.expected_repeat_purchases(AGES), LIFETIMES_BG, rtol=1e-9)
    np.testing.assert_allclose(pnbd.expected_repeat_purchases(AGES), LIFETIMES_PNBD, rtol=1e-9)
    assert bg.expected_repeat_purchases(0.0) == 0.0
    # s = 1 is the limit log(1 + t/beta).
    one = sk.ParetoNBDModel.from_params({**PNBD, "s": 1.0})
    assert one.expected_repeat_purchases(10.0) == pytest.approx(
        PNBD["r"] * PNBD["beta"] / PNBD["alpha"] * np.log1p(10.0 / PNBD["beta"])
    )


@pytest.mark.parametrize("age", [-1.0, float("nan"), [1.0, float("inf")]])
def test_expected_repeat_purchases_refuse_bad_ages(age: object) -> None:
    with pytest.raises(InvalidParameterError, match="age must hold"):
        sk.BetaGeoModel.from_params(BG).expected_repeat_purchases(age)


def _simulate_bg(n: int, T: float, t: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A BG/NBD base observed for T, and whether each customer buys in (T, T+t]."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(BG["r"], 1 / BG["alpha"], n)
    drop = rng.beta(BG["a"], BG["b"], n)
    times = np.cumsum(rng.exponential(1.0, (n, 300)), axis=1) / rate[:, None]
    # The customer leaves right after their k-th repeat purchase.
    k = rng.geometric(drop)
    x = np.minimum((times <= T).sum(axis=1), k)
    later = np.minimum((times <= T + t).sum(axis=1), k)
    t_x = np.where(x > 0, times[np.arange(n), np.maximum(x - 1, 0)], 0.0)
    frame = pd.DataFrame({"frequency": x.astype(float), "recency": t_x, "T": T})
    return frame, later > x


def _simulate_pnbd(n: int, T: float, t: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    rate = rng.gamma(PNBD["r"], 1 / PNBD["alpha"], n)
    leave = rng.exponential(1.0, n) / rng.gamma(PNBD["s"], 1 / PNBD["beta"], n)
    times = np.cumsum(rng.exponential(1.0, (n, 300)), axis=1) / rate[:, None]
    times = np.where(times <= leave[:, None], times, np.inf)
    x = (times <= T).sum(axis=1)
    later = (times <= T + t).sum(axis=1)
    t_x = np.where(x > 0, times[np.arange(n), np.maximum(x - 1, 0)], 0.0)
    frame = pd.DataFrame({"frequency": x.astype(float), "recency": t_x, "T": T})
    return frame, later > x


@pytest.mark.parametrize(
    ("model", "simulate"),
    [
        (sk.BetaGeoModel.from_params(BG), _simulate_bg),
        (sk.ParetoNBDModel.from_params(PNBD), _simulate_pnbd),
    ],
    ids=["bg_nbd", "pareto_nbd"],
)
def test_purchase_probability_matches_a_simulated_base(model: object, simulate: object) -> None:
    base, bought = simulate(40_000, 30.0, 20.0, seed=15)  # type: ignore[operator]
    p = model.purchase_probability(base, 20.0).to_numpy()  # type: ignore[attr-defined]
    assert p.min() >= 0.0
    assert p.max() <= 1.0
    x = base["frequency"].to_numpy()
    for rows in (x >= 0, x == 0, x == 1, (x >= 2) & (x < 5), x >= 5):
        se = np.sqrt(p[rows].mean() * (1 - p[rows].mean()) / rows.sum())
        assert abs(p[rows].mean() - bought[rows].mean()) < 4 * se + 1e-3
    # And the unconditional curve: mean repeat purchases by age T.
    expected = model.expected_repeat_purchases(30.0)  # type: ignore[attr-defined]
    assert x.mean() == pytest.approx(float(expected), rel=0.03)


def test_purchase_probability_bg_nbd_closed_form() -> None:
    bg = sk.BetaGeoModel.from_params(BG)
    btyd = pd.DataFrame(
        {"frequency": [0, 2, 5], "recency": [0.0, 20.0, 30.0], "T": [38.0, 35.0, 36.0]},
        index=["a", "b", "c"],
    )
    p = bg.purchase_probability(btyd, 39)
    x, T = btyd["frequency"], btyd["T"]
    by_hand = bg.p_alive(btyd) * (
        1 - ((BG["alpha"] + T) / (BG["alpha"] + T + 39)) ** (BG["r"] + x)
    )
    np.testing.assert_allclose(p, by_hand, rtol=1e-12)
    assert p.name == "purchase_probability_39w"
    assert list(p.index) == ["a", "b", "c"]


def test_purchase_probability_pareto_matches_direct_integration() -> None:
    from scipy.integrate import quad

    pnbd = sk.ParetoNBDModel.from_params(PNBD)
    btyd = pd.DataFrame(
        {"frequency": [0, 2, 40], "recency": [0.0, 20.0, 30.0], "T": [38.0, 35.0, 36.0]}
    )
    p = pnbd.purchase_probability(btyd, 52).to_numpy()
    alive = pnbd.p_alive(btyd).to_numpy()
    r, alpha, s, beta = PNBD.values()
    for i, (x, T) in enumerate(zip(btyd["frequency"], btyd["T"], strict=True)):
        a, b, shape = alpha + T, beta + T, r + x

        def density(u: float, a: float = a, b: float = b, shape: float = shape) -> float:
            return shape / a * (a / (a + u)) ** (shape + 1) * (b / (b + u)) ** s

        inside = quad(density, 0, 52)[0]
        assert p[i] == pytest.approx(alive[i] * inside, rel=1e-9)


# --- the backtest on the bundled sample ----------------------------------------------


@pytest.fixture(scope="module")
def sample_bt(sample_tx: sk.Transactions) -> sk.Backtest:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sk.backtest(
            sk.BetaGeoModel(time_unit="W"),
            sample_tx,
            calibration_end="2017-09-01",
            holdout_end="2017-12-01",
            spend_model=sk.GammaGammaModel(),
        )


def test_backtest_tables(sample_bt: sk.Backtest) -> None:
    bt = sample_bt
    assert bt.metrics.index.tolist() == ["BG/NBD", "frequency-only", "recency-only"]
    assert bt.model == "BG/NBD"
    assert bt.horizon == pytest.approx(13.0)
    assert bt.keys == {
        "BG/NBD": "bg_nbd",
        "frequency-only": "frequency_only",
        "recency-only": "recency_only",
    }
    customers = bt.customers
    assert customers.index.name == "customer_id"
    assert len(customers) == bt.counts["cohort"]
    for key in bt.keys.values():
        assert {f"{key}_purchases", f"{key}_probability", f"{key}_spend"} <= set(customers)
        p = customers[f"{key}_probability"]
        assert p.between(0, 1).all()
    assert set(bt.deciles["predictor"]) == set(bt.metrics.index)
    assert (bt.deciles.groupby("predictor")["customers"].sum() == len(customers)).all()
    assert bt.deciles["decile"].between(1, 10).all()
    assert list(bt.tracking.columns) == ["period", "end", "phase", "actual", "expected_bg_nbd"]
    assert "BG/NBD" in bt.models
    assert "BG/NBD spend" in bt.models
    text = repr(bt)
    assert "Backtest of BG/NBD" in text
    assert "frequency-only" in text
    assert "recency-only" in text


def test_backtest_counts_match_the_lines(
    sample_tx: sk.Transactions, sample_bt: sk.Backtest
) -> None:
    lines = sample_tx.data
    bought = lines[~lines["is_return"]]
    cal_end = pd.Timestamp("2017-09-01", tz="UTC")
    hold_end = pd.Timestamp("2017-12-01", tz="UTC")
    day = bought["timestamp"].dt.normalize()
    cohort = set(bought.loc[bought["timestamp"] <= cal_end, "customer_id"])
    assert set(sample_bt.customers.index) == cohort
    window = (bought["timestamp"] > cal_end) & (bought["timestamp"] <= hold_end)
    early = bought["timestamp"] <= cal_end
    calib_days = set(zip(bought.loc[early, "customer_id"], day[early], strict=True))
    holdout = {
        (c, d)
        for c, d in zip(bought.loc[window, "customer_id"], day[window], strict=True)
        if (c, d) not in calib_days
    }
    per_customer = pd.Series([c for c, _ in holdout]).value_counts()
    actual = sample_bt.customers["actual_purchases"]
    expected = per_customer.reindex(actual.index, fill_value=0).astype(float)
    pd.testing.assert_series_equal(actual, expected, check_names=False, check_index_type=False)
    new = {c for c, _ in holdout} - cohort
    assert sample_bt.counts["new_in_holdout"] == len(new)
    assert sample_bt.counts["holdout_purchases_of_new"] == sum(c in new for c, _ in holdout)


def test_tracking_curve_adds_up(sample_bt: sk.Backtest) -> None:
    tracking = sample_bt.tracking
    customers = sample_bt.customers
    at_split = tracking.loc[tracking["period"] == 0, "actual"].item()
    assert at_split == customers["frequency"].sum()
    assert (
        tracking["actual"].iloc[-1]
        == customers["frequency"].sum() + customers["actual_purchases"].sum()
    )
    assert tracking["end"].iloc[-1] == sample_bt.holdout_end
    assert (np.diff(tracking["actual"]) >= 0).all()
    assert (np.diff(tracking["expected_bg_nbd"]) >= 0).all()
    assert set(tracking.loc[tracking["period"] > 0, "phase"]) == {"holdout"}
    step = tracking["end"].diff().dropna().unique()
    assert pd.Timedelta(days=7) in step


def test_frequency_only_baseline_is_rate_times_horizon(sample_bt: sk.Backtest) -> None:
    c = sample_bt.customers
    rate = np.where(c["T"] > 0, c["frequency"] / c["T"], c["frequency"].sum() / c["T"].sum())
    np.testing.assert_allclose(c["frequency_only_purchases"], rate * 13.0, rtol=1e-12)
    np.testing.assert_allclose(
        c["frequency_only_probability"], 1 - np.exp(-rate * 13.0), rtol=1e-12
    )
    # Recency-only depends on the pause alone: one pause, one probability.
    pause = (c["T"] - c["recency"]).round(9)
    spread = c["recency_only_probability"].groupby(pause).agg(np.ptp)
    assert (spread == 0).all()
    assert spread.size > 50
    total = c["recency_only_purchases"].sum()
    assert total == pytest.approx(c["frequency"].sum() / c["T"].sum() * 13.0 * len(c))


def test_metrics_by_hand(sample_bt: sk.Backtest) -> None:
    from sklearn.metrics import roc_auc_score

    c = sample_bt.customers
    row = sample_bt.metrics.loc["BG/NBD"]
    error = c["bg_nbd_purchases"] - c["actual_purchases"]
    assert row["mae_purchases"] == pytest.approx(error.abs().mean())
    assert row["rmse_purchases"] == pytest.approx(np.sqrt((error**2).mean()))
    assert row["bias_purchases"] == pytest.approx(error.mean())
    assert row["auc"] == pytest.approx(roc_auc_score(c["bought"], c["bg_nbd_probability"]))
    assert row["brier"] == pytest.approx(((c["bg_nbd_probability"] - c["bought"]) ** 2).mean())
    # Ties (frequency-only has many zeros) are counted as half, as sklearn does.
    assert sample_bt.metrics.loc["frequency-only", "auc"] == pytest.approx(
        roc_auc_score(c["bought"], c["frequency_only_probability"])
    )
    top = c["bg_nbd_probability"].sort_values(ascending=False, kind="stable").index[:79]
    assert row["top_decile_lift"] == pytest.approx(
        c.loc[top, "bought"].mean() / c["bought"].mean()
    )


def test_to_dict_is_json_ready(sample_bt: sk.Backtest) -> None:
    document = sample_bt.to_dict()
    text = json.dumps(document, allow_nan=False)
    back = json.loads(text)
    assert back["model"] == "BG/NBD"
    assert back["calibration_end"].startswith("2017-09-01")
    assert [m["predictor"] for m in back["metrics"]] == list(sample_bt.metrics.index)
    assert len(back["tracking"]) == len(sample_bt.tracking)
    assert "customers" not in back
    assert back["models"]["BG/NBD"]["model"] == "BetaGeoModel"


def test_backtest_is_frozen_and_deterministic(
    sample_tx: sk.Transactions, sample_bt: sk.Backtest
) -> None:
    with pytest.raises(AttributeError):
        sample_bt.model = "x"  # type: ignore[misc]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = sk.backtest(
            sk.BetaGeoModel(time_unit="W"),
            sample_tx,
            calibration_end="2017-09-01",
            holdout_end="2017-12-01",
            spend_model=sk.GammaGammaModel(),
        )
    pd.testing.assert_frame_equal(again.metrics, sample_bt.metrics)
    pd.testing.assert_frame_equal(again.tracking, sample_bt.tracking)


def test_the_model_passed_in_is_not_fitted(sample_tx: sk.Transactions) -> None:
    model = sk.BetaGeoModel(time_unit="D")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = sk.backtest(model, sample_tx, calibration_end="2017-10-01", holdout_end="2017-12-31")
    assert not hasattr(model, "params_")
    assert bt.time_unit == "D"
    assert bt.horizon == pytest.approx(91.0)


# --- small hand-made data ------------------------------------------------------------


def _tx(rows: list[tuple[str, str, float]]) -> sk.Transactions:
    raw = pd.DataFrame(rows, columns=["who", "when", "paid"])
    return sk.Transactions.from_frame(raw, customer_id="who", timestamp="when", amount="paid")


def _small() -> sk.Transactions:
    rows = [(f"c{i}", f"2024-01-{1 + i % 20:02d}", 10.0) for i in range(60)]
    rows += [(f"c{i}", f"2024-02-{1 + i % 25:02d}", 12.0) for i in range(0, 60, 2)]
    rows += [(f"c{i}", f"2024-03-{1 + i % 25:02d}", 8.0) for i in range(0, 60, 3)]
    rows += [("ret", "2024-01-05", -5.0)]  # a return only: no purchase by calibration end
    rows += [("late", "2024-04-10", 20.0), ("late", "2024-04-20", 5.0)]  # new in the holdout
    rows += [(f"c{i}", f"2024-04-{1 + i % 28:02d}", 9.0) for i in range(0, 60, 4)]
    rows += [("c0", "2024-05-31", 1.0)]
    return _tx(rows)


def test_customers_outside_the_cohort_are_counted() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = sk.backtest(
            sk.BetaGeoModel(time_unit="W", min_repeaters=0),
            _small(),
            calibration_end="2024-03-31",
            holdout_end="2024-05-31",
        )
    assert bt.counts["cohort"] == 60
    assert bt.counts["no_purchase_by_calibration_end"] == 1
    assert bt.counts["new_in_holdout"] == 1
    assert bt.counts["holdout_purchases_of_new"] == 2
    assert "late" not in bt.customers.index
    assert "ret" not in bt.customers.index
    assert "returns only" in bt.summary()
    assert "first purchase is in the holdout" in bt.summary()
    # The new customer's purchases are not in the cohort's tracking curve.
    assert bt.tracking["actual"].iloc[-1] == bt.customers["frequency"].sum() + 16


class _Propensity:
    """A stand-in for sk.PurchasePropensity: duck-typed, remembers what it saw."""

    def __init__(self, horizon_days: int) -> None:
        self.horizon_days = horizon_days

    def fit(self, tx: sk.Transactions, as_of: object = None) -> _Propensity:
        self.latest_ = tx.data["timestamp"].max()
        self.as_of_ = as_of
        return self

    def predict_proba(self, features: sk.CustomerFeatures) -> pd.Series:
        frame = features.frame
        return pd.Series(np.clip(frame["frequency"] / 5.0, 0, 1), index=frame.index)


def test_a_propensity_model_enters_the_comparison_without_the_holdout() -> None:
    propensity = _Propensity(horizon_days=61)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = sk.backtest(
            sk.BetaGeoModel(min_repeaters=0),
            _small(),
            calibration_end="2024-03-31",
            holdout_end="2024-05-31",
            compare=[propensity],
        )
    assert propensity.latest_ <= pd.Timestamp("2024-03-31", tz="UTC")
    assert propensity.as_of_ == pd.Timestamp("2024-03-31", tz="UTC")
    assert bt.metrics.index.tolist() == ["BG/NBD", "_Propensity", "frequency-only", "recency-only"]
    row = bt.metrics.loc["_Propensity"]
    assert np.isnan(row["mae_purchases"])
    assert np.isfinite(row["auc"])
    assert "_Propensity" not in set(bt.deciles["predictor"])
    # As the model under test: no tracking expectation, baselines still there.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = sk.backtest(
            _Propensity(61), _small(), calibration_end="2024-03-31", holdout_end="2024-05-31"
        )
    assert alone.model == "_Propensity"
    assert list(alone.tracking.columns) == ["period", "end", "phase", "actual"]
    json.dumps(alone.to_dict(), allow_nan=False)


def test_a_propensity_model_must_answer_the_same_question() -> None:
    with pytest.raises(InvalidParameterError, match=r"horizon_days=90 .*61 days.*horizon_days=61"):
        sk.backtest(
            sk.BetaGeoModel(),
            _small(),
            calibration_end="2024-03-31",
            holdout_end="2024-05-31",
            compare=[_Propensity(90)],
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"calibration_end": "2024-03-31", "holdout_end": "2024-03-01"},
            InvalidParameterError,
            "must be after calibration_end",
        ),
        (
            {"calibration_end": "2023-12-01", "holdout_end": "2024-03-01"},
            InvalidParameterError,
            "before the first transaction",
        ),
        (
            {"calibration_end": "2024-03-31", "holdout_end": "2024-07-01"},
            InvalidParameterError,
            r"after the last transaction \(2024-05-31.*Choose holdout_end <=",
        ),
        (
            {"calibration_end": "soon", "holdout_end": "2024-05-31"},
            InvalidParameterError,
            "calibration_end='soon' is not a date",
        ),
        (
            {"calibration_end": "2024-03-31", "holdout_end": "2024-05-31", "compare": "BG"},
            InvalidParameterError,
            "compare must be a list",
        ),
        (
            {"calibration_end": "2024-03-31", "holdout_end": "2024-05-31", "compare": [3]},
            InvalidParameterError,
            r"compare\[0\] must be",
        ),
        (
            {
                "calibration_end": "2024-03-31",
                "holdout_end": "2024-05-31",
                "spend_model": sk.BetaGeoModel(),
            },
            InvalidParameterError,
            "spend_model must be a GammaGammaModel",
        ),
        (
            {
                "calibration_end": "2024-03-31",
                "holdout_end": "2024-05-31",
                "compare": [sk.ParetoNBDModel(time_unit="D")],
            },
            InvalidParameterError,
            "share one time_unit",
        ),
    ],
)
def test_backtest_refuses_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        sk.backtest(sk.BetaGeoModel(), _small(), **kwargs)


def test_backtest_refuses_what_is_not_a_model_or_transactions(sample_tx: sk.Transactions) -> None:
    with pytest.raises(InvalidParameterError, match="model must be a BetaGeoModel"):
        sk.backtest("bg", sample_tx, calibration_end="2017-09-01", holdout_end="2017-12-01")
    with pytest.raises(InvalidParameterError, match="pandas Transactions"):
        sk.backtest(
            sk.BetaGeoModel(),
            sample_tx.data,
            calibration_end="2017-09-01",
            holdout_end="2017-12-01",
        )


def test_backtest_needs_a_purchase_by_calibration_end() -> None:
    tx = _tx([("a", "2024-01-01", -5.0), ("b", "2024-02-01", 10.0), ("b", "2024-03-01", 10.0)])
    with pytest.raises(ContractError, match="No purchase line is on or before calibration_end"):
        sk.backtest(sk.BetaGeoModel(), tx, calibration_end="2024-01-15", holdout_end="2024-03-01")


# --- CDNOW ---------------------------------------------------------------------------


def test_bg_nbd_beats_frequency_only_on_cdnow(cdnow_tx: sk.Transactions) -> None:
    """39 weeks of calibration, 39 of holdout ending 1998-06-30 (the classic split)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = sk.backtest(
            sk.BetaGeoModel(time_unit="W"),
            cdnow_tx,
            calibration_end="1997-09-30",
            holdout_end="1998-06-30",
            spend_model=sk.GammaGammaModel(),
        )
    assert bt.horizon == pytest.approx(39.0)
    assert bt.counts["cohort"] == 23_570
    assert bt.counts["new_in_holdout"] == 0
    m = bt.metrics
    assert m.loc["BG/NBD", "mae_purchases"] == pytest.approx(0.8187, abs=1e-3)
    assert m.loc["frequency-only", "mae_purchases"] == pytest.approx(1.0381, abs=1e-3)
    assert m.loc["BG/NBD", "mae_purchases"] < m.loc["frequency-only", "mae_purchases"]
    assert m.loc["BG/NBD", "mae_purchases"] < m.loc["recency-only", "mae_purchases"]
    assert m.loc["BG/NBD", "mae_spend"] < m.loc["frequency-only", "mae_spend"]
    # The sum of the conditional expectations equals lifetimes' (tests/test_models_reference).
    assert m.loc["BG/NBD", "predicted_purchases"] == pytest.approx(16873.737, rel=1e-5)
    assert m.loc["BG/NBD", "actual_purchases"] == 19_684
    # The tracking curve: cumulative repeat purchases at the split and at the end.
    tracking = bt.tracking.set_index("period")
    assert tracking.loc[0, "actual"] == bt.customers["frequency"].sum()
    assert tracking["expected_bg_nbd"].iloc[-1] == pytest.approx(
        tracking["actual"].iloc[-1], rel=0.1
    )


def test_complete_journey_split_with_a_propensity_beside_the_model(
    journey_tx: sk.Transactions,
) -> None:
    """Nine months of grocery baskets, a 90-day holdout: both models beat the baselines."""
    propensity = sk.PurchasePropensity(horizon_days=90, n_snapshots=3, step_days=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = sk.backtest(
            sk.BetaGeoModel(time_unit="W"),
            journey_tx,
            calibration_end="2017-09-30",
            holdout_end="2017-12-29",
            spend_model=sk.GammaGammaModel(),
            compare=[propensity],
        )
    counts = bt.counts
    assert counts["cohort"] + counts["new_in_holdout"] <= journey_tx.data["customer_id"].nunique()
    assert counts["new_in_holdout"] > 0  # counted, not silently dropped
    m = bt.metrics
    assert list(m.index) == ["BG/NBD", "PurchasePropensity", "frequency-only", "recency-only"]
    assert m.loc["BG/NBD", "mae_purchases"] < m.loc["frequency-only", "mae_purchases"]
    assert m.loc["BG/NBD", "brier"] < m.loc["frequency-only", "brier"]
    assert m.loc["PurchasePropensity", "auc"] > m.loc["recency-only", "auc"]
    assert m.loc["PurchasePropensity", "brier"] < m.loc["frequency-only", "brier"]
    assert np.isnan(m.loc["PurchasePropensity", "mae_purchases"])  # probabilities only


# --- plots and report ----------------------------------------------------------------


def test_tracking_and_decile_plots(sample_bt: sk.Backtest) -> None:
    pytest.importorskip("matplotlib")
    from segmentkit import plots

    fig = plots.tracking(sample_bt)
    lines = fig.axes[0].get_lines()
    labels = [line.get_label() for line in lines]
    assert labels[:2] == ["Actual", "BG/NBD (expected)"]
    np.testing.assert_allclose(lines[0].get_ydata(), sample_bt.tracking["actual"])
    fig = plots.decile_calibration(sample_bt, predictor="frequency-only")
    heights = [p.get_height() for p in fig.axes[0].patches]
    chosen = sample_bt.deciles[sample_bt.deciles["predictor"] == "frequency-only"]
    np.testing.assert_allclose(heights[:10], chosen["predicted"])
    np.testing.assert_allclose(heights[10:], chosen["actual"])
    with pytest.raises(ValueError, match="'nobody' has no purchase predictions"):
        plots.decile_calibration(sample_bt, predictor="nobody")
    with pytest.raises(InvalidParameterError, match="'backtest' parameter of tracking"):
        plots.tracking(sample_bt.metrics)


def test_backtest_report_page(sample_bt: sk.Backtest, tmp_path: object) -> None:
    path = sample_bt.report(tmp_path / "bt.html", title="Q3 check")  # type: ignore[operator]
    text = path.read_text(encoding="utf-8")
    assert '<h1 id="report-title">Q3 check</h1>' in text
    assert "<script" not in text
    for element in ('id="backtest-metrics"', 'id="tracking-chart"', 'id="deciles-chart"'):
        assert element in text
    for name in sample_bt.metrics.index:
        assert f'data-predictor="{name}"' in text
    assert "14 customers whose first purchase is in the holdout" in text
    # Aggregates only: no customer id reaches the page.
    for customer in sample_bt.customers.index[:50]:
        assert f">{customer}<" not in text
        assert f'"{customer}"' not in text


def test_segmentation_report_gains_a_backtest_section(
    sample_bt: sk.Backtest, sample_features: sk.CustomerFeatures, tmp_path: object
) -> None:
    seg = sk.RFMSegmenter().fit_predict(sample_features)
    text = seg.report(tmp_path / "r.html", backtest=sample_bt).read_text(encoding="utf-8")  # type: ignore[operator]
    assert 'data-section="backtest"' in text
    assert '<a href="#backtest">Backtest</a>' in text
    plain = seg.report(tmp_path / "p.html").read_text(encoding="utf-8")  # type: ignore[operator]
    assert 'data-section="backtest"' not in plain
    with pytest.raises(InvalidParameterError, match="'backtest' parameter"):
        seg.report(tmp_path / "x.html", backtest=seg)  # type: ignore[operator]


def test_the_backtest_page_renders_in_chromium(
    request: pytest.FixtureRequest, sample_bt: sk.Backtest, tmp_path: object
) -> None:
    browser = request.getfixturevalue("_chromium")
    path = sample_bt.report(tmp_path / "bt.html")  # type: ignore[operator]
    page, problems, requested = _open(browser, path)
    try:
        shown = ("#report-title", "#backtest-metrics", "#tracking-chart", "#deciles-chart")
        for selector in shown:
            assert page.locator(selector).is_visible(), selector
        assert page.locator("#backtest-metrics tbody tr").count() == len(sample_bt.metrics)
        box = page.locator("#tracking-chart").bounding_box()
        assert box["width"] > 600
        _check_screenshot(page, tmp_path, "backtest")
    finally:
        page.close()
    assert not problems, problems
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
