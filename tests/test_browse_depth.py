"""Viewed products: viewed-not-bought, browse-to-buy, last viewed category and brand.

Every feature is checked against an independent pandas computation (merges and sorts of the
validated tables, nothing of the feature layer), on the bundled sample's generated events and
on hypothesis-generated small tables, on every backend; then the lifecycle preset's
"Browsed, didn't buy".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
from _backends import Backend
from segmentkit.features._definitions import definition_of

WINDOWS = (7, 30, 90)
_DAY = pd.Timedelta(days=1)
_SAMPLE_AS_OF = "2017-10-01"


# --- the reference: plain pandas over the validated tables --------------------------------


def _text(values: pd.Series) -> pd.Series:
    """Categorical or string values as Python strings (None for missing)."""
    objects = values.astype(object)
    return objects.where(objects.notna(), None)


def reference(
    lines: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    customers: pd.Index,
    windows: tuple[int, ...] = WINDOWS,
) -> pd.DataFrame:
    """The new features, by definition, for ``customers``."""
    lines = lines[lines["timestamp"] <= as_of]
    events = events[events["timestamp"] <= as_of]
    views = events[events["event_type"].astype(object) == "view"]
    bought = lines[~lines["is_return"]]
    out = pd.DataFrame(index=customers)
    for w in windows:
        start = as_of - w * _DAY
        recent_views = views[views["timestamp"] > start]
        recent_buys = bought[bought["timestamp"] > start]
        distinct_viewed: dict[str, pd.Series] = {}
        for column, plural in (("product_id", "products"), ("category", "categories")):
            if column not in lines or column not in events:
                continue
            seen = pd.DataFrame(
                {"who": _text(recent_views["customer_id"]), "what": _text(recent_views[column])}
            ).dropna()
            seen = seen.drop_duplicates()
            paid = pd.DataFrame(
                {"who": _text(recent_buys["customer_id"]), "what": _text(recent_buys[column])}
            ).dropna()
            paid = paid.drop_duplicates().assign(paid=True)
            joined = seen.merge(paid, on=["who", "what"], how="left")
            unbought = joined[joined["paid"].isna()].groupby("who").size()
            out[f"viewed_not_bought_{plural}_{w}d"] = (
                unbought.reindex(customers).fillna(0).astype(np.int64).to_numpy()
            )
            distinct_viewed[column] = seen.groupby("who").size().reindex(customers)
        if "product_id" in distinct_viewed:
            n_viewed = distinct_viewed["product_id"].to_numpy(dtype=float)
            n_unbought = out[f"viewed_not_bought_products_{w}d"].to_numpy(dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(n_viewed > 0, (n_viewed - n_unbought) / n_viewed, np.nan)
            out[f"browse_to_buy_{w}d"] = share
    for column in ("category", "brand"):
        if column not in events:
            continue
        known = pd.DataFrame(
            {
                "who": _text(views["customer_id"]),
                "ts": views["timestamp"],
                "what": _text(views[column]),
            }
        ).dropna()
        latest = known.sort_values(["who", "ts", "what"], ascending=[True, False, True])
        last = latest.groupby("who")["what"].first().reindex(customers)
        out[f"last_viewed_{column}"] = np.asarray(last.where(last.notna(), None), dtype=object)
    return out


def assert_matches_reference(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert sorted(c for c in frame.columns if c in expected.columns) == sorted(expected.columns)
    for name in expected.columns:
        have = frame[name]
        want = expected[name].reindex(frame.index)
        if name.startswith("browse_to_buy"):
            np.testing.assert_allclose(
                have.to_numpy(dtype=float), want.to_numpy(dtype=float), rtol=1e-12, err_msg=name
            )
        elif name.startswith("viewed_not_bought"):
            assert have.dtype == np.int64, name
            np.testing.assert_array_equal(have.to_numpy(), want.to_numpy(), err_msg=name)
        else:
            assert list(have) == list(want), name


def features_on(
    backend: Backend, lines: pd.DataFrame, events: pd.DataFrame, as_of: Any, **mapping: Any
) -> sk.CustomerFeatures:
    """The features of raw frames validated on ``backend``, as pandas."""
    tx = sk.Transactions.from_frame(backend.frame(lines), **mapping)
    ev = sk.Events.from_frame(backend.frame(events))
    return sk.extract_features(tx, ev, as_of=as_of, output="pandas")


# --- the bundled sample's generated events ---------------------------------------------------


@pytest.fixture(scope="module")
def sample_tables() -> tuple[pd.DataFrame, dict[str, str], pd.DataFrame]:
    """The sample's orders, their mapping, and generated events of 40 households with a
    brand per product (the events carry product and category). Spark's collects hang in
    local mode's 1 GB heap with the events of many more (see tests/test_backends.py)."""
    raw, mapping = sk.datasets.load_sample()
    tx = sk.Transactions.from_frame(raw, **mapping)
    clicks = sk.datasets.generate_events(tx.data, random_state=0)
    households = sorted(clicks["customer_id"].unique())[::20]
    clicks = clicks[clicks["customer_id"].isin(households)].reset_index(drop=True)
    product = clicks["product_id"].astype(str)
    clicks["brand"] = np.where(product.str[-1].isin(list("01234")), "Acme", "Zenith")
    return raw, mapping, clicks


