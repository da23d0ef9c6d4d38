"""RuleSegmenter: first match wins, text and callable rules, rule files, presets."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import segmentkit as sk
from segmentkit.errors import RuleSyntaxError


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "frequency": [1, 6, 2, 0],
            "monetary": [20.0, 900.0, 80.0, 0.0],
            "top_category": ["music", "books", "books", None],
        }
    )


def test_first_matching_rule_wins_and_the_rest_get_the_default(frame):
    seg = sk.RuleSegmenter(
        rules=[
            ("Big", "monetary >= 80"),
            ("Books", "top_category == 'books'"),
            ("One-off", "frequency == 1"),
        ],
        default="Rest",
    ).fit_predict(frame)
    assert seg.assignments["segment"].tolist() == ["One-off", "Big", "Big", "Rest"]
    # Most valuable first, the empty segment last.
    assert list(seg.catalog["segment"]) == ["Big", "One-off", "Rest", "Books"]
    assert seg.catalog.set_index("segment").loc["Books", "customers"] == 0


def test_callable_rules_and_dict_rules(frame):
    seg = sk.RuleSegmenter(
        rules={"Frequent": lambda f: f["frequency"] >= 2, "Music": "top_category in ('music',)"}
    ).fit_predict(frame)
    assert seg.assignments["segment"].tolist() == ["Music", "Frequent", "Frequent", "Other"]


def test_callable_returning_the_wrong_shape_is_named(frame):
    model = sk.RuleSegmenter(rules=[("Bad", lambda f: [True])])
    with pytest.raises(ValueError, match=r"Rule 'Bad' returned shape \(1,\)"):
        model.fit_predict(frame)


def test_unknown_feature_is_reported_with_position_and_suggestion(frame):
    model = sk.RuleSegmenter(rules=[("Big", "frequency >= 2 and monetry > 10")])
    with pytest.raises(
        RuleSyntaxError, match=r"(?s)'monetry' at position 19.*'monetary'"
    ) as caught:
        model.fit(frame)
    assert caught.value.position == 19


@pytest.mark.parametrize("name", ["views_30d", "abandoned_carts_14d", "days_since_last_visit"])
def test_a_browsing_feature_without_events_says_events_are_needed(frame, name):
    # Any window counts: the hint comes from the feature definitions, not a name list.
    with pytest.raises(RuleSyntaxError, match="Browsing features need events"):
        sk.RuleSegmenter(rules=[("Browsers", f"{name} > 0")]).fit(frame)


def test_an_unknown_purchase_feature_gets_no_browsing_hint(frame):
    with pytest.raises(RuleSyntaxError) as caught:
        sk.RuleSegmenter(rules=[("Big", "monetry > 10")]).fit(frame)
    assert "events" not in str(caught.value)


def test_syntax_errors_are_reported_with_position(frame):
    with pytest.raises(RuleSyntaxError, match="position"):
        sk.RuleSegmenter(rules=[("Broken", "frequency >= and")]).fit(frame)


def test_rules_are_never_evaluated_as_python(frame):
    with pytest.raises(RuleSyntaxError):
        sk.RuleSegmenter(rules=[("Evil", "__import__('os').system('echo hi')")]).fit(frame)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"rules": []}, TypeError, r"'rules' parameter of RuleSegmenter must be a non-empty"),
        ({"rules": "frequency > 1"}, TypeError, r"'rules' parameter"),
        ({"rules": [("A", "frequency > 1")], "default": 3}, TypeError, r"'default' parameter"),
        (
            {"rules": [("A", "frequency > 1"), ("A", "monetary > 1")]},
            ValueError,
            r"Segment names must be unique; repeated: \['A'\]",
        ),
    ],
)
def test_bad_parameters(frame, params, error, match):
    with pytest.raises(error, match=match):
        sk.RuleSegmenter(**params).fit(frame)


RULES_TOML = """
default = "Occasional"

