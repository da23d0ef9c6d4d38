"""The purchase models on features kept in polars, pyarrow, DuckDB, Spark and Dask."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk
from _backends import NATIVE, NATIVE_FAST
from segmentkit.errors import ContractError, NotFittedError

AS_OF = "2024-01-01"


def _store(n: int = 240, seed: int = 11) -> pd.DataFrame:
    """Order lines of buyers who join, buy at their own rate and leave (BTYD-like).

    Some customers order twice on one day, one has only a return (no purchase), and some
    lines fall after as_of.
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-01", tz="UTC")
    first = rng.integers(0, 150, n)
    end = np.minimum(first + rng.exponential(160, n), 380)
    rate = rng.gamma(0.9, 1 / 25, n)
    repeats = rng.poisson(rate * (end - first))
    counts = repeats + 1
    owner = np.repeat(np.arange(n), counts)
    position = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    # Each customer's first line on their first day, the repeats spread until they leave.
    span = (end - first)[owner]
    day = first[owner] + np.where(position > 0, rng.uniform(0, 1, len(owner)) * span, 0)
    hour = rng.integers(0, 24 * 60, len(owner))
    times = start + pd.to_timedelta(day.astype(int), unit="D") + pd.to_timedelta(hour, unit="m")
    lines = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in owner],
            "timestamp": times,
            "amount": np.round(rng.lognormal(3, 0.4, len(owner)), 2),
        }
    )
    same_day = lines.sample(25, random_state=seed).assign(
        timestamp=lambda f: f["timestamp"].dt.floor("D") + pd.Timedelta(minutes=1)
    )
    returned = pd.DataFrame(
        {"customer_id": ["r"], "timestamp": [start + pd.Timedelta(days=20)], "amount": [-12.0]}
    )
    lines = pd.concat([lines, same_day, returned], ignore_index=True)
    return lines.sort_values("timestamp", kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def store() -> pd.DataFrame:
    return _store()


@pytest.fixture(scope="module")
def pandas_features(store: pd.DataFrame) -> sk.CustomerFeatures:
    return sk.extract_features(sk.Transactions.from_frame(store), as_of=AS_OF)


def _native(backend, store: pd.DataFrame) -> object:
    return sk.extract_features(sk.Transactions.from_frame(backend.frame(store)), as_of=AS_OF)


def _fit(model: object, data: object) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = model.fit(data)  # type: ignore[attr-defined]
    return fitted, [
        str(w.message) for w in caught if issubclass(w.category, sk.errors.SegmentkitWarning)
    ]


def test_the_store_suits_the_models(pandas_features):
    frame = pandas_features.frame
    assert frame.loc["r", "purchase_days"] == 0  # a customer without a purchase
    assert (frame["purchase_days"] < frame["frequency"]).any()  # same-day second orders
    assert (frame["purchase_days"] > 1).sum() > 60  # enough repeat buyers
    bg, messages = _fit(sk.BetaGeoModel(), pandas_features)
    assert bg.converged_
    assert not [m for m in messages if "do not suit" in m], messages


@pytest.mark.backends(*NATIVE)
def test_models_fitted_on_native_features_equal_the_pandas_fit(backend, store, pandas_features):
    native = _native(backend, store)
    expected, expected_warnings = _fit(sk.BetaGeoModel(time_unit="W"), pandas_features)
    got, got_warnings = _fit(sk.BetaGeoModel(time_unit="W"), native)
    # x, t_x and T are the same numbers (T: as_of recovered from tenure_days to the µs).
    for name, value in expected.params_.items():
        assert got.params_[name] == pytest.approx(value, rel=1e-9), name
    assert got.n_customers_ == expected.n_customers_
    assert got.n_excluded_ == expected.n_excluded_ == {"no_purchase": 1}
    assert got_warnings == expected_warnings
    p_alive = expected.p_alive(native)
    assert p_alive.index.name == "customer_id"
    assert list(p_alive.index) == list(pandas_features.customer_ids)
    pd.testing.assert_series_equal(p_alive, expected.p_alive(pandas_features), rtol=1e-9)
    pd.testing.assert_series_equal(
        expected.expected_purchases(native, 10),
        expected.expected_purchases(pandas_features, 10),
        rtol=1e-9,
    )
    # Gamma-Gamma reads monetary, which engines sum in their own order (last bits): the
    # optimiser stops within its tolerance of the same optimum.
    gg, _ = _fit(sk.GammaGammaModel(), pandas_features)
    gg_native, _ = _fit(sk.GammaGammaModel(), native)
    for name, value in gg.params_.items():
        assert gg_native.params_[name] == pytest.approx(value, rel=1e-6), name
    pd.testing.assert_series_equal(
        gg.expected_spend(native), gg.expected_spend(pandas_features), rtol=1e-9
    )
    pd.testing.assert_series_equal(
        sk.customer_lifetime_value(expected, gg, native, horizon=6),
        sk.customer_lifetime_value(expected, gg, pandas_features, horizon=6),
        rtol=1e-9,
    )


@pytest.mark.backends(*NATIVE)
def test_transform_answers_in_the_input_library(backend, store, pandas_features):
    native = _native(backend, store)
    bg = sk.BetaGeoModel.from_params({"r": 0.3, "alpha": 5.0, "a": 0.8, "b": 2.5})
    out = bg.transform(native, horizon=13)
    assert type(out) is type(native)
    got = backend.to_pandas(out)
    got = got.assign(customer_id=got["customer_id"].astype(str)).set_index("customer_id")
    got = got.sort_index()
    expected = bg.transform(pandas_features, horizon=13)
    features = backend.to_pandas(native).columns.drop("customer_id")
    assert list(got.columns) == [*features, "p_alive", "expected_purchases_13w"]
    for name in ("p_alive", "expected_purchases_13w"):
        values = pd.to_numeric(got[name]).astype(float)
        np.testing.assert_allclose(values, expected[name], rtol=1e-9, atol=0, err_msg=name)
        assert (
            values.isna().tolist() == expected[name].isna().tolist() == (got.index == "r").tolist()
        )
    gg = sk.GammaGammaModel.from_params({"p": 6.0, "q": 3.5, "v": 15.0})
    spend = backend.to_pandas(gg.transform(native))
    spend = spend.assign(customer_id=spend["customer_id"].astype(str)).set_index("customer_id")
    np.testing.assert_allclose(
        pd.to_numeric(spend["expected_spend"]).astype(float).sort_index(),
        gg.expected_spend(pandas_features),
        rtol=1e-9,
    )


@pytest.mark.backends(*NATIVE_FAST)
def test_transform_twice_replaces_the_predicted_columns(backend, store, pandas_features):
    native = _native(backend, store)
    pnbd = sk.ParetoNBDModel.from_params({"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7})
    pd.testing.assert_series_equal(
        pnbd.expected_purchases(native, 8), pnbd.expected_purchases(pandas_features, 8), rtol=1e-9
    )
    bg = sk.BetaGeoModel.from_params({"r": 0.3, "alpha": 5.0, "a": 0.8, "b": 2.5})
    again = bg.transform(bg.transform(native, horizon=13), horizon=13)
    columns = list(backend.to_pandas(again).columns)
    assert columns.count("p_alive") == columns.count("expected_purchases_13w") == 1


@pytest.mark.backends("polars", "duckdb")
def test_native_input_errors_are_specific(backend, store):
    native = _native(backend, store)
    with pytest.raises(NotFittedError):
        sk.BetaGeoModel().transform(native)
    import narwhals as nw

    without = nw.from_native(native).drop("tenure_days").to_native()
    with pytest.raises(ContractError, match=r"'tenure_days'.*extract_features"):
        sk.BetaGeoModel().fit(without)
    with pytest.raises(TypeError, match="polars, pyarrow, DuckDB"):
        sk.BetaGeoModel().fit([1, 2, 3])
