"""extract_features(..., features=[...]): only the features asked for, on every backend."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
import segmentkit.features._numpy as numpy_path

AS_OF = "2017-12-01"


@pytest.fixture(scope="module")
def sample() -> tuple[pd.DataFrame, dict]:
    return sk.datasets.load_sample()


@pytest.fixture(scope="module")
def full(sample) -> pd.DataFrame:
    raw, mapping = sample
    return sk.extract_features(sk.Transactions.from_frame(raw, **mapping), as_of=AS_OF).frame


def _selected(backend, sample, features) -> pd.DataFrame:
    raw, mapping = sample
    tx = sk.Transactions.from_frame(backend.frame(raw), **mapping)
    if backend.is_pandas:
        return sk.extract_features(tx, as_of=AS_OF, features=features).frame
    return sk.extract_features(tx, as_of=AS_OF, features=features, output="pandas").frame


def test_names_and_patterns_select_those_columns_in_catalog_order(backend, sample, full):
    asked = ["top_category", "recency_days", "orders_*d", "spend_trend_9?d"]
    frame = _selected(backend, sample, asked)
    want = [c for c in full.columns if any(fnmatchcase(c, a) for a in asked)]
    assert frame.columns.tolist() == want
    # Catalog order: each window's features together.
    assert want == [
        "recency_days",
        "top_category",
        "orders_30d",
        "orders_90d",
        "spend_trend_90d",
        "orders_365d",
    ]
    pd.testing.assert_frame_equal(frame, full[want], check_exact=False, rtol=1e-12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_subset_equals_the_same_columns_of_every_feature(sample, full, data):
    names = data.draw(
        st.lists(st.sampled_from(full.columns.tolist()), min_size=1, max_size=8, unique=True)
    )
    raw, mapping = sample
    tx = sk.Transactions.from_frame(raw, **mapping)
    frame = sk.extract_features(tx, as_of=AS_OF, features=names).frame
    want = [c for c in full.columns if c in names]
    pd.testing.assert_frame_equal(frame, full[want])


def test_features_left_out_are_not_computed(sample, monkeypatch):
    # No price feature asked: the exact per-product medians never run.
    def refuse(*args, **kwargs):
        raise AssertionError("price medians computed for features that do not need them")

    monkeypatch.setattr(numpy_path, "exact_medians", refuse)
    raw, mapping = sample
    tx = sk.Transactions.from_frame(raw, **mapping)
    frame = sk.extract_features(tx, as_of=AS_OF, features=["monetary", "top_*"]).frame
    assert "price_index" not in frame
    with pytest.raises(AssertionError, match="price medians"):
        sk.extract_features(tx, as_of=AS_OF, features=["price_index"])


def test_a_name_that_is_no_feature_is_refused_with_the_nearest_names(sample):
    raw, mapping = sample
    tx = sk.Transactions.from_frame(raw, **mapping)
    with pytest.raises(ValueError, match=r"'recency_dayz' names no feature\. Did you mean"):
        sk.extract_features(tx, features=["recency_days", "recency_dayz"])
    with pytest.raises(ValueError, match=re.escape("'nothing_*' names no feature")):
        sk.extract_features(tx, features=["nothing_*"])


def test_a_feature_the_tables_cannot_give_names_what_is_missing(sample):
    raw, mapping = sample
    tx = sk.Transactions.from_frame(raw, **mapping)
    with pytest.raises(ValueError, match=r"read the columns \['brand'\].*brand=<your column>"):
        sk.extract_features(tx, features=["top_brand"])
    with pytest.raises(ValueError, match=r"come from events: pass events=sk\.Events"):
        sk.extract_features(tx, features=["views_7d"])
    with pytest.raises(ValueError, match=r"come from customers"):
        sk.extract_features(tx, features=["age"])


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ([], "features= is empty"),
        ("recency_days", "takes a list of feature names"),
        (["recency_days", ""], "takes a list of feature names"),
        ([3], "takes a list of feature names"),
    ],
)
def test_malformed_selections_are_refused(sample, features, message):
    raw, mapping = sample
    tx = sk.Transactions.from_frame(raw, **mapping)
    with pytest.raises(ValueError, match=message):
        sk.extract_features(tx, features=features)


def test_extra_profile_columns_can_be_selected(sample):
    raw, mapping = sample
    tx = sk.Transactions.from_frame(raw, **mapping)
    ids = raw[mapping["customer_id"]].drop_duplicates().to_numpy()
    profiles = pd.DataFrame(
        {
            "customer_id": ids,
            "tier": np.where(np.arange(len(ids)) % 2 == 0, "gold", "silver"),
            "country": "FI",
        }
    )
    customers = sk.Customers.from_frame(profiles, extra_columns=["tier"])
    frame = sk.extract_features(
        tx, customers=customers, as_of=AS_OF, features=["frequency", "tier"]
    ).frame
    assert frame.columns.tolist() == ["frequency", "tier"]
    with pytest.raises(ValueError, match="'loyalty' names no feature"):
        sk.extract_features(tx, customers=customers, features=["loyalty"])
