"""Scoring where the data lives: predict on polars, DuckDB, PySpark and Dask frames.

Every engine that compiles to expressions must give, on every backend, exactly the
assignments of the pandas path (k-means distances to float tolerance), as a frame of
the input's library, lazily where that library is lazy.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk
from _backends import optional_module
from segmentkit.errors import RuleSyntaxError

pl = optional_module("polars")
duckdb = optional_module("duckdb")

# narwhals announces that Dask support moves to a separate package; PySpark that it
# does not fully support pandas 3. Neither changes a result here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Dask support is moving:FutureWarning"),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support:FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

LAZY_BACKENDS = ["polars-lazy", "duckdb", "dask", "spark"]
BACKENDS = ["polars", *LAZY_BACKENDS]


def _java_problem() -> str:
    java = shutil.which("java")
    if java is None:
        return "PySpark needs Java 17+; no java on PATH"
    try:
        text = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"PySpark needs Java 17+; 'java -version' failed: {error}"
    found = re.search(r'version "(\d+)', text)
    if not found or int(found.group(1)) < 17:
        return f"PySpark needs Java 17+; found {text.splitlines()[:1]}"
    return ""


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    problem = _java_problem()
    if problem:
        pytest.skip(problem)
    from pyspark.sql import SparkSession

    # Python workers (HDBSCAN's batches) must run this interpreter, which has segmentkit.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    session = active or (
        SparkSession.builder.master("local[1]")
        .appName("segmentkit-native-scoring")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    if active is None:
        session.stop()


@pytest.fixture(scope="module")
def features() -> sk.CustomerFeatures:
    raw, mapping = sk.datasets.load_sample()
    features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    frame = features.frame.copy()
    # Columns that exercise the rule language's corners: missing values in numbers and
    # text, infinity, negative numbers for modulo signs, booleans.
    rng = np.random.default_rng(0)
    n = len(frame)
    frame["vip"] = rng.random(n) < 0.3
    frame["score"] = np.where(rng.random(n) < 0.1, np.nan, rng.normal(0, 10, n).round(2))
    frame.loc[frame.index[:3], "score"] = np.inf
    frame["delta"] = rng.integers(-20, 20, n)
    frame["channel"] = pd.Series(
        rng.choice(["web", "app", "store", None], n), index=frame.index, dtype="str"
    )
    frame["odd name"] = rng.integers(0, 3, n).astype(float)
    return sk.CustomerFeatures(frame, features.as_of)


def to_backend(frame: pd.DataFrame, backend: str, spark_session=None):
    """The same customers as a frame of ``backend``."""
    if backend == "polars":
        return pl.from_pandas(frame)
    if backend == "polars-lazy":
        return pl.from_pandas(frame).lazy()
    if backend == "duckdb":
        return duckdb.from_arrow(pl.from_pandas(frame).to_arrow())
    if backend == "dask":
        dd = pytest.importorskip("dask.dataframe")
        return dd.from_pandas(frame, npartitions=3)
    if backend == "spark":
        return spark_session.createDataFrame(frame)
    raise AssertionError(backend)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def converted() -> dict:
    """The test features in each backend, converted once (Spark conversions are slow)."""
    return {}


@pytest.fixture
def native(request, backend, features, converted):
    """A factory: pandas frame (default: the test features) -> the backend's frame."""
    session = request.getfixturevalue("spark") if backend == "spark" else None

    def make(frame: pd.DataFrame | None = None):
        if frame is not None:
            return to_backend(frame, backend, session)
        if backend not in converted:
            converted[backend] = to_backend(features.frame.reset_index(), backend, session)
        return converted[backend]

    return make


def to_pandas(result) -> pd.DataFrame:
    if isinstance(result, pd.DataFrame):
        return result
    if isinstance(result, pl.LazyFrame):
        result = result.collect()
    if isinstance(result, pl.DataFrame):
        return result.to_pandas()
    if isinstance(result, duckdb.DuckDBPyRelation):
        return result.df()
    if hasattr(result, "toPandas"):
        return result.toPandas()
    if hasattr(result, "compute"):
        return result.compute()
    raise AssertionError(type(result))


