"""Predictions as features: add_predictions, rules over them, the value × risk preset."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit.engines._expr import parse
from segmentkit.errors import InvalidParameterError, SegmentkitWarning
from segmentkit.testing import check_segmenter

PREDICTED = ["p_alive", "churn_risk", "expected_purchases_52w", "expected_spend"]


def _quietly(action):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmentkitWarning)
        return action()


@pytest.fixture(scope="module")
def sample() -> sk.CustomerFeatures:
    raw, mapping = sk.datasets.load_sample()
    tx = sk.Transactions.from_frame(raw, **mapping)
    features = sk.extract_features(tx, as_of="2017-10-01")
    return features


@pytest.fixture(scope="module")
def predicted(sample: sk.CustomerFeatures) -> sk.CustomerFeatures:
    return _quietly(lambda: sk.add_predictions(sample))


@pytest.fixture(scope="module")
def cdnow_predicted(cdnow_tx: sk.Transactions) -> sk.CustomerFeatures:
    features = sk.extract_features(cdnow_tx, as_of="1997-09-30")
    return _quietly(lambda: sk.add_predictions(features))


# --- add_predictions ----------------------------------------------------------------


def test_add_predictions_adds_the_columns_and_keeps_the_features(sample, predicted) -> None:
    assert isinstance(predicted, sk.CustomerFeatures)
    assert predicted.as_of == sample.as_of
    assert predicted.excluded == sample.excluded
    assert predicted.columns == [*sample.columns, *PREDICTED, "predicted_clv_12m"]
    assert "p_alive" not in sample.columns  # the input is not changed
    frame = predicted.frame
    alive = frame["p_alive"].to_numpy()
    assert np.allclose(frame["churn_risk"].to_numpy(), 1 - alive, equal_nan=True)
    assert ((alive >= 0) & (alive <= 1)).all()
    assert (frame["predicted_clv_12m"] >= 0).all()
    catalog = predicted.catalog.set_index("name")
    assert list(predicted.catalog["name"]) == predicted.columns
    assert catalog.loc["churn_risk", "unit"] == "probability"
    assert catalog.loc["predicted_clv_12m", "unit"] == "currency"
    assert "12 months" in catalog.loc["predicted_clv_12m", "description"]
    # The sample's own columns keep their definitions.
    rows = len(sample.catalog)
    pd.testing.assert_frame_equal(predicted.catalog.iloc[:rows], sample.catalog, check_dtype=False)


def test_customers_without_a_purchase_get_missing_predictions() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "first_purchase": pd.to_datetime(["2024-01-05", "2024-02-01", None], utc=True),
            "last_purchase": pd.to_datetime(["2024-06-01", "2024-02-01", None], utc=True),
            "purchase_days": [6, 1, 0],
            "monetary": [300.0, 40.0, 0.0],
        }
    )
    features = sk.CustomerFeatures.from_frame(frame, as_of="2024-07-01")
    bg = sk.BetaGeoModel.from_params({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    out = sk.add_predictions(features, bg, None, horizon=13)
    assert out.columns[-3:] == ["p_alive", "churn_risk", "expected_purchases_13w"]
    assert out.frame.loc["c"].iloc[-3:].isna().all()
    assert out.frame.loc[["a", "b"]].iloc[:, -3:].notna().all().all()
    # Running it again replaces the columns instead of repeating them.
    again = sk.add_predictions(out, bg, None, horizon=13)
    assert again.columns == out.columns


def test_unfitted_models_are_fitted_in_place_and_fitted_ones_only_predict(sample) -> None:
    pareto = sk.ParetoNBDModel()
    out = _quietly(lambda: sk.add_predictions(sample, pareto, None))
    assert hasattr(pareto, "params_")
    params = dict(pareto.params_)
    again = sk.add_predictions(sample, pareto, None)
    assert pareto.params_ == params
    pd.testing.assert_frame_equal(out.frame, again.frame)


def test_add_predictions_refuses_bad_input(sample) -> None:
    with pytest.raises(InvalidParameterError, match=r"purchases must be .*\['bgnbd', 'pareto'\]"):
        sk.add_predictions(sample, "lifetimes")
    with pytest.raises(InvalidParameterError, match="spend must be"):
        sk.add_predictions(sample, spend="average")
    with pytest.raises(TypeError, match="takes CustomerFeatures"):
        sk.add_predictions(sample.frame)


# --- rules over predicted columns ---------------------------------------------------


def test_rules_read_predicted_columns(predicted) -> None:
    rules = sk.RuleSegmenter(
        rules=[
            ("Slipping big spenders", "p_alive < 0.999 and monetary > 50"),
            ("Coming back", "expected_purchases_52w >= 20"),
        ]
    )
    seg = rules.fit_predict(predicted)
    frame = predicted.frame
    slipping = (frame["p_alive"] < 0.999) & (frame["monetary"] > 50)
    coming = ~slipping & (frame["expected_purchases_52w"] >= 20)
    got = seg.assignments.set_index("customer_id")["segment"]
    assert (got[slipping.to_numpy()] == "Slipping big spenders").all()
    assert (got[coming.to_numpy()] == "Coming back").all()
    assert slipping.any()
    assert coming.any()


def test_rules_read_predicted_columns_on_cdnow(cdnow_predicted) -> None:
    seg = sk.RuleSegmenter(
        rules=[("Slipping big spenders", "p_alive < 0.3 and monetary > 200")]
    ).fit_predict(cdnow_predicted)
    frame = cdnow_predicted.frame
    expected = int(((frame["p_alive"] < 0.3) & (frame["monetary"] > 200)).sum())
    assert expected > 0
    assert int(seg.catalog.set_index("segment").loc["Slipping big spenders", "customers"]) == (
        expected
    )


def test_engines_read_direction_skew_and_words_of_predicted_columns() -> None:
    from segmentkit.engines._naming import describe_clusters
    from segmentkit.engines._preprocess import is_skewed

    assert is_skewed("predicted_clv_12m")
    assert not is_skewed("p_alive")
    frame = pd.DataFrame({"churn_risk": [0.1, 0.1, 0.2, 0.8, 0.9, 0.9]})
    names = [n for n, _ in describe_clusters(frame, np.array([0, 0, 0, 1, 1, 1]), [0, 1])]
    assert names == ["Safe", "At risk"]
    catalog = sk.feature_catalog(predicted=True).set_index("name")
    assert catalog.loc["churn_risk", "direction"] == "lower_is_better"
    for name in ("p_alive", "predicted_clv_<h><unit>", "purchase_probability_<h>d"):
        assert catalog.loc[name, "direction"] == "higher_is_better"
    assert "purchase_probability_<h>d" not in set(sk.feature_catalog()["name"])


# --- value × risk -------------------------------------------------------------------


def _check_partition(seg: sk.Segmentation, features: sk.CustomerFeatures) -> None:
    """Each segment's rule text, read alone, holds for exactly its own customers."""
    got = seg.assignments["segment"].to_numpy()
    for segment in seg.segments:
        hit = parse(segment.rule).evaluate(features.frame).to_numpy()
        assert (hit == (got == segment.name)).all(), segment.name