def test_sample_features_equal_the_reference(sample_tables, backend):
    raw, mapping, clicks = sample_tables
    features = features_on(backend, raw, clicks, _SAMPLE_AS_OF, **mapping)
    tx = sk.Transactions.from_frame(raw, **mapping)
    ev = sk.Events.from_frame(clicks)
    as_of = pd.Timestamp(_SAMPLE_AS_OF, tz="UTC")
    expected = reference(tx.data, ev.data, as_of, features.frame.index)
    assert_matches_reference(features.frame, expected)
    frame = features.frame
    # The data exercises them: views bought and not, customers without views.
    assert frame["viewed_not_bought_products_30d"].gt(0).any()
    assert frame["browse_to_buy_90d"].gt(0).any()
    assert frame["browse_to_buy_90d"].isna().any()
    assert frame["last_viewed_brand"].nunique() == 2


def test_sample_features_are_point_in_time(sample_tables):
    """Rows after as_of change nothing: later purchases of viewed products, later views."""
    raw, mapping, clicks = sample_tables
    as_of = pd.Timestamp(_SAMPLE_AS_OF, tz="UTC")
    base = sk.extract_features(
        sk.Transactions.from_frame(raw, **mapping), sk.Events.from_frame(clicks), as_of=as_of
    )
    viewed = clicks[clicks["event_type"] == "view"].head(200)
    later_orders = pd.DataFrame(
        {
            mapping["customer_id"]: viewed["customer_id"].to_numpy(),
            mapping["timestamp"]: (as_of + pd.Timedelta(seconds=1)).tz_localize(None),
            mapping["amount"]: 5.0,
            mapping["product_id"]: viewed["product_id"].to_numpy(),
            mapping["category"]: viewed["category"].to_numpy(),
            mapping["order_id"]: "late-" + viewed["customer_id"].astype(str).to_numpy(),
        }
    )
    later_views = viewed.assign(
        timestamp=as_of + pd.Timedelta(hours=1), product_id="new-product", category="New"
    )
    orders = pd.concat([raw, later_orders], ignore_index=True)
    moved = sk.extract_features(
        sk.Transactions.from_frame(orders, **mapping),
        sk.Events.from_frame(pd.concat([clicks, later_views], ignore_index=True)),
        as_of=as_of,
    )
    new = [c for c in reference_columns() if c in base.columns]
    pd.testing.assert_frame_equal(moved.frame[new], base.frame[new])


def reference_columns() -> list[str]:
    names = ["last_viewed_category", "last_viewed_brand"]
    for w in WINDOWS:
        names += [
            f"viewed_not_bought_products_{w}d",
            f"viewed_not_bought_categories_{w}d",
            f"browse_to_buy_{w}d",
        ]
    return names


# --- hypothesis: small tables around the window edges and ties -------------------------------

_AS_OF = pd.Timestamp("2024-06-30", tz="UTC")
_HOUR = pd.Timedelta(hours=1)


def _column(draw: Any, values: st.SearchStrategy[Any], n: int) -> list[Any]:
    return draw(st.lists(values, min_size=n, max_size=n))