def assert_same(result, expected: pd.DataFrame) -> None:
    got = to_pandas(result)
    assert list(got.columns) == list(expected.columns)
    got = got.assign(customer_id=got["customer_id"].astype(str)).sort_values("customer_id")
    expected = expected.assign(customer_id=expected["customer_id"].astype(str)).sort_values(
        "customer_id"
    )
    assert len(got) == len(expected)
    for column in expected.columns:
        left, right = got[column].to_numpy(), expected[column].to_numpy()
        if column == "distance":
            np.testing.assert_allclose(left.astype(float), right.astype(float), rtol=1e-9)
        elif column in ("customer_id", "segment", "rfm_score"):
            assert left.astype(str).tolist() == right.astype(str).tolist(), column
        else:
            np.testing.assert_array_equal(left.astype(np.int64), right.astype(np.int64), column)


def assert_lazy(result, backend: str) -> None:
    """The result is the backend's own frame type: lazy where the backend is lazy."""
    if backend == "polars":
        assert isinstance(result, pl.DataFrame)
    elif backend == "polars-lazy":
        assert isinstance(result, pl.LazyFrame)
    elif backend == "duckdb":
        assert isinstance(result, duckdb.DuckDBPyRelation)
    elif backend == "dask":
        import dask.dataframe as dd

        assert isinstance(result, dd.DataFrame)
    else:
        from pyspark.sql import DataFrame

        assert isinstance(result, DataFrame)


# ------------------------------------------------------------------------ RFM

RFM_MODELS = {
    "classic": {},
    "custom": {
        "segment_map": {
            "VIP": "r_score >= 4 and m_score == 5",
            "Channel fans": "fm_score >= 3 and channel in ('app', 'web')",
            "One-off": "f_score == 1",
        }
    },
    "bins-7": {"n_bins": 7, "segment_map": {"Top": "r_score + f_score + m_score >= 18"}},
}


@pytest.mark.parametrize("params", list(RFM_MODELS), ids=list(RFM_MODELS))
def test_rfm_predict_matches_pandas(features, native, backend, params):
    model = sk.RFMSegmenter(**RFM_MODELS[params]).fit(features)
    expected = model.predict(features).assignments
    result = model.predict(native())
    assert_lazy(result, backend)
    assert_same(result, expected)


def test_rfm_handles_non_buyers_and_missing(features, native):
    frame = features.frame.reset_index()
    frame.loc[:4, "frequency"] = 0
    frame.loc[5:7, "recency_days"] = np.nan
    frame.loc[8:9, "monetary"] = np.nan
    model = sk.RFMSegmenter().fit(features)
    expected = model.predict(frame).assignments
    assert (expected["segment"] == "No purchases").sum() == 8
    assert_same(model.predict(native(frame)), expected)


def test_rfm_fits_on_native_frames_as_on_pandas(features, native):
    reference = sk.RFMSegmenter().fit(features)
    model = sk.RFMSegmenter().fit(native())
    for key in ("recency", "frequency", "monetary"):
        np.testing.assert_array_equal(model.thresholds_[key], reference.thresholds_[key])
    assert list(model.feature_names_in_) == list(reference.feature_names_in_)
    assert model.segment_names_ == reference.segment_names_


# ---------------------------------------------------------------------- rules

# Every operator and form of the rule language, on numbers, text, booleans, missing
# values and infinity.
HAND_RULES = [
    ("eq", "frequency == 1"),
    ("eq-single", "n_categories = 2"),
    ("ne", "channel != 'web' and delta != 0"),
    ("lt-le", "delta < -10 or recency_days <= 3"),
    ("gt-ge", "score > 15 or score >= 14.5"),
    ("ne-missing", "score != 3 and -score != 2"),
    ("bool-number", "vip > 0 and vip in (1) and frequency != true"),
    ("in", "channel in ('app', 'store') and delta in [1, 2, 3, 4.0]"),
    ("not-in", "channel not in ('web') and delta not in (0, 1)"),
    ("between", "score between -5 and 5"),
    ("not-between", "score not between -5 and 5 and delta between -3 and 3"),
    ("is-null", "channel is null or score is null"),
    ("is-not-null", "score is not null and top_category_share is null"),
    ("not", "not score > 0 and not vip"),
    ("bool", "vip and frequency >= 2"),
    ("bool-compare", "vip == true and `odd name` = 2"),
    ("arith", "monetary / frequency > 10 and -delta * 2 + 1 > 5"),
    ("mod-int", "delta % 3 == 1 or delta % -4 == -1"),
    ("mod-float", "monetary % 7.5 < 1"),
    ("div-zero", "monetary / (frequency - frequency) is null and delta % 0 is null"),
    ("inf", "score > 1e300"),
    ("text-vs-number", "channel == 1 or channel != 2 or delta == 'x'"),
    ("constants", "1 / 0 is null and 2 > 1 and (true or false) and 'a' < 'b'"),
    ("mixed", "(frequency >= 2 or vip) and not (channel = 'store' or recency_days > 200)"),
    ("strings", "top_category >= 'M' and top_category < 'Z'"),
]


