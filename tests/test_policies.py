"""Store policies of the transactions contract, and named segments for non-buyers.

Every policy is checked on the pandas path and, where the contract is validated in
another engine, against polars and DuckDB (reports must be equal).
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit.contracts import _policies
from segmentkit.errors import ContractError, InvalidParameterError, SegmentkitWarning

CUTOFF = "2024-12-31"
COLUMNS = {
    "customer_id": "customer",
    "timestamp": "when",
    "order_id": "order",
    "product_id": "sku",
    "amount": "total",
}


def _shop() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order": ["1", "1", "2", "3", "3", "4", "5"],
            "customer": ["a", "a", "b", "b", "b", "c", "c"],
            "when": pd.to_datetime(
                [
                    "2024-03-01",
                    "2024-03-01",
                    "2024-03-02",
                    "2024-03-05",
                    "2024-03-05",
                    "2024-04-01",
                    "2024-04-02",
                ]
            ),
            "sku": ["mug", "POST", "gift_50", "tea", "BANK CHARGES", "DOT", "mug"],
            "total": [12.0, 4.5, 50.0, 8.0, 1.25, 3.0, 12.0],
        }
    )


def _native(frame: pd.DataFrame, backend: str) -> Any:
    if backend == "polars":
        pl = pytest.importorskip("polars")
        return pl.from_pandas(frame)
    duckdb = pytest.importorskip("duckdb")
    pa = pytest.importorskip("pyarrow")
    return duckdb.from_arrow(pa.Table.from_pandas(frame, preserve_index=False))


def _both(frame: pd.DataFrame, backend: str, **kwargs: Any) -> sk.ValidationReport:
    """The pandas report, checked equal to the native one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmentkitWarning)
        expected = sk.Transactions.from_frame(frame, **kwargs).report
        got = sk.Transactions.from_frame(_native(frame, backend), **kwargs).report
    assert got == expected, (str(got), str(expected))
    return expected


def _accounted(report: sk.ValidationReport) -> None:
    assert report.rows_kept + sum(report.excluded.values()) == report.rows_read


# --------------------------------------------------------------- exclude_products


@pytest.mark.parametrize("backend", ["polars", "duckdb"])
@pytest.mark.parametrize(
    "products",
    [
        ["POST", "DOT", "BANK CHARGES", "gift_*"],
        "POST,DOT,BANK CHARGES,gift_*",
        " POST , DOT,BANK CHARGES , gift_* ,",
        ("POST", "D?T", "BANK*", "gift_*"),
    ],
)
def test_exclude_products_counts_lines_and_value(backend, products):
    report = _both(_shop(), backend, **COLUMNS, exclude_products=products, max_timestamp=CUTOFF)
    assert report.excluded == {"excluded_product": 4}
    assert report.excluded_amounts == {"excluded_product": 58.75}
    assert report.rows_kept == 3
    _accounted(report)
    assert "excluded_product: 4 (amount 58.75)" in str(report)


def test_excluded_products_leave_spend_and_counts():
    tx = sk.Transactions.from_frame(
        _shop(), **COLUMNS, exclude_products="POST,DOT,BANK CHARGES,gift_*", max_timestamp=CUTOFF
    )
    features = sk.extract_features(tx, as_of="2024-05-01").frame
    assert features.loc["a", "monetary"] == 12.0
    assert features.loc["b", "monetary"] == 8.0
    assert features.loc["c", "frequency"] == 1  # order 4 held only postage
    assert set(tx.data["product_id"].astype(str)) == {"mug", "tea"}


def test_patterns_are_globs_not_regular_expressions():
    frame = _shop().assign(sku=["a.b", "axb", "a+b", "[x]", "x", "gift_", "gift"])
    tx = sk.Transactions.from_frame(
        frame, **COLUMNS, exclude_products=["a.b", "a+b", "[x]", "gift_*"], max_timestamp=CUTOFF
    )
    assert tx.report.excluded == {"excluded_product": 4}
    assert sorted(tx.data["product_id"].astype(str)) == ["axb", "gift", "x"]