@st.composite
def _tables(draw: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    # Hours before the end, with the window edges 7, 30 and 90 days themselves.
    hours = st.sampled_from([0, 1, 24, 7 * 24, 7 * 24 + 1, 29 * 24, 30 * 24, 31 * 24, 90 * 24])
    n_lines = draw(st.integers(1, 12))
    lines = pd.DataFrame(
        {
            "customer_id": _column(draw, st.sampled_from(["a", "b", "c"]), n_lines),
            "timestamp": [_AS_OF - h * _HOUR for h in _column(draw, hours, n_lines)],
            "amount": _column(draw, st.sampled_from([-4.0, 0.0, 10.0]), n_lines),
            "product_id": _column(draw, st.sampled_from(["p1", "p2", "p3", None]), n_lines),
            "category": _column(draw, st.sampled_from(["x", "y", None]), n_lines),
        }
    )
    n_events = draw(st.integers(1, 14))
    events = pd.DataFrame(
        {
            "customer_id": _column(draw, st.sampled_from(["a", "b", "d"]), n_events),
            "timestamp": [_AS_OF - h * _HOUR for h in _column(draw, hours, n_events)],
            "event_type": _column(
                draw, st.sampled_from(["view", "view", "add_to_cart", "purchase"]), n_events
            ),
            "product_id": _column(draw, st.sampled_from(["p1", "p2", "p4", None]), n_events),
            "category": _column(draw, st.sampled_from(["x", "y", "z", None]), n_events),
            "brand": _column(draw, st.sampled_from(["B", "A", None]), n_events),
        }
    )
    for frame, names in (
        (lines, ("product_id", "category")),
        (events, ("product_id", "category", "brand")),
    ):
        for name in names:
            frame[name] = frame[name].astype("string")
    as_of = _AS_OF - draw(st.sampled_from([0, 1, 24])) * _HOUR
    return lines, events, as_of


def test_small_tables_equal_the_reference(backend):
    """Many small tables on the in-memory engines; fewer where each query has a fixed cost
    (DuckDB, Dask: a fraction of a second; Spark: seconds)."""
    n_examples = {"spark": 3, "duckdb": 8, "dask": 4}.get(backend.name, 30)

    @settings(
        max_examples=n_examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(tables=_tables())
    def check(tables: tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]) -> None:
        lines, events, as_of = tables
        if not (lines["timestamp"] <= as_of).any():
            return  # refused: no line on or before as_of (tested elsewhere)
        features = features_on(backend, lines, events, as_of)
        tx = sk.Transactions.from_frame(lines)
        ev = sk.Events.from_frame(events)
        expected = reference(tx.data, ev.data, as_of, features.frame.index)
        assert_matches_reference(features.frame, expected)

    check()


# --- edges, written out once ----------------------------------------------------------------


def _edge_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    lines = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b"],
            "timestamp": ["2024-06-29", "2024-05-31", "2024-06-20", "2024-06-28"],
            "amount": [10.0, 12.0, -10.0, 5.0],
            "product_id": ["p1", "p2", "p3", "p1"],
            "category": ["x", "y", "x", "x"],
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "a", "c", "c", "b"],
            "timestamp": [
                "2024-06-01",  # p1 viewed, bought 2024-06-29: bought in 30 days
                "2024-06-02",  # p2 viewed, bought exactly 30 days before as_of: outside
                "2024-06-03",  # p3 viewed, only a return of it: not bought
                "2024-06-10",  # the latest views, tied: category 'w' before 'x'
                "2024-06-10",
                "2024-06-15",  # c never bought
                "2024-07-05",  # after as_of: ignored
                "2024-06-29",  # b: an add-to-cart, no view
            ],
            "event_type": ["view"] * 7 + ["add_to_cart"],
            "product_id": ["p1", "p2", "p3", None, None, "p9", "p1", "p1"],
            "category": ["x", "y", "x", "x", "w", "z", "x", "x"],
        }
    )
    return lines, events


def test_edges_written_out(backend):
    lines, events = _edge_tables()
    frame = features_on(backend, lines, events, "2024-06-30").frame
    assert frame.loc["a", "viewed_not_bought_products_30d"] == 2  # p2, p3
    assert frame.loc["a", "viewed_not_bought_categories_30d"] == 2  # y, w (x bought)
    assert frame.loc["a", "browse_to_buy_30d"] == pytest.approx(1 / 3)
    assert frame.loc["a", "viewed_not_bought_products_90d"] == 1  # p3: only returned
    assert frame.loc["a", "last_viewed_category"] == "w"
    assert frame.loc["c", "viewed_not_bought_products_30d"] == 1
    assert frame.loc["c", "browse_to_buy_30d"] == 0.0
    assert frame.loc["c", "last_viewed_category"] == "z"
    # b has no view: nothing viewed, no share, no last category.
    assert frame.loc["b", "viewed_not_bought_products_90d"] == 0
    assert np.isnan(frame.loc["b", "browse_to_buy_90d"])
    assert pd.isna(frame.loc["b", "last_viewed_category"])
    assert "last_viewed_brand" not in frame.columns  # the events have no brand


