"""Saving segmenters as JSON model files and loading them back, with every refusal."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk
from segmentkit.engines import _registry
from segmentkit.engines._expr import parse
from segmentkit.engines._persistence import FORMAT, FORMAT_VERSION, _Codec, _UnencodableError, load
from segmentkit.engines._rules import Rule
from segmentkit.errors import NotFittedError, PersistenceError

JSON_ENGINES = {
    "rfm-classic": lambda: sk.RFMSegmenter(),
    "rfm-custom-map": lambda: sk.RFMSegmenter(
        segment_map={"VIP": "r_score >= 4 and m_score == 5", "One-off": "f_score == 1"},
        default_segment="Regulars",
    ),
    "rules-text": lambda: sk.RuleSegmenter(
        rules=[
            *sk.lifecycle_rules(browsing=False),
            ("Big baskets", "avg_order_value between 20 and 1000", "Spend a lot per order."),
        ],
        default="Occasional",
    ),
    "rules-dict": lambda: sk.RuleSegmenter(rules={"Frequent": "frequency >= 10"}),
    "kmeans": lambda: sk.KMeansSegmenter(n_clusters=3, random_state=0),
    "kmeans-chosen-k": lambda: sk.KMeansSegmenter(
        k_range=(2, 4),
        scaler="robust",
        features=["recency_days", "monetary", "top_category"],
        random_state=0,
    ),
}


class Opaque:
    """State with no JSON form: stored pickled."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


class OpaqueStateSegmenter(sk.RFMSegmenter):
    """RFM plus an attribute that has to be pickled, like HDBSCAN's fitted model."""

    _pickled_state: ClassVar[dict[str, str]] = {"_opaque": "an Opaque test object"}

    def _fit(self, features: sk.CustomerFeatures) -> None:
        super()._fit(features)
        self._opaque = Opaque(1.5)


@pytest.fixture
def changed(sample_features: sk.CustomerFeatures) -> sk.CustomerFeatures:
    """The sample's customers with other spend: predicted afresh, not looked up."""
    frame = sample_features.frame.copy()
    frame["monetary"] = frame["monetary"] * 1.7 + 3
    frame["recency_days"] = frame["recency_days"] * 0.6
    return sk.CustomerFeatures.from_frame(frame, as_of=sample_features.as_of)


def _assert_same_predictions(model, restored, *inputs) -> None:
    for features in inputs:
        pd.testing.assert_frame_equal(
            restored.predict(features).assignments, model.predict(features).assignments
        )


def _save(model, tmp_path: Path, name: str = "model.json") -> tuple[Path, dict[str, Any]]:
    path = model.save(tmp_path / name)
    return path, json.loads(path.read_text(encoding="utf-8"))