def test_exclude_products_needs_a_product_column():
    frame = _shop().drop(columns="sku")
    columns = {k: v for k, v in COLUMNS.items() if k != "product_id"}
    with pytest.raises(InvalidParameterError, match="product_id"):
        sk.Transactions.from_frame(frame, **columns, exclude_products="POST")


@pytest.mark.parametrize("value", [5, [None], [True], {"a": 1}])
def test_exclude_products_of_the_wrong_type_are_refused(value):
    with pytest.raises(InvalidParameterError, match="exclude_products"):
        sk.Transactions.from_frame(_shop(), **COLUMNS, exclude_products=value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    skus=st.lists(st.sampled_from(["POST", "DOT", "mug", "gift_1", "gift_22", "tea"]), min_size=1),
    patterns=st.lists(st.sampled_from(["POST", "DOT", "gift_*", "gift_?", "m*", "none"])),
)
def test_excluded_products_match_fnmatch_and_add_up(skus, patterns):
    import fnmatch

    n = len(skus)
    frame = pd.DataFrame(
        {
            "customer": ["a"] * n,
            "when": ["2024-01-01"] * n,
            "sku": skus,
            "total": np.arange(1.0, n + 1),
        }
    )
    tx = sk.Transactions.from_frame(
        frame,
        customer_id="customer",
        timestamp="when",
        product_id="sku",
        amount="total",
        exclude_products=patterns,
        max_timestamp=CUTOFF,
    )
    matched = [any(fnmatch.fnmatchcase(s, p) for p in patterns) for s in skus]
    assert tx.report.excluded.get("excluded_product", 0) == sum(matched)
    expected_value = float(np.arange(1.0, n + 1)[np.array(matched, dtype=bool)].sum())
    assert tx.report.excluded_amounts.get("excluded_product", 0.0) == pytest.approx(expected_value)
    _accounted(tx.report)


# --------------------------------------------------------------- future-dated lines


def _dated() -> pd.DataFrame:
    return _shop().assign(
        when=pd.to_datetime(
            [
                "2024-03-01",
                "2024-03-01",
                "2024-03-02",
                "2031-03-05",
                "2031-03-05",
                "2024-04-01",
                "2099-01-01",
            ]
        )
    )


@pytest.mark.parametrize("backend", ["polars", "duckdb"])
def test_future_lines_are_excluded_counted_and_warned_about(backend):
    with pytest.warns(SegmentkitWarning, match="3 lines are dated after max_timestamp=2024-12-31"):
        tx = sk.Transactions.from_frame(_dated(), **COLUMNS, max_timestamp=CUTOFF)
    assert tx.report.excluded == {"future_timestamp": 3}
    _accounted(tx.report)
    # The default as_of is the last kept line, never a future one.
    assert sk.extract_features(tx).as_of == pd.Timestamp("2024-04-01", tz="UTC")
    with pytest.warns(SegmentkitWarning, match="future_timestamp"):
        native = sk.Transactions.from_frame(
            _native(_dated(), backend), **COLUMNS, max_timestamp=CUTOFF
        )
    assert native.report == tx.report
    features = sk.extract_features(native, output="pandas")
    assert features.as_of == pd.Timestamp("2024-04-01", tz="UTC")