def test_without_product_ids_in_the_transactions_only_category_features(backend):
    lines, events = _edge_tables()
    frame = features_on(backend, lines.drop(columns="product_id"), events, "2024-06-30").frame
    assert "viewed_not_bought_categories_30d" in frame.columns
    assert "viewed_not_bought_products_30d" not in frame.columns
    assert "browse_to_buy_30d" not in frame.columns
    assert frame.loc["a", "viewed_not_bought_categories_30d"] == 2


def test_other_windows_are_defined_and_named():
    definition = definition_of("browse_to_buy_14d")
    assert definition is not None
    assert definition.unit == "share"
    assert definition.direction == "higher_is_better"
    assert definition_of("viewed_not_bought_categories_60d").needs == ("category",)
    assert definition_of("viewed_not_bought_products_0d") is None
    lines, events = _edge_tables()
    features = sk.extract_features(
        sk.Transactions.from_frame(lines), sk.Events.from_frame(events),
        as_of="2024-06-30", windows=(14,),
    )  # fmt: skip
    assert features.frame.loc["a", "viewed_not_bought_products_14d"] == 0
    assert np.isnan(features.frame.loc["a", "browse_to_buy_14d"])
    catalog = sk.feature_catalog(windows=(14,)).set_index("name")
    assert catalog.loc["viewed_not_bought_products_14d", "needs"] == "product_id"


# --- the lifecycle preset --------------------------------------------------------------------


def test_browsed_didnt_buy_on_the_bundled_sample(sample_tx):
    clicks = sk.datasets.generate_events(sample_tx.data, random_state=0)
    features = sk.extract_features(sample_tx, sk.Events.from_frame(clicks), as_of="2018-01-01")
    rules = sk.lifecycle_rules()
    names = [rule.name for rule in rules]
    assert names.index("Cart abandoners") < names.index("Browsed, didn't buy")
    assert names.index("Browsed, didn't buy") < names.index("Prospects")
    seg = sk.RuleSegmenter(rules=rules, default="Occasional").fit_predict(features)
    frame = features.frame.reindex(seg.assignments["customer_id"])
    segment = seg.assignments["segment"].to_numpy()
    browsed = frame["views_30d"].ge(1) & (frame["frequency"].eq(0) | frame["recency_days"].ge(30))
    earlier = frame["abandoned_carts_30d"].ge(1) | (
        frame["frequency"].eq(0) & frame["monetary"].lt(0)
    )
    expected = (browsed & ~earlier).to_numpy()
    assert expected.sum() > 0
    np.testing.assert_array_equal(segment == "Browsed, didn't buy", expected)


def test_browsed_didnt_buy_takes_never_buyers_and_needs_views(sample_tx):
    orders = pd.DataFrame(
        {"customer_id": ["ann", "cat"], "timestamp": ["2024-06-20", "2024-03-01"],
         "amount": [40.0, 9.0]}
    )  # fmt: skip
    clicks = pd.DataFrame(
        {
            "customer_id": ["ann", "bob", "cat", "dan"],
            "timestamp": ["2024-06-25", "2024-06-29", "2024-06-28", "2024-04-01"],
            "event_type": ["view", "view", "view", "view"],
        }
    )
    features = sk.extract_features(
        sk.Transactions.from_frame(orders), sk.Events.from_frame(clicks), as_of="2024-06-30"
    )
    rules = sk.lifecycle_rules(categories=False)
    seg = sk.RuleSegmenter(rules=rules, default="Occasional").fit_predict(features)
    got = dict(zip(seg.assignments["customer_id"], seg.assignments["segment"], strict=True))
    # ann bought in the window; bob never bought and viewed; cat bought long ago and
    # viewed; dan never bought and viewed only before the window.
    assert got == {
        "ann": "New customers",
        "bob": "Browsed, didn't buy",
        "cat": "Browsed, didn't buy",
        "dan": "Prospects",
    }


def test_browsed_didnt_buy_follows_the_abandon_window():
    rule = next(r for r in sk.lifecycle_rules(abandon_window_days=7) if "Browsed" in r.name)
    assert rule.when == "views_7d >= 1 and (frequency == 0 or recency_days >= 7)"
    assert all("Browsed" not in r.name for r in sk.lifecycle_rules(browsing=False))
