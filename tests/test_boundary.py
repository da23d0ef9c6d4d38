"""The backend boundary: one place decides which library a frame belongs to, and engines
score other libraries' frames only through the plan they return."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk
from segmentkit._frame import backend_of, is_native, is_pandas
from segmentkit.engines import CentroidPlan, FitInput, Preprocessing, RulePlan

pl = pytest.importorskip("polars")


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "monetary": [20.0, 150.0, 900.0, np.nan, 499.0],
            "frequency": [1, 2, 9, 0, 4],
        }
    )


def test_backend_of_names_each_library(customers):
    frame = pl.from_pandas(customers)
    assert backend_of(customers) == "pandas"
    assert backend_of(frame) == "polars"
    assert backend_of(frame.lazy()) == "polars"
    assert backend_of(frame.to_arrow()) == "pyarrow"
    assert is_pandas(customers)
    assert not is_native(customers)
    assert is_native(frame.lazy())
    assert not is_pandas(frame)


@pytest.mark.parametrize(
    "value", [np.zeros((2, 2)), [1, 2], {"a": [1]}, "text", None, pd.Series([1.0])]
)
def test_backend_of_is_none_for_what_is_not_a_dataframe(value):
    assert backend_of(value) is None
    assert not is_native(value)


def test_backend_of_segmentkit_objects_needs_no_narwhals(customers):
    features = sk.CustomerFeatures.from_frame(customers, as_of="2024-01-01")
    assert backend_of(features) is None


def test_duckdb_relation_is_named():
    duckdb = pytest.importorskip("duckdb")
    assert backend_of(duckdb.sql("SELECT 1 AS x")) == "duckdb"


def test_pandas_path_never_imports_a_backend():
    code = (
        "import sys, pandas as pd, segmentkit as sk\n"
        "raw, mapping = sk.datasets.load_sample()\n"
        "features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))\n"
        "sk.RFMSegmenter().fit_predict(features)\n"
        "print([m for m in ('polars', 'duckdb', 'pyspark', 'dask') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("table", ["Transactions", "Events", "Customers"])
def test_option_policies_are_refused_alike_on_every_path(customers, table):
    cls = getattr(sk, table)
    frames = [customers, pl.from_pandas(customers).lazy()]
    messages = []
    for frame in frames:
        with pytest.raises(sk.errors.InvalidParameterError) as caught:
            cls.from_frame(frame, missing_customer="bogus")
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert "'missing_customer'" in messages[0]
    assert "bogus" in messages[0]


# ------------------------------------------------------- a third-party engine opts in


class Tiers(sk.Segmenter):
    """Spend tiers; scores on pandas only (no plan)."""

    def __init__(self, *, cut: float = 100.0) -> None:
        self.cut = cut

    def _fit(self, features):
        self.segments_ = [
            sk.Segment(0, "Low", rule=f"monetary < {self.cut:g} or monetary is null"),
            sk.Segment(1, "High", rule=f"monetary >= {self.cut:g}"),
        ]

    def _assign(self, features):
        spend = features.frame["monetary"].to_numpy(dtype=float)
        return (np.nan_to_num(spend, nan=-np.inf) >= self.cut).astype(np.int64), {}


class PlannedTiers(Tiers):
    """The same tiers, with a plan: scored where the data lives."""

    def _fit_input(self, columns):
        return FitInput(rows="none")

    def _scoring_plan(self, columns):
        return RulePlan([(1, self.segments_[1].rule)], default=0)


class NearestOfTwo(Tiers):
    """Two fixed centroids on log spend, as a CentroidPlan."""

    def _fit_input(self, columns):
        return FitInput(columns=["customer_id", "monetary"])

    def _scoring_plan(self, columns):
        pre = Preprocessing(numeric=["monetary"], logged=["monetary"], fill=[0.0],
                            center=[0.0], scale=[1.0], missing="zero")  # fmt: skip
        return CentroidPlan(pre, np.array([[np.log1p(20.0)], [np.log1p(900.0)]]))


def test_a_custom_rule_plan_scores_lazily_as_pandas_does(customers):
    lazy = pl.from_pandas(customers).lazy()
    model = PlannedTiers(cut=150).fit(lazy)
    scored = model.predict(lazy)
    assert isinstance(scored, pl.LazyFrame)
    expected = model.predict(customers).assignments
    got = scored.sort("customer_id").collect().to_pandas()
    assert got["segment_id"].tolist() == expected["segment_id"].tolist()
    assert got["segment"].tolist() == list(expected["segment"])
    # fit on the frame read its schema only
    assert list(model.feature_names_in_) == ["monetary", "frequency"]


def test_a_custom_centroid_plan_scores_in_the_engine(customers):
    lazy = pl.from_pandas(customers).lazy()
    scored = NearestOfTwo().fit(lazy).predict(lazy).sort("customer_id").collect()
    assert scored["segment_id"].to_list() == [0, 1, 1, 0, 1]
    assert scored["distance"][0] == pytest.approx(0.0)


def test_an_engine_without_a_plan_keeps_the_pandas_path(customers):
    eager = pl.from_pandas(customers)
    model = Tiers(cut=150).fit(customers)
    scored = model.predict(eager)
    assert isinstance(scored, pl.DataFrame)
    assert scored["segment_id"].to_list() == [0, 1, 1, 0, 1]
    with pytest.raises(NotImplementedError, match="does not compile"):
        model.predict(eager.lazy())
    with pytest.raises(TypeError, match="cannot fit on a polars frame"):
        Tiers().fit(eager.lazy())


def test_a_plan_of_an_unknown_kind_is_refused_by_name(customers):
    class Odd(Tiers):
        def _scoring_plan(self, columns):
            return {"rules": []}

    model = Odd().fit(customers)
    with pytest.raises(TypeError, match=r"Odd._scoring_plan returned a dict"):
        model.predict(pl.from_pandas(customers).lazy())


def test_built_in_engines_describe_their_scoring_as_data(customers):
    features = sk.CustomerFeatures.from_frame(
        customers.assign(recency_days=[3.0, 40.0, 5.0, np.nan, 90.0]), as_of="2024-01-01"
    )
    columns = ["customer_id", *features.columns]
    rfm = sk.RFMSegmenter().fit(features)._scoring_plan(columns)
    assert (rfm.recency, rfm.frequency, rfm.monetary) == ("recency_days", "frequency", "monetary")
    rules = sk.RuleSegmenter(rules=[sk.Rule("Big", "monetary > 100")], default="Rest")
    assert rules.fit(features)._scoring_plan(columns) == RulePlan([(0, "monetary > 100")], 1)
    km = sk.KMeansSegmenter(n_clusters=2, missing="median", random_state=0).fit(features)
    plan = km._scoring_plan(columns)
    assert isinstance(plan, CentroidPlan)
    assert plan.centers.shape[0] == 2
    assert plan.non_buyers is not None
    assert plan.non_buyers.frequency == "frequency"