def test_the_default_cutoff_is_the_time_of_the_run(monkeypatch):
    monkeypatch.setattr(_policies, "run_time", lambda: pd.Timestamp("2032-01-01", tz="UTC"))
    with pytest.warns(SegmentkitWarning, match=r"the time of the run \(2032-01-01T00:00:00"):
        tx = sk.Transactions.from_frame(_dated(), **COLUMNS)
    assert tx.report.excluded == {"future_timestamp": 1}
    monkeypatch.setattr(_policies, "run_time", lambda: pd.Timestamp("2100-01-01", tz="UTC"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SegmentkitWarning)
        assert sk.Transactions.from_frame(_dated(), **COLUMNS).report.excluded == {}


def test_future_keep_and_raise():
    kept = sk.Transactions.from_frame(_dated(), **COLUMNS, future="keep", max_timestamp=CUTOFF)
    assert kept.report.rows_kept == 7
    with pytest.raises(ContractError, match="future='raise'") as caught:
        sk.Transactions.from_frame(_dated(), **COLUMNS, future="raise", max_timestamp=CUTOFF)
    assert "row 3" in str(caught.value)
    with pytest.raises(InvalidParameterError, match="'future'"):
        sk.Transactions.from_frame(_dated(), **COLUMNS, future="drop")


@pytest.mark.parametrize("value", ["next tuesday", "2024-13-45", object()])
def test_an_unreadable_cutoff_is_refused(value):
    with pytest.raises(InvalidParameterError, match="max_timestamp"):
        sk.Transactions.from_frame(_dated(), **COLUMNS, max_timestamp=value)


def test_a_cutoff_with_a_zone_and_as_a_number():
    frame = _dated()
    with pytest.warns(SegmentkitWarning, match="2024-03-01T10:00:00"):
        tx = sk.Transactions.from_frame(frame, **COLUMNS, max_timestamp="2024-03-01T12:00+02:00")
    assert tx.report.excluded == {"future_timestamp": 5}
    with pytest.warns(SegmentkitWarning):
        tx = sk.Transactions.from_frame(frame, **COLUMNS, max_timestamp=20240301)
    assert tx.report.excluded == {"future_timestamp": 5}


# --------------------------------------------------------------- duplicates


@pytest.mark.parametrize("backend", ["polars", "duckdb"])
def test_duplicates_kept_are_counted_on_mapped_columns(backend):
    frame = _shop()
    frame = pd.concat([frame, frame.iloc[[0, 0, 3]]], ignore_index=True)
    frame["note"] = [f"n{i}" for i in range(len(frame))]  # unmapped: never compared
    report = _both(frame, backend, **COLUMNS, max_timestamp=CUTOFF)
    assert report.flagged == {"duplicate_line": 3}
    assert report.excluded == {}
    assert "kept, flagged duplicate_line: 3" in str(report)
    dropped = _both(frame, backend, **COLUMNS, duplicates="drop", max_timestamp=CUTOFF)
    assert dropped.excluded == {"duplicate_line": 3}
    assert dropped.flagged == {}


def test_duplicates_excluded_for_another_reason_are_not_flagged():
    frame = pd.concat([_shop()] * 2, ignore_index=True)
    report = sk.Transactions.from_frame(
        frame, **COLUMNS, exclude_products="POST,DOT,BANK CHARGES,gift_*", max_timestamp=CUTOFF
    ).report
    assert report.excluded == {"excluded_product": 8}
    assert report.flagged == {"duplicate_line": 3}
    _accounted(report)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", None]),
            st.sampled_from(["2024-01-01", "2024-01-02"]),
            st.sampled_from([1.0, -1.0, 0.0, np.nan, -0.0]),
            st.sampled_from(["p", "q"]),
        ),
        min_size=1,
        max_size=30,
    ),
    drop=st.booleans(),
)
def test_duplicate_lines_agree_with_pandas(rows, drop):
    frame = pd.DataFrame(rows, columns=["customer", "when", "total", "sku"])
    mapping = {"customer_id": "customer", "timestamp": "when", "amount": "total"}
    if frame["customer"].isna().all():
        return
    tx = sk.Transactions.from_frame(
        frame,
        **mapping,
        product_id="sku",
        duplicates="drop" if drop else "keep",
        max_timestamp=CUTOFF,
    )
    usable = frame["customer"].notna() & frame["total"].notna()
    # pandas compares -0.0 equal to 0.0 and NaN equal to NaN, as segmentkit does.
    repeats = int((frame[usable].duplicated() & True).sum())
    counted = tx.report.excluded.get("duplicate_line", 0) + tx.report.flagged.get(
        "duplicate_line", 0
    )
    assert counted == repeats
    _accounted(tx.report)


