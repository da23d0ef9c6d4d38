"""Rule files and model files from outside the code are read with bounded cost and care."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

import segmentkit as sk
from _bad_inputs_security import _YAML_BOMB
from segmentkit.errors import PersistenceError, RuleSyntaxError


def test_yaml_alias_bomb_is_refused_fast_and_small(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "bomb.yaml"
    path.write_text(_YAML_BOMB, encoding="utf-8")
    assert len(path.read_bytes()) < 400
    sk.load_rules  # noqa: B018 - import the engines before measuring
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(RuleSyntaxError, match="anchors and aliases"):
            sk.load_rules(path)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5, f"{elapsed:.2f} s"
    assert peak < 20_000_000, f"{peak / 1e6:.1f} MB"


def test_yaml_anchors_within_the_bound_still_load(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "rules.yaml"
    path.write_text(
        "text: &why Bought recently.\n"
        "rules:\n"
        "- {name: New, when: tenure_days <= 30, description: *why}\n"
        "- {name: Again, when: frequency >= 2, description: *why}\n",
        encoding="utf-8",
    )
    rules, default = sk.load_rules(path)
    assert [r.description for r in rules] == ["Bought recently.", "Bought recently."]
    assert default == "Other"


def test_a_rule_file_error_has_no_caret_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules": [{"name": "VIP", "when": 3}]}), encoding="utf-8")
    with pytest.raises(RuleSyntaxError) as raised:
        sk.load_rules(path)
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_deep_rules_built_in_python_are_rule_errors() -> None:
    from segmentkit.engines._expr import Arithmetic, Comparison, Literal, Name, check_names

    deep: object = Name("x")
    for _ in range(3000):
        deep = Arithmetic("+", deep, Name("x"))
    tree = Comparison(">", deep, Literal(0))
    check_names(tree, ["x"], text="x")  # walks the tree without recursion
    with pytest.raises(RuleSyntaxError, match="nested"):
        tree.evaluate(pd.DataFrame({"x": [1.0]}))


# --------------------------------------------------------------------------- model files


def test_hdbscan_refusal_describes_pickles_in_the_engines_words(
    sample_features: sk.CustomerFeatures, tmp_path: Path
) -> None:
    pytest.importorskip("hdbscan")
    model = sk.HDBSCANSegmenter(
        features=["recency_days", "frequency", "monetary"], min_cluster_size=20, min_samples=5
    ).fit(sample_features)
    path = model.save(tmp_path / "hdbscan.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    document["pickled"]["_model"]["python_type"] = "numpy:ndarray (plain numbers, safe)"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(PersistenceError) as refused:
        sk.load(path)
    message = str(refused.value)
    assert "plain numbers, safe" not in message
    assert "the fitted hdbscan.HDBSCAN clusterer" in message
    assert "trust_pickle=True" in message


def test_save_refuses_state_the_engine_does_not_declare_for_pickling(
    sample_features: sk.CustomerFeatures, tmp_path: Path
) -> None:
    class Opaque:
        pass

    model = sk.RFMSegmenter().fit(sample_features)
    model._extra = Opaque()
    with pytest.raises(PersistenceError, match=r"'_extra' is a .*Opaque object.*_pickled_state"):
        model.save(tmp_path / "model.json")
    assert not (tmp_path / "model.json").exists()


@pytest.mark.parametrize(
    ("field", "node", "words"),
    [
        (
            "cluster_centers_",
            {"__type__": "ndarray", "dtype": "float64", "shape": [1, 2], "data": [[0.0, 1.0]]},
            "columns for",
        ),
        (
            "cluster_centers_",
            {"__type__": "ndarray", "dtype": "float64", "shape": [1], "data": ["inf"]},
            "2-d array of finite numbers",
        ),
    ],
)
def test_kmeans_state_shapes_and_numbers_are_checked(
    sample_features: sk.CustomerFeatures, tmp_path: Path, field: str, node: dict, words: str
) -> None:
    model = sk.KMeansSegmenter(n_clusters=2, random_state=0).fit(sample_features)
    path = model.save(tmp_path / "kmeans.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    document["state"][field] = node
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(PersistenceError, match=words):
        sk.load(path)


def test_preprocessor_scale_must_be_positive_and_finite(
    sample_features: sk.CustomerFeatures, tmp_path: Path
) -> None:
    model = sk.KMeansSegmenter(n_clusters=2, random_state=0).fit(sample_features)
    path = model.save(tmp_path / "kmeans.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    document["state"]["_pre"]["fields"]["scale"][0] = 0.0
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(PersistenceError, match=r"state\['_pre'\]\.scale: scales must be positive"):
        sk.load(path)