def test_lifecycle_rules_match_pandas(features, native, backend):
    model = sk.RuleSegmenter(rules=sk.lifecycle_rules(browsing=False), default="Occasional")
    model.fit(features)
    result = model.predict(native())
    assert_lazy(result, backend)
    assert_same(result, model.predict(features).assignments)


def test_every_rule_operator_matches_pandas(features, native):
    frame = native()
    for name, text in HAND_RULES:
        model = sk.RuleSegmenter(rules=[(name, text)]).fit(features)
        expected = model.predict(features).assignments
        assert 0 < (expected["segment_id"] == 0).sum() < len(expected) or name in (
            "constants",
            "div-zero",
        ), f"rule {name!r} should split the customers"
        try:
            assert_same(model.predict(frame), expected)
        except AssertionError as error:
            raise AssertionError(f"rule {name!r} ({text}) differs: {error}") from None


def test_first_matching_rule_wins_natively(features, native):
    model = sk.RuleSegmenter(rules=HAND_RULES).fit(features)
    assert_same(model.predict(native()), model.predict(features).assignments)


def test_rules_fit_on_native_frames(features, native):
    model = sk.RuleSegmenter(rules=sk.lifecycle_rules(browsing=False)).fit(native())
    assert list(model.feature_names_in_) == features.columns
    assert_same(model.predict(native()), model.predict(features).assignments)


def test_unknown_feature_is_reported_natively(features, native):
    model = sk.RuleSegmenter(rules=[("A", "frequency >= 2")]).fit(features)
    frame = features.frame.reset_index().rename(columns={"frequency": "n_orders"})
    with pytest.raises(RuleSyntaxError, match="Unknown feature 'frequency'"):
        model.predict(native(frame))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("channel < 3", "Cannot compare feature 'channel'"),
        ("channel + 1 > 2", "Expected a number for '\\+'"),
        ("frequency + 1", "Expected a condition at position 0"),
        ("first_purchase > '2017-01-01'", "timestamps"),
    ],
)
def test_rules_that_cannot_compile_say_why(features, text, message):
    frame = pl.from_pandas(features.frame.reset_index()).lazy()
    model = sk.RuleSegmenter(rules=[("A", text)]).fit(frame)
    with pytest.raises(RuleSyntaxError, match=message):
        model.predict(frame)


def test_function_rules_need_pandas_or_an_eager_frame(features):
    frame = pl.from_pandas(features.frame.reset_index())
    model = sk.RuleSegmenter(rules=[("Big", lambda f: f["monetary"] > 100)]).fit(features)
    with pytest.raises(NotImplementedError, match="Python function"):
        model.predict(frame.lazy())
    # An eager frame is in memory already: scored on the pandas path, returned as polars.
    result = model.predict(frame)
    assert isinstance(result, pl.DataFrame)
    assert_same(result, model.predict(features).assignments)


# --------------------------------------------------------------------- k-means

KMEANS = {
    "default": {"n_clusters": 3, "missing": "median"},
    "one-hot": {
        "n_clusters": 4,
        "features": ["recency_days", "frequency", "monetary", "top_category", "vip", "delta"],
        "missing": "zero",
        "scaler": "robust",
    },
}


@pytest.mark.parametrize("params", list(KMEANS), ids=list(KMEANS))
def test_kmeans_scores_natively_like_pandas(features, native, backend, params):
    model = sk.KMeansSegmenter(random_state=0, **KMEANS[params]).fit(features)
    result = model.predict(native())
    assert_lazy(result, backend)
    assert_same(result, model.predict(features).assignments)


def test_kmeans_missing_values_are_refused_natively(features, native):
    frame = features.frame.reset_index()
    frame.loc[:1, "recency_days"] = np.nan
    model = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit(features)
    with pytest.raises(ValueError, match="missing feature values: \\{'recency_days': 2\\}"):
        model.predict(native(frame))


def md5_sample(frame: pd.DataFrame, size: int) -> pd.DataFrame:
    """The documented sample, computed independently: smallest md5 of the id, then in
    the order of the ids' text (the order extract_features gives on pandas)."""
    digest = frame["customer_id"].map(lambda v: hashlib.md5(str(v).encode()).hexdigest())
    order = np.lexsort((frame["customer_id"].astype(str), digest))
    sample = frame.iloc[order[:size]]
    text = sample["customer_id"].astype(str).to_numpy()
    return sample.iloc[np.argsort(text, kind="stable")].reset_index(drop=True)