# --------------------------------------------------------------- impossible values


def _ledger(**changes: Any) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer": ["a", "a", "b", "b"],
            "when": ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"],
            "order": ["1", "2", "3", "C4"],
            "sku": ["mug", "B", "tea", "tea"],
            "qty": [1.0, 1.0, 2.0, 1.0],
            "price": [12.0, -11062.06, 4.0, 4.0],
            "disc": [0.0, 0.0, 0.5, 0.0],
        }
    )
    return frame.assign(**changes)


LEDGER = {
    "customer_id": "customer",
    "timestamp": "when",
    "order_id": "order",
    "product_id": "sku",
    "quantity": "qty",
    "unit_price": "price",
    "discount": "disc",
}


def test_a_negative_price_on_a_sale_is_refused_naming_rows_and_options():
    with pytest.raises(ContractError) as caught:
        sk.Transactions.from_frame(_ledger(), **LEDGER, max_timestamp=CUTOFF)
    message = str(caught.value)
    for words in ("unit_price", "row 1", "-11062.06", "invalid_values='exclude'", "--policy"):
        assert words in message
    assert caught.value.counts.to_dict() == {("unit_price", "negative_unit_price"): 1}


@pytest.mark.parametrize("backend", ["polars", "duckdb"])
def test_impossible_values_excluded_by_policy(backend):
    frame = _ledger(
        disc=[0.0, 0.0, -0.5, 0.0], qty=[1e300, 1.0, 2.0, 1.0], price=[1e300] + [4.0] * 3
    )
    frame.loc[1, "price"] = -3.0
    report = _both(frame, backend, **LEDGER, invalid_values="exclude", max_timestamp=CUTOFF)
    assert report.excluded == {
        "non_finite_amount": 1,
        "negative_unit_price": 1,
        "negative_discount": 1,
    }
    _accounted(report)
    with pytest.raises(ContractError) as caught:
        sk.Transactions.from_frame(_native(frame, backend), **LEDGER, max_timestamp=CUTOFF)
    assert {"non_finite_amount", "negative_unit_price", "negative_discount"} <= set(
        caught.value.failures["check"]
    )


def test_negative_prices_where_the_line_is_a_return():
    # A cancelled order may carry a negative price: it is a return either way.
    frame = _ledger(price=[12.0, 3.0, 4.0, -4.0])
    tx = sk.Transactions.from_frame(frame, **LEDGER, cancellation_prefix="C", max_timestamp=CUTOFF)
    assert tx.data["is_return"].tolist() == [False, False, False, True]
    # With a given amount, a negative amount says the line is a return.
    given = frame.assign(total=[12.0, 3.0, 8.0, -4.0])
    tx = sk.Transactions.from_frame(given, **LEDGER, amount="total", max_timestamp=CUTOFF)
    assert tx.data["amount"].tolist() == [12.0, 3.0, 8.0, -4.0]
    # Without either, quantity × negative price would invent a return: refused.
    with pytest.raises(ContractError, match="negative_unit_price"):
        sk.Transactions.from_frame(frame, **LEDGER, max_timestamp=CUTOFF)


def test_an_excluded_product_is_not_checked():
    tx = sk.Transactions.from_frame(
        _ledger(), **LEDGER, exclude_products="B", max_timestamp=CUTOFF
    )
    assert tx.report.excluded == {"excluded_product": 1}
    assert tx.report.excluded_amounts == {"excluded_product": -11062.06}


@pytest.mark.parametrize("column", ["amount", "quantity", "unit_price", "discount"])
def test_boolean_number_columns_are_refused(column):
    frame = _ledger(flag=[True, False, True, True], total=[1.0, 2.0, 3.0, 4.0])
    mapping = dict(LEDGER, amount="total")
    mapping[column] = "flag"
    with pytest.raises(ContractError, match=f"'flag' \\(mapped to '{column}'\\).*true/false"):
        sk.Transactions.from_frame(frame, **mapping)
    pl = pytest.importorskip("polars")
    with pytest.raises(ContractError, match="true/false"):
        sk.Transactions.from_frame(pl.from_pandas(frame), **mapping)