def test_value_risk_on_the_sample(predicted) -> None:
    engine = sk.ValueRiskSegmenter()
    seg = engine.fit_predict(predicted)
    names = [s.name for s in seg.segments]
    assert names == [
        "No prediction",
        "High value · slipping away",
        "High value · loyal core",
        "Unlikely to return",
        "Rising",
        "Mid value · cooling",
        "Low value · active",
        "Low value · fading",
    ]
    cuts = engine.cuts_
    values = predicted.frame["predicted_clv_12m"]
    assert cuts["value"] == "predicted_clv_12m"
    assert cuts["n_predicted"] == int(values.notna().sum())
    assert (values >= cuts["high"]).mean() == pytest.approx(0.2, abs=0.01)
    assert (values >= cuts["mid"]).mean() == pytest.approx(0.5, abs=0.01)
    described = {s.name: s.description for s in seg.segments}
    assert f"{cuts['high']:,.2f}" in described["High value · loyal core"]
    assert "80% and 50% quantiles" in described["High value · loyal core"]
    assert f">= {cuts['high']!r}" in seg.segments[2].rule
    _check_partition(seg, predicted)
    # Deterministic: a second fit gives the same cuts and the same segments.
    again = sk.ValueRiskSegmenter().fit(predicted)
    assert again.cuts_ == cuts
    assert again.predict(predicted).assignments.equals(seg.assignments)