def _write(tmp_path: Path, document: Any, name: str = "edited.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("make", JSON_ENGINES.values(), ids=JSON_ENGINES.keys())
def test_round_trip_predicts_identically_from_plain_json(make, sample_features, changed, tmp_path):
    model = make().fit(sample_features)
    path, document = _save(model, tmp_path)

    assert path == tmp_path / "model.json"
    assert document["format"] == FORMAT
    assert document["format_version"] == FORMAT_VERSION
    assert document["segmentkit_version"] == sk.__version__
    assert document["engine"] == f"{type(model).__module__}:{type(model).__name__}"
    assert document["fitted"] is True
    assert "pickled" not in document  # readable to the end, and loads without trust
    restored = load(path)
    assert type(restored) is type(model)
    assert restored.get_params() == model.get_params()
    assert restored.segments_ == model.segments_
    assert restored.segment_names_ == model.segment_names_
    _assert_same_predictions(model, restored, sample_features, changed)


def test_file_is_readable_json_with_plain_params(sample_features, tmp_path):
    model = sk.RFMSegmenter(segment_map={"VIP": "m_score == 5"}).fit(sample_features)
    path, document = _save(model, tmp_path)
    assert document["params"] == model.get_params()
    text = path.read_text(encoding="utf-8")
    assert '"text": "m_score == 5"' in text  # parsed rules are stored as their text
    assert max(len(line) for line in text.splitlines() if "data" not in line) < 200
    assert document["state"]["segments_"][0]["fields"]["name"] == "VIP"


def test_parsed_rules_come_back_as_the_same_expressions(sample_features, tmp_path):
    model = JSON_ENGINES["rules-text"]().fit(sample_features)
    restored = load(_save(model, tmp_path)[0])
    assert restored._parsed == model._parsed
    assert [str(e) for e in restored._parsed] == [str(e) for e in model._parsed]


def test_chosen_k_scores_and_preprocessor_survive(sample_features, tmp_path):
    model = JSON_ENGINES["kmeans-chosen-k"]().fit(sample_features)
    restored = load(_save(model, tmp_path)[0])
    pd.testing.assert_frame_equal(restored.k_scores_, model.k_scores_)
    assert restored._pre == model._pre
    np.testing.assert_array_equal(restored.cluster_centers_, model.cluster_centers_)
    np.testing.assert_array_equal(
        restored.transform(sample_features), model.transform(sample_features)
    )


def test_unfitted_segmenter_round_trips_unfitted(tmp_path):
    model = sk.KMeansSegmenter(n_clusters=4, features=["frequency", "monetary"], k_range=(3, 5))
    path, document = _save(model, tmp_path)
    assert document["fitted"] is False
    assert document["state"] == {}
    restored = load(path)
    assert restored.get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        restored.predict(pd.DataFrame({"customer_id": ["a"], "frequency": [1], "monetary": [2.0]}))


def test_hdbscan_round_trip_needs_trust_for_its_pickled_model(sample_features, changed, tmp_path):
    hdbscan_engine = pytest.importorskip(
        "segmentkit.engines._hdbscan", reason="the HDBSCAN engine or hdbscan is not installed"
    )
    model = hdbscan_engine.HDBSCANSegmenter(
        features=["recency_days", "frequency", "monetary"],
        min_cluster_size=20,
        min_samples=5,
        random_state=0,
    ).fit(sample_features)
    path, document = _save(model, tmp_path)

    assert set(document["pickled"]) == {"_model"}
    assert document["pickled"]["_model"]["python_type"].startswith("hdbscan.")
    assert "_pre" in document["state"]  # everything else stays readable
    with pytest.raises(PersistenceError, match=r"Unpickling runs code.*trust_pickle=True"):
        load(path)
    restored = load(path, trust_pickle=True)
    assert restored.n_clusters_ == model.n_clusters_ > 0
    # `changed` customers are placed by approximate_predict on the unpickled model.
    _assert_same_predictions(model, restored, sample_features, changed)


def test_pickled_state_is_refused_by_default_and_checked_by_hash(sample_features, tmp_path):
    model = OpaqueStateSegmenter().fit(sample_features)
    path, document = _save(model, tmp_path)
    entry = document["pickled"]["_opaque"]
    assert entry["python_type"] == f"{__name__}:Opaque"

    with pytest.raises(PersistenceError) as refused:
        load(path)
    message = str(refused.value)
    assert "'_opaque' (" in message
    assert "Unpickling runs code chosen by whoever wrote the file" in message
    assert "trust_pickle=True" in message

    restored = load(path, trust_pickle=True)
    assert restored._opaque == Opaque(1.5)
    _assert_same_predictions(model, restored, sample_features)

    entry["sha256"] = "0" * 64
    with pytest.raises(PersistenceError, match="SHA-256 of the data does not match"):
        load(_write(tmp_path, document), trust_pickle=True)
    entry["data"] = "not base64!"
    with pytest.raises(PersistenceError, match="'data' is not base64"):
        load(_write(tmp_path, document), trust_pickle=True)


# --------------------------------------------------------------------------- saving


def test_rule_with_a_python_function_cannot_be_saved_and_is_named(sample_features, tmp_path):
    def big_spender(frame: pd.DataFrame) -> pd.Series:
        return frame["monetary"] > 100

    rules = [Rule("New", "tenure_days <= 30"), Rule("Big spenders", big_spender)]
    target = tmp_path / "model.json"
    target.write_text("previous content", encoding="utf-8")

    with pytest.raises(PersistenceError, match=r"rule 'Big spenders' has a Python function"):
        sk.RuleSegmenter(rules=rules).fit(sample_features).save(target)
    with pytest.raises(PersistenceError, match=r"parameter rules\[1\]\[1\] is a Python function"):
        sk.RuleSegmenter(rules=[("New", "tenure_days <= 30"), ("Big", big_spender)]).save(target)
    assert target.read_text(encoding="utf-8") == "previous content"  # written atomically
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def test_save_needs_an_existing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sk.RFMSegmenter().save(tmp_path / "missing" / "model.json")


def test_classes_defined_in_a_function_cannot_be_saved(tmp_path):
    class Local(sk.RFMSegmenter):
        pass

    with pytest.raises(PersistenceError, match="defined inside a function"):
        Local().save(tmp_path / "model.json")


# --------------------------------------------------------------------------- refusals


def test_not_a_model_file(tmp_path, sample_features):
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json", encoding="utf-8")
    with pytest.raises(
        PersistenceError, match="not a segmentkit model file: it is not valid JSON"
    ):
        load(garbage)
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x80\x04\x95 pickle")
    with pytest.raises(PersistenceError, match="not UTF-8"):
        load(binary)
    with pytest.raises(PersistenceError, match='no "format": "segmentkit-model" marker'):
        load(_write(tmp_path, {"hello": 1}))
    segmentation = sk.RFMSegmenter().fit_predict(sample_features)
    with pytest.raises(PersistenceError, match=r"looks like a segmentation written by .*to_json"):
        load(segmentation.to_json(tmp_path / "segments.json"))
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.json")


def test_newer_format_version_asks_for_an_upgrade(tmp_path):
    _, document = _save(sk.RFMSegmenter(), tmp_path)
    document.update(format_version=FORMAT_VERSION + 1, segmentkit_version="9.0.0")
    with pytest.raises(PersistenceError) as raised:
        load(_write(tmp_path, document))
    assert (
        f"was written by segmentkit 9.0.0 with format version {FORMAT_VERSION + 1}; this "
        f"version of segmentkit ({sk.__version__}) reads up to {FORMAT_VERSION}. Upgrade "
        "segmentkit"
    ) in str(raised.value)


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ("os:system", "not part of segmentkit, not registered"),
        ("never_imported_package_xyz.evil:Payload", "install or import the package"),
        ("segmentkit._common._files:write_atomic", "which is not a segmentkit Segmenter"),
        ("segmentkit.engines._nope:Engine", "this version of segmentkit .* does not have"),
        ("builtins:print; import os", "expected 'module:Class'"),
    ],
)
def test_engines_outside_segmentkit_and_plugins_are_refused(engine, message, tmp_path):
    _, document = _save(sk.RFMSegmenter(), tmp_path)
    document["engine"] = engine
    with pytest.raises(PersistenceError, match=message):
        load(_write(tmp_path, document))
    assert "never_imported_package_xyz" not in sys.modules