def test_boolean_objects_are_refused_too():
    frame = _ledger(total=np.array([True, False, True, True], dtype=object))
    with pytest.raises(ContractError, match="true/false"):
        sk.Transactions.from_frame(frame, **dict(LEDGER, amount="total"))


@pytest.mark.parametrize("rate", [0, -1.1, float("nan"), float("inf"), "x", True])
def test_exchange_rates_must_be_positive(rate):
    frame = _shop().assign(cur=["EUR", "USD"] * 3 + ["EUR"])
    with pytest.raises(InvalidParameterError, match=r"'EUR'.*'rates'"):
        sk.Transactions.from_frame(
            frame, **COLUMNS, currency="cur", rates={"EUR": rate}, base_currency="USD"
        )


def test_an_overflowing_conversion_is_refused():
    frame = _shop().assign(cur=["EUR"] * 7, total=[1e308] * 7)
    with pytest.raises(ContractError, match="non_finite_amount"):
        sk.Transactions.from_frame(
            frame,
            **COLUMNS,
            currency="cur",
            rates={"EUR": 10.0},
            base_currency="USD",
            max_timestamp=CUTOFF,
        )


# --------------------------------------------------------------- every row accounted for


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", None]),
            st.sampled_from(["2024-01-01", "2024-06-01", "2040-01-01", None]),
            st.sampled_from([2.0, -2.0, 0.0, np.nan]),
            st.sampled_from(["mug", "POST", "gift_1", None]),
            st.sampled_from(["1", "2", "C3"]),
            st.sampled_from([0.0, -1.0]),
        ),
        min_size=1,
        max_size=25,
    ),
    policies=st.fixed_dictionaries(
        {
            "returns": st.sampled_from(["net", "exclude", "separate"]),
            "zero_amount": st.sampled_from(["keep", "exclude"]),
            "duplicates": st.sampled_from(["keep", "drop"]),
            "future": st.sampled_from(["exclude", "keep"]),
            "exclude_products": st.sampled_from([None, "POST", "POST,gift_*"]),
        }
    ),
)
def test_every_row_is_accounted_for_and_polars_agrees(data, policies):
    pl = pytest.importorskip("polars")
    frame = pd.DataFrame(data, columns=["customer", "when", "total", "sku", "order", "disc"])
    if frame["customer"].isna().all():
        return
    mapping = dict(COLUMNS, discount="disc")
    kwargs = dict(mapping, **policies, invalid_values="exclude", max_timestamp=CUTOFF)
    kwargs["cancellation_prefix"] = "C"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmentkitWarning)
        tx = sk.Transactions.from_frame(frame, **kwargs)
        native = sk.Transactions.from_frame(pl.from_pandas(frame), **kwargs)
    _accounted(tx.report)
    assert tx.report.rows_read == len(frame)
    assert len(tx.data) == tx.report.rows_kept
    assert native.report == tx.report


# --------------------------------------------------------------- non-buyers' segments


def _features_with_non_buyers() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "recency_days": rng.uniform(1, 300, n),
            "frequency": rng.integers(1, 10, n),
            "monetary": rng.uniform(10, 500, n),
        }
    )
    frame.loc[:2, ["recency_days"]] = np.nan
    frame.loc[:2, "frequency"] = 0
    frame.loc[:1, "monetary"] = [-12.0, -3.5]  # returned only
    frame.loc[2, "monetary"] = 0.0  # known, never bought
    return frame


