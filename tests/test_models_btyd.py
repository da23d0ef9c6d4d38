"""The purchase and spend models: inputs, degenerate data, uncertainty, persistence."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import segmentkit as sk
from _btyd_synthetic import synthetic
from segmentkit.errors import (
    ContractError,
    InvalidParameterError,
    NotFittedError,
    PersistenceError,
)
from segmentkit.models._summary import group_rows

BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PNBD = {"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67}
GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def lines() -> pd.DataFrame:
    """Raw order lines of six customers, one of them with a same-day second order."""
    return pd.DataFrame(
        {
            "customer": ["a", "a", "a", "b", "b", "c", "d", "d", "e", "e", "e", "f"],
            "ts": pd.to_datetime(
                [
                    "2024-01-02 10:00", "2024-01-02 18:00", "2024-02-10 00:00",
                    "2024-01-05 00:00", "2024-03-01 00:00", "2024-01-20 00:00",
                    "2024-02-01 00:00", "2024-06-01 00:00", "2024-01-03 00:00",
                    "2024-01-31 00:00", "2024-05-15 00:00", "2024-06-20 00:00",
                ]
            ),
            "amount": [10.0, 5.0, 20.0, 30.0, 30.0, 12.0, 8.0, 16.0, 40.0, 50.0, 60.0, 9.0],
        }
    )  # fmt: skip


def features_with_days(raw: pd.DataFrame, as_of: str) -> sk.CustomerFeatures:
    """The features the models read, with ``purchase_days`` checked against the lines."""
    tx = sk.Transactions.from_frame(raw, customer_id="customer", timestamp="ts", amount="amount")
    feats = sk.extract_features(tx, as_of=as_of)
    kept = raw[raw["ts"] <= pd.Timestamp(as_of)]
    days = kept.groupby("customer")["ts"].agg(lambda s: s.dt.normalize().nunique())
    expected = days.reindex(feats.frame.index).fillna(0).astype(np.int64)
    pd.testing.assert_series_equal(feats.frame["purchase_days"], expected, check_names=False)
    return feats


# -- inputs -----------------------------------------------------------------------------


def test_summary_from_features_counts_purchase_days_and_weeks() -> None:
    feats = features_with_days(lines(), "2024-06-30")
    btyd = pd.DataFrame(
        {
            "frequency": feats.frame["purchase_days"] - 1,
            "recency": (feats.frame["last_purchase"].dt.normalize()
                        - feats.frame["first_purchase"].dt.normalize()).dt.days / 7,
            "T": (pd.Timestamp("2024-06-30", tz="UTC")
                  - feats.frame["first_purchase"].dt.normalize()).dt.days / 7,
        }
    )  # fmt: skip
    model = sk.BetaGeoModel.from_params(BG)
    assert btyd.loc["a", "frequency"] == 1  # two orders on 2 January are one purchase day
    pd.testing.assert_series_equal(model.p_alive(feats), model.p_alive(btyd), check_names=False)
    expected = model.expected_purchases(feats, 10)
    assert expected.name == "expected_purchases_10w"
    assert expected.index.name == "customer_id"


def test_missing_purchase_days_is_named_with_a_fix() -> None:
    tx = sk.Transactions.from_frame(
        lines(), customer_id="customer", timestamp="ts", amount="amount"
    )
    feats = sk.extract_features(tx, as_of="2024-06-30")
    feats.frame = feats.frame.drop(columns="purchase_days")
    with pytest.raises(ContractError, match=r"'purchase_days'.*distinct days.*extract_features"):
        sk.BetaGeoModel().fit(feats)
    with pytest.raises(ContractError, match="no 'T' column"):
        sk.BetaGeoModel().fit(pd.DataFrame({"frequency": [1], "recency": [2.0]}))


@pytest.mark.parametrize(
    ("column", "values", "problem"),
    [
        ("frequency", [1.5, 0.0], "whole number"),
        ("recency", [-1.0, 0.0], "negative"),
        ("T", [0.5, 4.0], "smaller than 'recency'"),
    ],
)
def test_impossible_btyd_rows_are_refused_by_column(
    column: str, values: list, problem: str
) -> None:
    frame = pd.DataFrame({"frequency": [2.0, 0.0], "recency": [1.0, 0.0], "T": [4.0, 4.0]})
    frame[column] = values
    with pytest.raises(ContractError, match=problem):
        sk.BetaGeoModel().fit(frame)


def test_customers_without_purchase_are_counted_and_get_nan() -> None:
    frame = synthetic(300, 3)
    frame.loc[[0, 1], ["frequency", "recency", "T"]] = np.nan
    with pytest.warns(sk.errors.SegmentkitWarning, match="2 no purchase"):
        bg = sk.BetaGeoModel().fit(frame)
    assert bg.n_excluded_ == {"no_purchase": 2}
    assert bg.n_customers_ == 298
    out = bg.transform(frame, horizon=4)
    assert out.loc[[0, 1], ["p_alive", "expected_purchases_4w"]].isna().all().all()
    assert out.loc[2:, "p_alive"].between(0, 1).all()


def test_no_purchase_at_all_is_refused() -> None:
    frame = pd.DataFrame({"frequency": [np.nan], "recency": [np.nan], "T": [np.nan]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ContractError, match="no customer to learn from"):
            sk.BetaGeoModel().fit(frame)


# -- degenerate data ---------------------------------------------------------------------


@pytest.mark.parametrize("model", [sk.BetaGeoModel, sk.ParetoNBDModel])
def test_nobody_repeats_warns_and_does_not_crash(model: type) -> None:
    T = np.linspace(5.0, 39.0, 200)
    frame = pd.DataFrame({"frequency": 0.0, "recency": 0.0, "T": T})
    with pytest.warns(sk.errors.SegmentkitWarning, match="none of the 200 customers bought again"):
        fitted = model().fit(frame)
    assert np.isfinite(list(fitted.params_.values())).all()
    assert fitted.p_alive(frame).eq(1.0).all() if model is sk.BetaGeoModel else True


def test_everyone_buying_on_the_last_day_warns() -> None:
    frame = pd.DataFrame({"frequency": [3.0, 5.0, 8.0] * 20, "recency": 10.0, "T": 10.0})
    with pytest.warns(sk.errors.SegmentkitWarning, match="bought on the last day"):
        sk.BetaGeoModel().fit(frame)


def test_few_repeaters_warn_with_the_count() -> None:
    frame = synthetic(60, 11)
    repeaters = int((frame["frequency"] > 0).sum())
    with pytest.warns(sk.errors.SegmentkitWarning, match=f"only {repeaters} of 60"):
        sk.BetaGeoModel(min_repeaters=100).fit(frame)


# -- likelihood and gradient -------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    theta=st.lists(st.floats(0.05, 20.0), min_size=4, max_size=4),
    seed=st.integers(0, 1000),
)
def test_bg_gradient_matches_finite_differences(theta: list, seed: int) -> None:
    frame = synthetic(40, seed)
    cols = [frame[c].to_numpy() for c in ("frequency", "recency", "T")]
    point = np.array(theta)
    _, grad = sk.BetaGeoModel._loglik(point, *cols)
    for j in range(4):
        step = np.zeros(4)
        step[j] = 1e-6 * point[j]
        up = sk.BetaGeoModel._loglik(point + step, *cols)[0].sum()
        down = sk.BetaGeoModel._loglik(point - step, *cols)[0].sum()
        numeric = (up - down) / (2 * step[j])
        assert grad[j].sum() == pytest.approx(numeric, rel=1e-4, abs=1e-6)


def test_gg_gradient_matches_finite_differences() -> None:
    frame = synthetic(200, 5)
    frame = frame[frame["frequency"] > 0]
    cols = [frame["frequency"].to_numpy(), frame["monetary_value"].to_numpy()]
    point = np.array([3.0, 2.5, 12.0])
    _, grad = sk.GammaGammaModel._loglik(point, *cols)
    for j in range(3):
        step = np.zeros(3)
        step[j] = 1e-6 * point[j]
        up = sk.GammaGammaModel._loglik(point + step, *cols)[0].sum()
        down = sk.GammaGammaModel._loglik(point - step, *cols)[0].sum()
        assert grad[j].sum() == pytest.approx((up - down) / (2 * step[j]), rel=1e-5)


def test_pareto_likelihood_matches_numerical_integration() -> None:
    # The closed form in log space against direct quadrature of its integral.
    from scipy.integrate import quad
    from scipy.special import gammaln

    r, alpha, s, beta = 0.8, 3.0, 0.7, 9.0
    for x, t_x, T, a, b in [(3.0, 20.0, 39.0, alpha, beta), (40.0, 2.0, 39.0, beta, alpha)]:
        params = {"r": r, "alpha": a, "s": s, "beta": b}
        head = np.exp(gammaln(r + x) - gammaln(r)) * a**r * b**s
        tail = quad(
            lambda tau, a=a, b=b, x=x: s / ((a + tau) ** (r + x) * (b + tau) ** (s + 1)),
            t_x,
            T,
            epsabs=0,
            epsrel=1e-13,
            limit=200,
        )[0]
        direct = np.log(head * (1 / ((a + T) ** (r + x) * (b + T) ** s) + tail))
        theta = np.array([params[k] for k in ("r", "alpha", "s", "beta")])
        ll = sk.ParetoNBDModel._loglik(theta, np.array([x]), np.array([t_x]), np.array([T]))[0]
        assert ll[0] == pytest.approx(direct, rel=1e-9)


def test_pareto_likelihood_stays_finite_for_heavy_buyers() -> None:
    x = np.array([0.0, 50.0, 400.0])
    theta = np.array([0.5, 0.01, 2.0, 300.0])
    ll = sk.ParetoNBDModel._loglik(theta, x, np.array([0.0, 30.0, 38.0]), np.full(3, 39.0))[0]
    assert np.isfinite(ll).all()


@settings(max_examples=40, deadline=None)
@given(
    log_theta=st.lists(st.floats(-3.0, 3.0), min_size=4, max_size=4),
    seed=st.integers(0, 1000),
)
def test_pareto_gradient_matches_finite_differences(log_theta: list, seed: int) -> None:
    # Heavy buyers included: there the naive hypergeometric form overflows.
    frame = synthetic(30, seed)
    x, t_x, T = (frame[c].to_numpy().copy() for c in ("frequency", "recency", "T"))
    x[:3] = [200.0, 400.0, 1000.0]
    point = np.exp(np.array(log_theta))
    ll, grad = sk.ParetoNBDModel._loglik(point, x, t_x, T)
    assert np.isfinite(ll).all()
    assert np.isfinite(grad).all()
    for j in range(4):
        step = np.zeros(4)
        step[j] = 1e-6 * point[j]
        up = sk.ParetoNBDModel._loglik(point + step, x, t_x, T)[0].sum()
        down = sk.ParetoNBDModel._loglik(point - step, x, t_x, T)[0].sum()
        numeric = (up - down) / (2 * step[j])
        scale = np.abs(grad[j]).sum()  # central differences lose digits to cancellation
        assert grad[j].sum() == pytest.approx(numeric, abs=1e-5 * scale + 1e-6)


def _tail_gradient_by_quadrature(theta: np.ndarray, x: float, y: float) -> np.ndarray:
    """d/dtheta log((r+s+x) * integral over tau > y of (alpha+tau)^-(r+x) (beta+tau)^-(s+1))."""
    from scipy.integrate import quad

    r, alpha, s, beta = theta

    def mean(g):  # integral of g * density, the density scaled to 1 at tau = y
        def f(tau):
            return np.exp(
                -(r + x) * np.log((alpha + tau) / (alpha + y))
                - (s + 1) * np.log((beta + tau) / (beta + y))
            )

        edges = [y, y + 1e-3 * (alpha + y), y + 0.1 * (alpha + y), y + alpha + y, np.inf]
        return sum(
            quad(lambda t: g(t) * f(t), lo, hi, epsabs=0, epsrel=1e-13, limit=500)[0]
            for lo, hi in itertools.pairwise(edges)
        )

    total = mean(lambda t: 1.0)
    a = r + s + x
    return np.array([
        1 / a - mean(lambda t: np.log(alpha + t)) / total,
        -(r + x) * mean(lambda t: 1 / (alpha + t)) / total,
        1 / a - mean(lambda t: np.log(beta + t)) / total,
        -(s + 1) * mean(lambda t: 1 / (beta + t)) / total,
    ])  # fmt: skip


@pytest.mark.parametrize(
    ("theta", "x", "y"),
    [
        ((0.8, 3.0, 0.7, 9.0), 3.0, 20.0),
        ((0.12, 11.9, 0.044, 0.98), 400.0, 0.0),  # alpha > beta, heavy buyer
        ((0.033, 1.0, 1.09, 30.8), 400.0, 0.0),  # beta > alpha, z near 1
        ((0.024, 0.024, 43.0, 1.15), 0.0, 39.3),
        ((0.55, 10.58, 0.61, 11.67), 0.0, 0.0),
    ],
)
def test_pareto_tail_gradient_is_exact(theta: tuple, x: float, y: float) -> None:
    from segmentkit.models._pareto import _tail_grad

    point = np.array(theta)
    _, grad = _tail_grad(point, np.array([x]), np.array([y]))
    np.testing.assert_allclose(grad[:, 0], _tail_gradient_by_quadrature(point, x, y), rtol=1e-9)


def _tail_by_quadrature(theta: np.ndarray, x: float, y: float) -> float:
    """log((r+s+x) * integral over tau > y of (alpha+tau)^-(r+x) (beta+tau)^-(s+1))."""
    from scipy.integrate import quad

    r, alpha, s, beta = theta
    start = min(alpha, beta) + y
    edges = [y, *(y + start * 10.0**k for k in range(-3, 13)), np.inf]
    total = sum(
        quad(
            lambda t: np.exp(
                -(r + x) * np.log((alpha + t) / (alpha + y))
                - (s + 1) * np.log((beta + t) / (beta + y))
            ),
            lo,
            hi,
            epsabs=0,
            epsrel=1e-13,
            limit=1000,
        )[0]
        for lo, hi in itertools.pairwise(edges)
    )
    return float(
        np.log(r + s + x)
        + np.log(total)
        - (r + x) * np.log(alpha + y)
        - (s + 1) * np.log(beta + y)
    )


# z -> 1: the series would need more than _MAX_TERMS terms (the bundled grocery sample
# fits to s ~ 81, beta ~ 1e5), on both sides of alpha = beta, and rows just past the switch.
_NEAR_ONE = [
    ((1.6207673, 3.54406, 80.9806, 103043.6), 0.0, 0.0),
    ((1.6207673, 3.54406, 80.9806, 103043.6), 12.0, 30.0),
    ((1.62075, 3.544054, 6116.0, 7783712.6), 30.0, 52.0),
    ((0.3, 0.02, 2.0, 900.0), 0.0, 5.0),
    ((0.7, 5000.0, 1.2, 0.5), 40.0, 1.0),  # alpha > beta: q = s+1 on beta
    ((2.0, 0.5, 300.0, 2.0e6), 0.0, 0.0),
]


@pytest.mark.parametrize(("theta", "x", "y"), _NEAR_ONE)
def test_pareto_split_tail_matches_quadrature(theta: tuple, x: float, y: float) -> None:
    from segmentkit.models._pareto import _log_tail, _series_finishes, _split_tail, _tail_grad

    point = np.array(theta)
    xs, ys = np.array([x]), np.array([y])
    r, alpha, s, beta = point
    z = abs(alpha - beta) / (max(alpha, beta) + ys)
    b = np.array([s + 1.0 if alpha >= beta else r + x])
    assert not _series_finishes(r + s + xs, b, z)[0]  # these rows take the split
    value, grad = _split_tail(point, xs, ys)
    assert value[0] == pytest.approx(_tail_by_quadrature(point, x, y), rel=1e-13, abs=1e-11)
    np.testing.assert_allclose(grad[:, 0], _tail_gradient_by_quadrature(point, x, y), rtol=1e-10)
    routed = _tail_grad(point, xs, ys)
    assert routed[0][0] == value[0]
    np.testing.assert_array_equal(routed[1], grad)
    assert _log_tail(point, xs, ys)[0] == value[0]


@settings(max_examples=60, deadline=None)
@given(
    log_r=st.floats(-3.0, 2.0),
    log_small=st.floats(-4.0, 3.0),
    log_gap=st.floats(2.0, 14.0),
    log_s=st.floats(-3.0, 6.0),
    alpha_small=st.booleans(),
    x=st.integers(0, 300),
    y=st.floats(0.0, 60.0),
)
def test_pareto_split_tail_agrees_with_the_series(
    log_r: float,
    log_small: float,
    log_gap: float,
    log_s: float,
    alpha_small: bool,
    x: int,
    y: float,
) -> None:
    # Wherever z > 1/2 both routes apply: the split (used past _MAX_TERMS) must agree
    # with the series (run here with enough terms), value and gradient, and with
    # central differences of itself.
    from segmentkit.models._pareto import _series_tail, _split_tail

    small, big = np.exp(log_small), np.exp(log_small + log_gap)
    alpha, beta = (small, big) if alpha_small else (big, small)
    point = np.array([np.exp(log_r), alpha, np.exp(log_s), beta])
    xs, ys = np.array([float(x)]), np.array([y])
    assume(abs(alpha - beta) / (max(alpha, beta) + y) > 0.5)
    value, grad = _split_tail(point, xs, ys)
    assert np.isfinite(value).all()
    assert np.isfinite(grad).all()
    series_value, series_grad, slow = _series_tail(point, xs, ys, max_terms=20_000)
    assume(not slow[0])
    # The series is the less exact of the two: it adds up to 20 000 rounding errors, and
    # its (1-b) log(1-z) turns the rounding of z into b * eps / (1-z).
    z = abs(alpha - beta) / (max(alpha, beta) + y)
    b = point[2] + 1.0 if alpha >= beta else point[0] + x
    slack = 1e-10 + 1e-15 * b / (1.0 - z)
    assert value[0] == pytest.approx(series_value[0], rel=1e-12, abs=slack)
    np.testing.assert_allclose(grad[:, 0], series_grad[:, 0], rtol=1e-8, atol=slack)
    for j in range(4):
        step = np.zeros(4)
        step[j] = 1e-6 * point[j]
        up = _split_tail(point + step, xs, ys)[0][0]
        down = _split_tail(point - step, xs, ys)[0][0]
        numeric = (up - down) / (2 * step[j])
        assert grad[j, 0] == pytest.approx(numeric, rel=1e-5, abs=1e-7 * (1 + abs(value[0])))


def test_pareto_slow_series_take_the_split(monkeypatch: pytest.MonkeyPatch) -> None:
    # With a short series allowed, rows with z > 1/2 take the split; same values.
    import segmentkit.models._pareto as pareto

    point = np.array([0.5, 2.0, 0.7, 30.0])
    x, y = np.array([0.0, 5.0, 50.0]), np.array([0.0, 1.0, 3.0])
    exact = pareto._tail_grad(point, x, y)
    monkeypatch.setattr(pareto, "_MAX_TERMS", 2)
    assert not pareto._series_finishes(
        point[0] + point[2] + x, x + point[0], 28.0 / (30.0 + y)
    ).any()
    split = pareto._tail_grad(point, x, y)
    np.testing.assert_allclose(split[0], exact[0], rtol=1e-13)
    np.testing.assert_allclose(split[1], exact[1], rtol=1e-11)
    np.testing.assert_allclose(pareto._log_tail(point, x, y), exact[0], rtol=1e-13)


def test_pareto_sample_regime_never_runs_a_long_series(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bundled grocery sample drives the fit to z within 1e-3 of 1: no series may run
    # to _MAX_TERMS unfinished (there is no slower fallback left), yet many rows split.
    import segmentkit.models._pareto as pareto

    calls: list[int] = []
    real = pareto._series

    def counted(a, b, z, max_terms=None):  # type: ignore[no-untyped-def]
        out = real(a, b, z, max_terms)
        assert not out[-1].any()  # every series that runs finishes
        calls.append(a.size)
        return out

    monkeypatch.setattr(pareto, "_series", counted)
    theta = np.array([1.6207673, 3.54406, 80.9806, 103043.6])
    x = np.repeat(np.arange(0.0, 60.0, 3.0), 6)
    y = np.tile([0.0, 1.0, 10.0, 30.0, 45.0, 52.0], 20)
    z = (theta[3] - theta[1]) / (theta[3] + y)
    assert z.min() > 1 - 1e-3
    value, grad = pareto._tail_grad(theta, x, y)
    assert np.isfinite(value).all()
    assert np.isfinite(grad).all()
    finishes = pareto._series_finishes(theta[0] + theta[2] + x, theta[0] + x, z)
    assert (~finishes).sum() > 20  # the split is exercised
    np.testing.assert_allclose(pareto._log_tail(theta, x, y), value, rtol=1e-13)


@pytest.mark.parametrize("model", [sk.BetaGeoModel, sk.ParetoNBDModel])
def test_summed_objective_equals_the_weighted_row_likelihood(model: type) -> None:
    from segmentkit.models._fit import summed

    frame = synthetic(300, 4)
    cols = [frame[c].to_numpy() for c in ("frequency", "recency", "T")]
    distinct, _, counts = group_rows(*cols)
    grouped = tuple(distinct[:, j] / (10.0 if j else 1.0) for j in range(3))
    weights = counts.astype(float)
    fast = model()._objective(grouped, weights)
    slow = summed(model._loglik, grouped, weights)
    rng = np.random.default_rng(0)
    for _ in range(20):
        theta = np.exp(rng.uniform(-3.0, 3.0, 4))
        value, grad = fast(theta)
        value_ref, grad_ref = slow(theta)
        assert value == pytest.approx(value_ref, rel=1e-12)
        np.testing.assert_allclose(grad, grad_ref, rtol=1e-9, atol=1e-9)


def test_gamma_gamma_summed_objective_equals_the_weighted_row_likelihood() -> None:
    from segmentkit.models._fit import summed

    rng = np.random.default_rng(5)
    x = rng.integers(1, 30, 500).astype(float)
    m = np.round(rng.gamma(4.0, 10.0, 500) / 25.0, 4)
    weights = rng.integers(1, 4, 500).astype(float)
    fast = sk.GammaGammaModel()._objective((x, m), weights)
    slow = summed(sk.GammaGammaModel._loglik, (x, m), weights)
    for _ in range(20):
        theta = np.exp(rng.uniform(-3.0, 3.0, 3))
        value, grad = fast(theta)
        value_ref, grad_ref = slow(theta)
        assert value == pytest.approx(value_ref, rel=1e-11)
        np.testing.assert_allclose(grad, grad_ref, rtol=1e-9, atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from([0.0, 0.5, 1.25, 3.0]), st.integers(0, 3)),
        min_size=1,
        max_size=60,
    )
)
def test_grouping_matches_a_lexicographic_sort(rows: list) -> None:
    cols = [np.array([row[j] for row in rows], dtype=float) for j in range(3)]
    distinct, inverse, counts = group_rows(*cols)
    expected, expected_counts = np.unique(np.column_stack(cols), axis=0, return_counts=True)
    np.testing.assert_array_equal(distinct, expected)
    np.testing.assert_array_equal(counts, expected_counts)
    np.testing.assert_array_equal(distinct[inverse], np.column_stack(cols))


def test_grouping_keeps_every_customer() -> None:
    frame = synthetic(500, 1)
    cols = [frame[c].to_numpy() for c in ("frequency", "recency", "T")]
    distinct, inverse, counts = group_rows(*cols)
    assert counts.sum() == 500
    np.testing.assert_array_equal(distinct[inverse], np.column_stack(cols))


# -- uncertainty, persistence, interface ----------------------------------------------------


def test_fit_reports_uncertainty_and_round_trips_through_json() -> None:
    frame = synthetic(400, 7)
    bg = sk.BetaGeoModel().fit(frame)
    table = bg.summary()
    assert list(table.columns) == ["estimate", "standard_error", "lower", "upper"]
    assert (table["standard_error"] > 0).all()
    assert (table["lower"] < table["estimate"]).all()
    assert (table["estimate"] < table["upper"]).all()
    again = sk.BetaGeoModel.from_dict(json.loads(json.dumps(bg.to_dict())))
    assert again.params_ == bg.params_
    assert again.log_likelihood_ == bg.log_likelihood_
    pd.testing.assert_frame_equal(again.summary(), table)
    pd.testing.assert_series_equal(again.p_alive(frame), bg.p_alive(frame))
    unfitted = sk.ParetoNBDModel.from_dict(sk.ParetoNBDModel(time_unit="D").to_dict())
    assert unfitted.time_unit == "D"
    assert not hasattr(unfitted, "params_")


def test_damaged_documents_are_refused() -> None:
    document = sk.GammaGammaModel.from_params(GG).to_dict()
    with pytest.raises(PersistenceError, match="not a BetaGeoModel"):
        sk.BetaGeoModel.from_dict(document)
    document["fitted"]["params_"]["p"] = -1
    with pytest.raises(PersistenceError, match="damaged"):
        sk.GammaGammaModel.from_dict(document)


def test_parameters_are_validated_at_fit_and_unfitted_models_refuse() -> None:
    with pytest.raises(InvalidParameterError, match="'time_unit' parameter of BetaGeoModel"):
        sk.BetaGeoModel(time_unit="Q").fit(synthetic(50, 1))
    with pytest.raises(NotFittedError):
        sk.BetaGeoModel().p_alive(synthetic(5, 1))
    with pytest.raises(InvalidParameterError, match="horizon"):
        sk.BetaGeoModel.from_params(BG).expected_purchases(synthetic(5, 1), -1)


def test_time_unit_scales_alpha_only() -> None:
    weekly = synthetic(400, 7)
    daily = weekly.assign(recency=weekly["recency"] * 7, T=weekly["T"] * 7)
    w = sk.BetaGeoModel(time_unit="W").fit(weekly).params_
    d = sk.BetaGeoModel(time_unit="D").fit(daily).params_
    assert d["alpha"] == pytest.approx(7 * w["alpha"], rel=1e-5)
    assert d["r"] == pytest.approx(w["r"], rel=1e-5)
    assert d["b"] == pytest.approx(w["b"], rel=1e-5)


def test_gamma_gamma_and_clv() -> None:
    frame = synthetic(400, 7).set_axis([f"c{i}" for i in range(400)])
    gg = sk.GammaGammaModel().fit(frame)
    assert gg.n_excluded_["no_repeat_or_spend"] == int((frame["frequency"] == 0).sum())
    spend = gg.expected_spend(frame)
    p, q, v = (gg.params_[k] for k in "pqv")
    once = frame["frequency"] == 0
    assert np.allclose(spend[once], p * v / (q - 1))
    bg = sk.BetaGeoModel.from_params(BG)
    clv = sk.customer_lifetime_value(bg, gg, frame, horizon=1, discount_rate=0.1, time_unit="W")
    assert clv.name == "predicted_clv_1w"
    np.testing.assert_allclose(clv, spend * bg.expected_purchases(frame, 1.0) / 1.1, rtol=1e-12)
    yearly = sk.customer_lifetime_value(bg, gg, frame, horizon=12, discount_rate=0.0)
    np.testing.assert_allclose(
        yearly, spend * bg.expected_purchases(frame, 12 * 30.4375 / 7), rtol=1e-9
    )
    assert "expected_spend" in gg.transform(frame).columns


def test_import_segmentkit_does_not_load_scipy() -> None:
    code = "import sys, segmentkit; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