[[rules]]
name = "Big spenders"
when = "monetary >= 500"
description = "Spent 500 or more."

[[rules]]
name = "Repeat"
when = "frequency between 2 and 5"
"""


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml"])
def test_rules_load_from_files(tmp_path, frame, suffix):
    rules = [
        {"name": "Big spenders", "when": "monetary >= 500", "description": "Spent 500 or more."},
        {"name": "Repeat", "when": "frequency between 2 and 5"},
    ]
    path = tmp_path / f"rules{suffix}"
    if suffix == ".toml":
        path.write_text(RULES_TOML)
    elif suffix == ".json":
        path.write_text(json.dumps({"default": "Occasional", "rules": rules}))
    else:
        import yaml

        path.write_text(yaml.safe_dump({"default": "Occasional", "rules": rules}))
    model = sk.RuleSegmenter.from_file(path)
    seg = model.fit_predict(frame)
    assert seg.assignments["segment"].tolist() == [
        "Occasional",
        "Big spenders",
        "Repeat",
        "Occasional",
    ]
    assert seg.segments[0].description == "Spent 500 or more."


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"rule": []}', "expected a top-level 'rules' list"),
        ('{"rules": [{"name": "x"}]}', r"rule 1 \('x'\) needs 'name' and 'when'"),
        (
            '{"rules": [{"name": "x", "when": "a > 1", "colour": "red"}]}',
            r"unknown keys \['colour'\]",
        ),
    ],
)
def test_malformed_rule_files(tmp_path, content, match):
    path = tmp_path / "rules.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        sk.load_rules(path)


def test_unsupported_rule_file_type(tmp_path):
    path = tmp_path / "rules.ini"
    path.write_text("")
    with pytest.raises(ValueError, match=r"unsupported rules file type '\.ini'"):
        sk.load_rules(path)


def test_lifecycle_rules_on_sample_with_browsing(sample_tx):
    raw_events = sk.datasets.generate_events(
        sample_tx.data.astype({"customer_id": str}), random_state=1
    )
    events = sk.Events.from_frame(
        raw_events, customer_id="customer_id", timestamp="timestamp", event_type="event_type"
    )
    features = sk.extract_features(sample_tx, events)
    seg = sk.RuleSegmenter(rules=sk.lifecycle_rules(), default="Occasional").fit_predict(features)
    sizes = seg.catalog.set_index("segment")["customers"]
    assert sizes.sum() == len(features)
    assert sizes["Cart abandoners"] > 0
    assert sizes["Inactive"] > 0
    frame = features.frame.reindex(seg.assignments["customer_id"])
    inactive = seg.assignments["segment"].to_numpy() == "Inactive"
    assert (frame["recency_days"].to_numpy()[inactive] > 180).all()
    abandoners = seg.assignments["segment"].to_numpy() == "Cart abandoners"
    assert (frame["abandoned_carts_30d"].to_numpy()[abandoners] >= 1).all()


def test_lifecycle_rules_without_browsing_features_explain_the_fix(sample_features):
    model = sk.RuleSegmenter(rules=sk.lifecycle_rules())
    with pytest.raises(RuleSyntaxError, match="Unknown feature 'abandoned_carts_30d'"):
        model.fit(sample_features)


def test_lifecycle_rules_without_categories(sample_features):
    names = [r.name for r in sk.lifecycle_rules(browsing=False, categories=False)]
    assert names == ["Returns only", "Inactive", "New customers", "Loyal regulars"]


def test_rule_errors_name_the_rule_and_hint_at_events(sample_features):
    model = sk.RuleSegmenter(rules=sk.lifecycle_rules())
    with pytest.raises(
        RuleSyntaxError, match=r"Rule 'Cart abandoners'.*extract_features\(transactions, events"
    ):
        model.fit(sample_features)


def test_unreadable_rule_files_name_the_file(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("[[rules]\nname = ")
    with pytest.raises(ValueError, match=r"rules\.toml: cannot read the rules file"):
        sk.load_rules(path)