def test_returns_only_customers_get_their_own_rfm_segment():
    frame = pd.DataFrame(
        {
            "order": ["1", "C2", "3"],
            "customer": ["a", "b", "c"],
            "when": ["2024-01-01", "2024-01-02", "2024-01-03"],
            "sku": ["mug", "mug", "tea"],
            "total": [10.0, 10.0, 5.0],
        }
    )
    tx = sk.Transactions.from_frame(
        frame, **COLUMNS, cancellation_prefix="C", max_timestamp=CUTOFF
    )
    features = sk.extract_features(tx)
    assert features.frame.loc["b", "monetary"] == -10.0
    seg = sk.RFMSegmenter(n_bins=2, segment_map={"All": "r_score >= 1"}).fit_predict(features)
    by_id = seg.assignments.set_index("customer_id")["segment"]
    assert by_id["b"] == "Returns only"
    assert by_id["a"] == "All"
    classic = sk.RFMSegmenter().fit_predict(features).assignments.set_index("customer_id")
    assert classic.loc["b", "segment"] == "Returns only"
    lifecycle = sk.lifecycle_rules(browsing=False, categories=False)
    rules = sk.RuleSegmenter(rules=lifecycle, default="Occasional")
    assert rules.fit_predict(features).assignments.set_index("customer_id").loc[
        "b", "segment"
    ] == ("Returns only")


def test_rfm_on_polars_names_returns_only_as_pandas_does():
    pl = pytest.importorskip("polars")
    frame = _features_with_non_buyers()
    model = sk.RFMSegmenter().fit(frame)
    expected = model.predict(frame).assignments
    got = model.predict(pl.from_pandas(frame)).to_pandas()
    assert got["segment"].tolist() == expected["segment"].tolist()
    assert expected["segment"].tolist()[:3] == ["Returns only", "Returns only", "No purchases"]


@pytest.mark.parametrize("engine", ["kmeans", "hdbscan"])
def test_clustering_sets_non_buyers_apart(engine):
    pytest.importorskip("sklearn")
    if engine == "hdbscan":
        pytest.importorskip("hdbscan")
    frame = _features_with_non_buyers()
    params = (
        {"random_state": 0, "n_clusters": 2} if engine == "kmeans" else {"min_cluster_size": 5}
    )
    model = sk.get_engine(engine, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmentkitWarning)
        seg = model.fit_predict(frame)
    segments = seg.assignments["segment"].tolist()
    assert segments[:3] == ["Returns only", "Returns only", "No purchases"]
    assert "No purchases" not in segments[3:]
    assert "Returns only" not in segments[3:]
    score = "distance" if engine == "kmeans" else "membership"
    assert seg.assignments[score].iloc[:3].isna().all()
    assert seg.assignments[score].iloc[3:].notna().all()
    # The explicit choices still work: cluster everyone, and refuse or impute.
    with pytest.raises(ValueError, match="--param missing=median"):
        sk.get_engine(engine, **params, non_buyers="cluster").fit(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmentkitWarning)
        imputed = sk.get_engine(engine, **params, non_buyers="cluster", missing="median")
        labels = imputed.fit_predict(frame).assignments["segment"]
    assert "Returns only" not in set(labels)


def test_kmeans_on_polars_sets_non_buyers_apart_as_pandas_does():
    pl = pytest.importorskip("polars")
    frame = _features_with_non_buyers()
    model = sk.get_engine("kmeans", n_clusters=2, random_state=0).fit(frame)
    expected = model.predict(frame).assignments
    got = model.predict(pl.from_pandas(frame).lazy()).collect().to_pandas()
    assert got["segment"].tolist() == expected["segment"].tolist()
    np.testing.assert_allclose(
        got["distance"].to_numpy(dtype=float), expected["distance"].to_numpy(dtype=float)
    )


def test_clustering_only_non_buyers_is_a_clear_error():
    frame = _features_with_non_buyers().iloc[:3]
    with pytest.raises(ValueError, match=r"no customer with a purchase.*non_buyers=cluster"):
        sk.get_engine("kmeans", n_clusters=2).fit(frame)