def test_kmeans_fits_on_the_same_sample_in_every_engine(features, native, backend):
    frame = features.frame.reset_index()
    params = {"n_clusters": 3, "random_state": 0, "missing": "median", "fit_sample_size": 300}
    model = sk.KMeansSegmenter(**params).fit(native())
    reference = sk.KMeansSegmenter(**params).fit(md5_sample(frame, 300))
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-9)
    assert model.n_features_in_ == len(features.columns)
    # Fitted on the sample, scored on everyone in the engine.
    result = model.predict(native())
    assert_lazy(result, backend)
    assert_same(result, model.predict(features).assignments)


def test_sample_is_everyone_when_small(features):
    frame = pl.from_pandas(features.frame.reset_index())
    params = {"n_clusters": 3, "random_state": 0, "missing": "median"}
    model = sk.KMeansSegmenter(**params).fit(frame)
    reference = sk.KMeansSegmenter(**params).fit(md5_sample(features.frame.reset_index(), 10**6))
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-9)


# --------------------------------------------------------------------- HDBSCAN


HDBSCAN_PARAMS: dict = {
    "features": ["recency_days", "frequency", "monetary"],
    "min_cluster_size": 20,
    "min_samples": 5,
}


@pytest.fixture(scope="module")
def hdbscan_model(features):
    """Fitted on a lazy frame: the 500 customers with the smallest md5 of their id."""
    pytest.importorskip("hdbscan")
    frame = pl.from_pandas(features.frame.reset_index()).lazy()
    model = sk.HDBSCANSegmenter(max_fit_size=500, **HDBSCAN_PARAMS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(frame)


def test_hdbscan_fits_on_the_md5_sample(features, hdbscan_model):
    assert hdbscan_model.fit_sample_size_ == 500
    expected = md5_sample(features.frame.reset_index(), 500)["customer_id"].astype(str)
    assert hdbscan_model.fit_customer_ids_.astype(str).tolist() == expected.tolist()
    assert hdbscan_model.n_clusters_ >= 2


def test_hdbscan_scores_batch_by_batch_in_the_engine(features, native, backend, hdbscan_model):
    # No expression form: batches run in the engine's Python workers (mapInPandas,
    # map_partitions, DuckDB's map, polars' map_batches); eager frames in memory.
    result = hdbscan_model.predict(native())
    assert_lazy(result, backend)
    expected = hdbscan_model.predict(features).assignments
    got = to_pandas(result)
    assert_same(got.drop(columns="membership"), expected.drop(columns="membership"))
    got = got.assign(customer_id=got["customer_id"].astype(str)).sort_values("customer_id")
    np.testing.assert_allclose(
        got["membership"].to_numpy(float),
        expected.sort_values("customer_id")["membership"].to_numpy(float),
        rtol=1e-12,
    )


# ---------------------------------------------------------------- laziness


def test_spark_predict_runs_no_job(features, spark):
    frame = spark.createDataFrame(features.frame.reset_index())
    models = [
        sk.RFMSegmenter().fit(features),
        sk.RuleSegmenter(rules=sk.lifecycle_rules(browsing=False)).fit(features),
        sk.KMeansSegmenter(n_clusters=3, random_state=0, missing="median").fit(features),
    ]
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup())
    results = [model.predict(frame) for model in models]
    assert set(tracker.getJobIdsForGroup()) == before, "predict started a Spark job"
    for result in results:
        assert type(result).__module__.startswith("pyspark.sql")
        assert {"customer_id", "segment_id", "segment"} <= set(result.columns)


def test_polars_lazy_plan_is_not_collected(features):
    frame = pl.from_pandas(features.frame.reset_index()).lazy()
    model = sk.RFMSegmenter().fit(features)
    result = model.predict(frame)
    assert isinstance(result, pl.LazyFrame)
    assert result.collect_schema().names()[:3] == ["customer_id", "segment_id", "segment"]