def test_value_risk_on_cdnow(cdnow_predicted) -> None:
    seg = sk.ValueRiskSegmenter().fit_predict(cdnow_predicted)
    sizes = seg.catalog.set_index("segment")["customers"]
    assert sizes.sum() == len(cdnow_predicted)
    # CDNOW's customers do leave: every segment of the grid but "No prediction" is used.
    assert (sizes.drop("No prediction") > 0).all()
    assert sizes["No prediction"] == int(cdnow_predicted.frame["p_alive"].isna().sum())
    _check_partition(seg, cdnow_predicted)


def test_value_risk_rules_with_a_rule_segmenter_and_an_expression(predicted) -> None:
    value = "expected_purchases_52w * expected_spend"
    rules = sk.value_risk_rules(predicted, value=value, value_quantiles=(0.4, 0.9))
    seg = sk.RuleSegmenter(rules=rules, default=sk.engines.VALUE_RISK_DEFAULT).fit_predict(
        predicted
    )
    product = predicted.frame["expected_purchases_52w"] * predicted.frame["expected_spend"]
    high = seg.catalog.set_index("segment").loc["High value · loyal core", "customers"]
    assert high == pytest.approx(0.1 * product.notna().sum(), abs=3)
    assert rules[1].when.startswith(f"({value}) >= ")


def test_value_risk_counts_customers_without_a_purchase() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": list("abcdefgh"),
            "p_alive": [0.9, 0.5, 0.1, 0.95, 0.5, 0.8, 0.6, None],
            "predicted_clv_12m": [500.0, 400.0, 600.0, 150.0, 120.0, 10.0, 5.0, None],
        }
    )
    seg = sk.ValueRiskSegmenter(value_thresholds=(100, 300)).fit_predict(frame)
    assert seg.assignments["segment"].tolist() == [
        "High value · loyal core",
        "High value · slipping away",
        "High value · slipping away",
        "Rising",
        "Mid value · cooling",
        "Low value · active",
        "Low value · fading",
        "No prediction",
    ]


def test_value_risk_parameters_are_validated(predicted) -> None:
    bad = [
        ({"value_quantiles": (0.8, 0.5)}, "0 < mid < high < 1"),
        ({"value_quantiles": (0.5, 1.0)}, "0 < mid < high < 1"),
        ({"value_quantiles": "0.5"}, "two quantiles"),
        ({"value_thresholds": (300, 100)}, "mid < high"),
        ({"value_thresholds": (float("nan"), 100)}, "mid < high"),
        ({"p_alive_thresholds": (0.7, 0.3)}, "lost <= active"),
        ({"p_alive_thresholds": (0.3, 1.5)}, "lost <= active <= 1"),
        ({"value": 3}, "column name or an expression"),
    ]
    for params, message in bad:
        with pytest.raises(InvalidParameterError, match=message):
            sk.ValueRiskSegmenter(**params).fit(predicted)
        with pytest.raises(InvalidParameterError, match=message):
            sk.value_risk_rules(predicted, **params)
    with pytest.raises(InvalidParameterError, match="Unknown feature 'clv'"):
        sk.ValueRiskSegmenter(value="clv").fit(predicted)