def test_a_model_saved_before_non_buyer_segments_keeps_clustering_everyone(tmp_path):
    frame = _features_with_non_buyers()
    model = sk.get_engine("kmeans", n_clusters=2, random_state=0, missing="median").fit(frame)
    # As an old model: no non-buyer segments.
    model.segments_ = [
        s for s in model.segments_ if s.name not in {"No purchases", "Returns only"}
    ]
    labels = model.predict(frame).assignments["segment"]
    assert not set(labels) & {"No purchases", "Returns only"}


# --------------------------------------------------------------- command line


def _run(*argv: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from segmentkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_cli_policies(tmp_path):
    path = tmp_path / "orders.csv"
    _dated().to_csv(path, index=False)
    maps = ["--map", *(f"{k}={v}" for k, v in COLUMNS.items())]
    code, out, err = _run(
        "validate",
        str(path),
        *maps,
        "--policy",
        "exclude_products=POST,DOT,BANK CHARGES,gift_*",
        "max_timestamp=2024-12-31",
    )
    assert code == 0, err
    assert "excluded_product: 4 (amount 58.75)" in out
    assert "future_timestamp: 2" in out
    assert "dated after max_timestamp=2024-12-31" in err
    config = tmp_path / "shop.json"
    config.write_text(
        json.dumps(
            {
                "transactions": {
                    "map": COLUMNS,
                    "policy": {"exclude_products": ["POST", "gift_*"], "future": "keep"},
                }
            }
        )
    )
    code, out, err = _run("validate", str(path), "--config", str(config))
    assert code == 0, err
    assert "excluded_product: 2" in out
    assert "future_timestamp" not in out


def test_cli_hints_for_clustering_work_from_the_cli(tmp_path):
    features = _features_with_non_buyers()
    orders = pd.DataFrame(
        {
            "customer": ["a", "a", "b", "c", "d", "e", "f"] * 3,
            "when": pd.date_range("2024-01-01", periods=21, freq="3D").astype(str),
            "total": np.linspace(5, 100, 21),
        }
    )
    orders.loc[orders["customer"] == "a", "total"] *= -1  # customer a: returns only
    path = tmp_path / "orders.csv"
    orders.to_csv(path, index=False)
    base = [
        "segment",
        str(path),
        "--map",
        "customer_id=customer",
        "timestamp=when",
        "amount=total",
        "--engine",
        "kmeans",
        "--out",
        str(tmp_path / "out.csv"),
    ]
    code, _, err = _run(*base, "--param", "n_clusters=2", "random_state=0")
    assert code == 0, err
    written = pd.read_csv(tmp_path / "out.csv", dtype={"customer_id": str})
    assert written.set_index("customer_id").loc["a", "segment"] == "Returns only"
    code, _, err = _run(*base, "--param", "n_clusters=2", "non_buyers=cluster")
    assert code == 1
    assert "--param missing=median" in err
    code, _, err = _run(
        *base, "--param", "n_clusters=2", "non_buyers=cluster", "missing=median", "random_state=0"
    )
    assert code == 0, err
    assert len(features) == 60


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 3),  # order: its lines are grouped, some orders long
            st.sampled_from(["mug", "tea"]),
            st.sampled_from([1.0, 2.0]),
        ),
        min_size=1,
        max_size=60,
    ),
    grouping=st.sampled_from(["order", "time", "none"]),
)
def test_duplicates_found_in_runs_match_pandas(rows, grouping):
    frame = pd.DataFrame(rows, columns=["order", "sku", "total"])
    frame["customer"] = "c" + (frame["order"] % 2).astype(str)
    frame["when"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["order"], unit="D")
    frame["order"] = frame["order"].astype(str)
    if grouping != "none":
        frame = frame.sort_values("order", kind="stable", ignore_index=True)
    mapping = {"customer_id": "customer", "timestamp": "when", "product_id": "sku"}
    if grouping == "order":
        mapping["order_id"] = "order"
    tx = sk.Transactions.from_frame(frame, **mapping, amount="total", max_timestamp=CUTOFF)
    expected = int(frame[[*mapping.values(), "total"]].duplicated().sum())
    assert tx.report.flagged.get("duplicate_line", 0) == expected