def test_registered_engines_load_and_unregistered_ones_do_not(
    monkeypatch, sample_features, tmp_path
):
    # A class from a package that is not imported under its name: only the registry
    # knows it.
    third_party = type("ThirdParty", (sk.RFMSegmenter,), {"__module__": "vendor_pkg.engines"})
    model = third_party().fit(sample_features)
    path, document = _save(model, tmp_path)
    assert document["engine"] == "vendor_pkg.engines:ThirdParty"
    with pytest.raises(PersistenceError, match="not registered"):
        load(path)
    monkeypatch.setitem(_registry._REGISTERED, "third_party", third_party)
    restored = load(path)
    assert type(restored) is third_party
    _assert_same_predictions(model, restored, sample_features)


def _drop(key: str) -> Callable[[dict], None]:
    return lambda document: document["state"].pop(key)


def _set_state(key: str, value: Any) -> Callable[[dict], None]:
    return lambda document: document["state"].__setitem__(key, value)


def _first_segment_class(document: dict) -> None:
    document["state"]["segments_"][0]["class"] = "subprocess:Popen"


def _array(**changes: Any) -> Callable[[dict], None]:
    def edit(document: dict) -> None:
        document["state"]["cluster_centers_"].update(changes)

    return edit


def _text_in_array(document: dict) -> None:
    document["state"]["cluster_centers_"]["data"][0][0] = "1"