def test_import_does_not_load_backends():
    code = (
        "import sys, segmentkit\n"
        "loaded = [m for m in ('polars', 'duckdb', 'pyspark', 'dask') if m in sys.modules]\n"
        "print(loaded)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_missing_customer_id_is_named(features):
    frame = pl.from_pandas(features.frame.reset_index()).rename({"customer_id": "id"})
    model = sk.RFMSegmenter().fit(features)
    with pytest.raises(ValueError, match="needs a customer_id column"):
        model.predict(frame.lazy())


# ------------------------------------------------------------ end to end on Spark


def test_spark_transactions_to_assignments_without_collecting_them(spark, monkeypatch):
    """Transactions in Spark -> features in Spark -> predict -> a Spark frame of
    assignments; the transaction lines never reach the driver."""
    raw, mapping = sk.datasets.load_sample()
    lines = spark.createDataFrame(raw)
    collected: list[tuple[str, str, int, tuple[str, ...]]] = []
    stage = {"now": "features"}
    spark_frame = type(lines)

    def recording(name):
        original = getattr(spark_frame, name)

        def method(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            if name == "toLocalIterator":
                out = iter(list(out))
                rows = len(list(original(self, *args, **kwargs)))
            else:
                rows = out.num_rows if hasattr(out, "num_rows") else len(out)
            collected.append((stage["now"], name, rows, tuple(self.columns)))
            return out

        return method

    # Every way rows reach the driver (narwhals collects through toArrow).
    for name in ("collect", "toPandas", "toArrow", "take", "head", "tail", "toLocalIterator"):
        if hasattr(spark_frame, name):
            monkeypatch.setattr(spark_frame, name, recording(name))

    features = sk.extract_features(sk.Transactions.from_frame(lines, **mapping))
    assert isinstance(features, spark_frame)
    stage["now"] = "fit"
    model = sk.RFMSegmenter().fit(features)
    stage["now"] = "predict"
    assignments = model.predict(features)
    monkeypatch.undo()

    assert isinstance(assignments, spark_frame)
    # The features are computed inside the assignments' plan, from the lines.
    plan = assignments._jdf.queryExecution().optimizedPlan().toString()
    assert "Aggregate" in plan
    n_customers = raw[mapping["customer_id"]].nunique()
    transaction_columns = set(raw.columns)
    for where, name, rows, columns in collected:
        assert where != "predict", f"predict collected {rows} rows via {name}"
        assert rows < len(raw), (where, name, rows)
        assert not transaction_columns & set(columns), (where, name, columns)
        if where == "features":
            # Validation and extraction read aggregates only (counts, first/last time).
            assert rows <= 1, f"feature extraction collected {rows} rows via {name}"
        else:
            # RFM's fit reads the R, F and M of each customer: one small row each.
            assert rows <= n_customers
            assert set(columns) <= {"customer_id", "recency_days", "frequency", "monetary"}

    # Same assignments as the pandas pipeline.
    reference = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    expected = sk.RFMSegmenter().fit(reference).predict(reference).assignments
    assert_same(assignments, expected)


def test_customer_id_is_not_a_feature_for_rules(features):
    # As on pandas, where the id is the index.
    frame = pl.from_pandas(features.frame.reset_index()).lazy()
    model = sk.RuleSegmenter(rules=[("A", "customer_id == '1001'")])
    with pytest.raises(RuleSyntaxError, match="Unknown feature 'customer_id'"):
        model.fit(frame)
    with pytest.raises(RuleSyntaxError, match="Unknown feature 'customer_id'"):
        model.fit(features)


class _BigSpenders(sk.Segmenter):
    """A third-party engine that knows nothing of native frames."""

    def _fit(self, features):
        self.cut_ = float(features.frame["monetary"].median())
        self.segments_ = [sk.Segment(0, "Small"), sk.Segment(1, "Big")]

    def _assign(self, features):
        return (features.frame["monetary"].to_numpy() > self.cut_).astype(int), {}


def test_engines_without_native_hooks_say_so(features):
    frame = pl.from_pandas(features.frame.reset_index())
    with pytest.raises(TypeError, match="cannot fit on a polars frame"):
        _BigSpenders().fit(frame.lazy())
    model = _BigSpenders().fit(features)
    with pytest.raises(NotImplementedError, match="does not compile to dataframe expressions"):
        model.predict(frame.lazy())
    result = model.predict(frame)  # eager: scored on the pandas path
    assert isinstance(result, pl.DataFrame)
    assert_same(result, model.predict(features).assignments)


def test_fit_predict_on_a_lazy_frame(features):
    frame = pl.from_pandas(features.frame.reset_index()).lazy()
    result = sk.RFMSegmenter().fit_predict(frame)
    assert isinstance(result, pl.LazyFrame)
    assert_same(result, sk.RFMSegmenter().fit_predict(features).assignments)