def test_value_risk_says_how_to_get_predictions(sample, predicted) -> None:
    with pytest.raises(InvalidParameterError, match=r"p_alive.*sk.add_predictions"):
        sk.ValueRiskSegmenter().fit(sample)
    no_value = predicted.frame.drop(columns=["predicted_clv_12m", "expected_spend"])
    with pytest.raises(InvalidParameterError, match=r"needs a predicted value.*add_predictions"):
        sk.ValueRiskSegmenter().fit(no_value)
    with pytest.raises(InvalidParameterError, match="pass the features"):
        sk.value_risk_rules()
    two = predicted.frame.assign(predicted_clv_6m=predicted.frame["predicted_clv_12m"] / 2)
    with pytest.raises(InvalidParameterError, match="several predicted CLV columns"):
        sk.ValueRiskSegmenter().fit(two)
    empty = predicted.frame.assign(p_alive=np.nan)
    with pytest.raises(InvalidParameterError, match="No customer has both"):
        sk.ValueRiskSegmenter().fit(empty)


def test_value_risk_engine_is_registered_saved_and_conformant(predicted, tmp_path) -> None:
    engine = sk.get_engine("value-risk", value_quantiles=[0.6, 0.9])
    assert "value-risk" in sk.available_engines()
    seg = engine.fit_predict(predicted)
    path = engine.save(tmp_path / "value-risk.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert "ValueRiskSegmenter" in json.dumps(document)
    assert '"cuts_"' in json.dumps(document)  # the cuts are readable in the file
    again = sk.load(path)
    assert again.cuts_ == engine.cuts_
    assert again.predict(predicted).assignments.equals(seg.assignments)
    check_segmenter(sk.ValueRiskSegmenter(), predicted)


@settings(max_examples=60, deadline=None)
@given(
    alive=st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=1, max_size=30),
    seed=st.integers(0, 2**16),
    quantiles=st.tuples(st.floats(0.05, 0.45), st.floats(0.55, 0.95)),
    cuts=st.tuples(st.floats(0, 0.5), st.floats(0.5, 1)),
)
def test_value_risk_puts_every_customer_in_the_segment_its_rule_names(
    alive, seed, quantiles, cuts
) -> None:
    rng = np.random.default_rng(seed)
    values = rng.gamma(0.8, 100.0, len(alive)).round(2)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(len(alive))],
            "p_alive": [np.nan if a is None else a for a in alive],
            "predicted_clv_12m": np.where([a is None for a in alive], np.nan, values),
        }
    )
    features = sk.CustomerFeatures.from_frame(frame, as_of="2024-01-01")
    if frame["p_alive"].isna().all():
        with pytest.raises(InvalidParameterError, match="No customer has both"):
            sk.ValueRiskSegmenter().fit(features)
        return
    seg = sk.ValueRiskSegmenter(value_quantiles=quantiles, p_alive_thresholds=cuts).fit_predict(
        features
    )
    assert len(seg.assignments) == len(frame)
    _check_partition(seg, features)


# --- the report ---------------------------------------------------------------------


def test_report_profiles_predicted_columns_with_their_labels(predicted, tmp_path) -> None:
    seg = sk.ValueRiskSegmenter().fit_predict(predicted)
    text = seg.report(tmp_path / "value-risk.html").read_text(encoding="utf-8")
    profiles = text.split('id="profiles-table"')[1].split("</table>")[0]
    # Each predicted column is a row headed by its label and unit, its code name and
    # definition on hover.
    for name, label, unit in [
        ("p_alive", "Probability still active", "probability"),
        ("predicted_clv_12m", "Predicted CLV, next 12 months", "money"),
        ("expected_purchases_52w", "Expected purchases, next 52 weeks", "purchase days"),
        ("churn_risk", "Churn risk", "probability"),
    ]:
        head = re.search(
            rf'<tr data-feature="{name}"><th class="feature" title="([^"]+)">'
            rf'{label}<small class="label">{unit}</small></th>',
            profiles,
        )
        assert head is not None, name
        assert head.group(1).startswith(f"{name}: ")
    assert "Discounted expected spend in the 12 months after as_of" in profiles
    assert 'title="churn_risk: 1 - p_alive: probability that the customer has stopped' in profiles
    assert "High value · loyal core" in text