TAMPERING = {
    "state key missing": (_drop("_pre"), "KMeansSegmenter needs '_pre', which is missing"),
    "base key missing": (_drop("segments_"), "needs 'segments_', which is missing"),
    "wrong type": (_set_state("cluster_centers_", [[0.0]]), "expected ndarray, got list"),
    "int as bool": (_set_state("n_features_in_", True), "expected an int, got a bool"),
    "inconsistent": (_set_state("n_segments_", 7), "does not match segments_"),
    "not a name": (_set_state("__class__", 1), "'__class__' is not an attribute name"),
    "param as state": (_set_state("n_clusters", 5), "'n_clusters' is a parameter"),
    "unknown type": (_set_state("labels_", {"__type__": "eval", "code": "1"}), "unknown value"),
    "foreign dataclass": (_first_segment_class, "is not a segmentkit or engine data class"),
    "bad shape": (_array(shape=[2, 2]), "values for shape"),
    "bad dtype": (_array(dtype="V8"), "unsupported dtype"),
    "bad values": (_text_in_array, "'1' is not a valid float64 value"),
    "unknown param": (
        lambda document: document["params"].update(colour="red"),
        r"has no parameters \['colour'\]",
    ),
    "bad param": (
        lambda document: document["params"].update(n_clusters="three"),
        "cannot build KMeansSegmenter",
    ),
    "missing field": (lambda document: document.pop("params"), "lacks the fields"),
    "extra field": (lambda document: document.update(code="x"), r"unknown fields \['code'\]"),
    "unfitted flag": (lambda document: document.update(fitted=False), "says unfitted"),
    "version type": (lambda document: document.update(format_version="1"), "positive int"),
}


@pytest.mark.parametrize(("edit", "message"), TAMPERING.values(), ids=TAMPERING.keys())
def test_edited_or_damaged_files_are_refused_with_a_reason(
    edit, message, sample_features, tmp_path
):
    model = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit(sample_features)
    _, document = _save(model, tmp_path)
    edit(document)
    with pytest.raises(PersistenceError, match=message) as raised:
        load(_write(tmp_path, document))
    assert "edited or is damaged" in str(raised.value) or "cannot build" in str(raised.value)


def test_unparsable_rule_text_is_refused(sample_features, tmp_path):
    model = sk.RuleSegmenter(rules=[("A", "frequency > 1")]).fit(sample_features)
    _, document = _save(model, tmp_path)
    document["state"]["_parsed"][0]["text"] = "frequency >"
    with pytest.raises(
        PersistenceError, match=r"state\['_parsed'\]\[0\]: the rule does not parse"
    ):
        load(_write(tmp_path, document))


# --------------------------------------------------------------------------- values


def _codec() -> _Codec:
    return _Codec(owner="Test", engine_module=__name__, source="test.json")


def _round_trip(value: Any) -> Any:
    encoded = _codec().encode(value, "value")
    text = json.dumps(encoded, allow_nan=False)  # strictly JSON: no NaN literals
    return _codec().decode(json.loads(text), "value")


VALUES = {
    "floats": [math.nan, math.inf, -math.inf, 0.1, -0.0, 1e300],
    "containers": {"a": (1, "b", None), "b": [True, {2: "int key", (1, 2): "tuple key"}]},
    "sets": [{3, 1, 2}, frozenset({"x", "y"})],
    "tag collision": {"__type__": "ndarray", "plain": "dict"},
    "numpy scalars": [np.float32(1.5), np.int64(-3), np.uint64(2**63 + 1), np.bool_(True)],
    "floats 2d": np.array([[1.0, np.nan], [np.inf, -np.inf]]),
    "float32": np.array([0.1, 1 / 3], dtype=np.float32),
    "ints": np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16),
    "uint64": np.array([0, 2**64 - 1], dtype=np.uint64),
    "bools": np.array([True, False]),
    "text": np.array(["a", "bcd"]),
    "empty": np.zeros((0, 3)),
    "datetimes": np.array(["2024-01-01T12:00", "NaT"], dtype="datetime64[ns]"),
    "timedeltas": np.array([1, 2], dtype="timedelta64[D]"),
    "objects": np.array(["a", None, 1.5, ("t",)], dtype=object),
    "str index": pd.Index(["c1", "c2"], dtype="str", name="customer_id"),
    "range index": pd.RangeIndex(2, 10, 3, name="r"),
    "int index": pd.Index([3, 1, 2], dtype="Int64"),
    "time index": pd.DatetimeIndex(["2024-01-01", "2024-06-01"], tz="Europe/Paris"),
    "series": pd.Series(["x", None, "z"], dtype="str", index=pd.Index([5, 6, 7]), name="s"),
    "frame": pd.DataFrame(
        {
            "k": [2, 3],
            "score": [0.5, np.nan],
            "label": pd.array(["a", None], dtype="string"),
            "flag": [True, False],
            "when": pd.to_datetime(["2024-01-01", "2024-02-01"], utc=True),
            7: pd.array([1, None], dtype="Int64"),
        }
    ),
    "timestamp": pd.Timestamp("2024-03-31 02:30", tz="America/New_York"),
    "rule": parse("frequency >= 4 and `odd name` in ('a', 'b') or not x is null"),
    "segment": sk.Segment(-1, "Unclustered", "Noise.", ""),
    "rule object": Rule("VIP", "monetary > 500", "Spend a lot."),
}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_values_round_trip_exactly(value):
    restored = _round_trip(value)
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(restored, value)
    elif isinstance(value, pd.Series):
        pd.testing.assert_series_equal(restored, value)
    elif isinstance(value, pd.Index):
        pd.testing.assert_index_equal(restored, value, exact=True)
    elif isinstance(value, np.ndarray):
        assert restored.dtype == value.dtype
        assert restored.shape == value.shape
        np.testing.assert_array_equal(restored, value)
    elif isinstance(value, list) and value and isinstance(value[0], float):
        assert [str(v) for v in restored] == [str(v) for v in value]
    elif isinstance(value, list) and value and isinstance(value[0], np.generic):
        assert [(type(v), v) for v in restored] == [(type(v), v) for v in value]
    else:
        assert restored == value
        assert type(restored) is type(value)


@pytest.mark.parametrize(
    "value",
    [
        np.array([1 + 2j]),
        pd.Series(["a", "b"], dtype="category"),
        pd.MultiIndex.from_tuples([(1, 2)]),
        Opaque(1.0),
        lambda x: x,
    ],
    ids=["complex", "categorical", "multiindex", "object", "function"],
)
def test_values_without_a_json_form_are_left_to_pickle(value):
    with pytest.raises(_UnencodableError):
        _codec().encode(value, "value")


def test_fitted_scikit_learn_estimators_are_stored_as_data():
    from sklearn.cluster import KMeans

    X = np.random.default_rng(0).normal(size=(40, 2))
    model = KMeans(n_clusters=3, n_init=2, random_state=0).fit(X)
    restored = _round_trip(model)
    assert type(restored) is KMeans
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    node = _codec().encode(model, "model")
    node["class"] = "os:system"
    with pytest.raises(PersistenceError, match="is not a scikit-learn estimator"):
        _codec().decode(node, "model")


def test_files_written_before_the_stage_layout_still_load(sample_features, tmp_path):
    # 0.x files name the modules as they were before the package was laid out by stage.
    model = sk.RFMSegmenter().fit(sample_features)
    path = model.save(tmp_path / "rfm.json")
    text = path.read_text(encoding="utf-8")
    assert "segmentkit.results._segmentation:Segment" in text
    path.write_text(text.replace("segmentkit.results._segmentation", "segmentkit._segmentation"))
    loaded = load(path)
    assert [s.name for s in loaded.segments_] == [s.name for s in model.segments_]
    assert loaded.predict(sample_features).assignments.equals(
        model.predict(sample_features).assignments
    )
