"""Predicted CLV, churn risk and next-best items as profile properties: Klaviyo, Braze,
HubSpot."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk
from segmentkit.exporters._braze import build_braze
from segmentkit.exporters._hubspot import build_hubspot
from segmentkit.exporters._klaviyo import build_klaviyo

SEGMENT = "High value · slipping away"


@pytest.fixture
def three() -> tuple[sk.Segmentation, sk.Customers, pd.DataFrame]:
    ids = ["cust-001", "cust-002", "cust-003"]
    table = pd.DataFrame(
        {
            "customer_id": [*ids, "cust-004"],
            "segment_id": [1, 1, 1, 0],
            "segment": [SEGMENT] * 3 + ["No prediction"],
        }
    )
    customers = sk.Customers.from_frame(
        pd.DataFrame(
            {
                "customer_id": ids,
                "email": ["jane.doe@gmail.com", "bob@example.co.uk", "ann@example.org"],
                "consent_email": [True, True, True],
            }
        ),
        customer_id="customer_id",
        email="email",
        consent_email="consent_email",
    )
    # As written by `segmentkit predict`: ids as a column, one customer not predicted.
    predictions = pd.DataFrame(
        {
            "customer_id": ["cust-002", "cust-001", "cust-003"],
            "p_alive": [0.25, 0.81234, np.nan],
            "churn_risk": [0.75, 0.18766, np.nan],
            "predicted_clv_12m": [88.0, 1234.5678, np.nan],
        }
    )
    return sk.Segmentation.from_assignments(table), customers, predictions


def _no_nan_text(body: object) -> None:
    text = json.dumps(body, allow_nan=False)  # a NaN would fail here
    assert "nan" not in text.lower()


def test_klaviyo_sends_predictions_as_numeric_properties(three) -> None:
    seg, customers, predictions = three
    export = build_klaviyo(seg, SEGMENT, customers, list_id="L1", predictions=predictions)
    body = export.requests[0].body
    _no_nan_text(body)
    props = [p["attributes"]["properties"] for p in body["data"]["attributes"]["profiles"]["data"]]
    assert props[0] == {
        "segmentkit_segment": SEGMENT,
        "segmentkit_predicted_clv": 1234.57,
        "segmentkit_churn_risk": 0.188,
    }
    assert props[1]["segmentkit_predicted_clv"] == 88.0
    assert props[1]["segmentkit_churn_risk"] == 0.75
    assert props[2] == {"segmentkit_segment": SEGMENT}  # no prediction: left out
    plain = build_klaviyo(seg, SEGMENT, customers, list_id="L1")
    assert "segmentkit_churn_risk" not in json.dumps(plain.requests[0].body)


def test_braze_sends_predictions_as_custom_attributes_on_add_only(three) -> None:
    seg, customers, predictions = three
    export = build_braze(seg, SEGMENT, customers, predictions=predictions)
    objects = export.requests[0].body["attributes"]
    _no_nan_text(objects)
    assert objects[0]["segmentkit_predicted_clv"] == 1234.57
    assert objects[0]["segmentkit_churn_risk"] == 0.188
    assert "segmentkit_predicted_clv" not in objects[2]
    removed = build_braze(seg, SEGMENT, customers, operation="remove", predictions=predictions)
    assert "segmentkit_churn_risk" not in json.dumps(removed.requests[0].body)


def test_hubspot_sends_predictions_as_text_properties(three) -> None:
    seg, customers, predictions = three
    export = build_hubspot(seg, SEGMENT, customers, predictions=predictions)
    inputs = export.requests[0].body["inputs"]
    _no_nan_text(inputs)
    assert inputs[0]["properties"]["segmentkit_predicted_clv"] == "1234.57"
    assert inputs[0]["properties"]["segmentkit_churn_risk"] == "0.188"
    assert inputs[1]["properties"]["segmentkit_predicted_clv"] == "88.00"
    assert set(inputs[2]["properties"]) == {"segmentkit_segment"}


def test_churn_risk_comes_from_p_alive_and_features_are_accepted(three) -> None:
    seg, customers, predictions = three
    only_alive = predictions.drop(columns=["churn_risk"]).set_index("customer_id")
    features = sk.CustomerFeatures.from_frame(only_alive, as_of="2024-01-01")
    export = build_braze(seg, SEGMENT, customers, predictions=features)
    first = export.requests[0].body["attributes"][0]
    assert first["segmentkit_churn_risk"] == 0.188


def test_bad_predictions_are_refused_with_what_to_do(three) -> None:
    seg, customers, predictions = three
    with pytest.raises(
        ValueError, match=r"no 'predicted_clv_<h>', 'churn_risk', 'p_alive' or 'next_best_<n>'"
    ):
        build_klaviyo(
            seg, SEGMENT, customers, list_id="L", predictions=predictions[["customer_id"]]
        )
    two = predictions.assign(predicted_clv_6m=1.0)
    with pytest.raises(ValueError, match="several predicted CLV columns"):
        build_braze(seg, SEGMENT, customers, predictions=two)
    text = predictions.assign(churn_risk=["high", "low", "mid"])
    with pytest.raises(ValueError, match="'churn_risk' must hold numbers"):
        build_hubspot(seg, SEGMENT, customers, predictions=text)
    with pytest.raises(TypeError, match="predictions must be CustomerFeatures"):
        build_braze(seg, SEGMENT, customers, predictions="predictions.csv")
    twice = pd.concat([predictions, predictions.iloc[[0]]])
    with pytest.raises(ValueError, match=r"1 repeated customer id\(s\), e.g. \['cust-002'\]"):
        build_klaviyo(seg, SEGMENT, customers, list_id="L", predictions=twice)


# --- next-best items ---------------------------------------------------------------------


@pytest.fixture
def items() -> pd.DataFrame:
    # As NextBestItems.transform writes them: one customer with one item left, one unknown.
    return pd.DataFrame(
        {
            "customer_id": ["cust-001", "cust-002", "cust-009"],
            "next_best_1": ["Running shoes", "Tents", "Socks"],
            "next_best_2": ["Socks", None, "Tents"],
        }
    ).astype({"next_best_1": "string", "next_best_2": "string"})


def test_next_best_items_go_to_klaviyo_as_text_properties(three, items) -> None:
    seg, customers, _ = three
    export = build_klaviyo(seg, SEGMENT, customers, list_id="L1", predictions=items)
    body = export.requests[0].body
    _no_nan_text(body)
    props = [p["attributes"]["properties"] for p in body["data"]["attributes"]["profiles"]["data"]]
    assert props[0] == {
        "segmentkit_segment": SEGMENT,
        "segmentkit_next_best_1": "Running shoes",
        "segmentkit_next_best_2": "Socks",
    }
    assert props[1] == {"segmentkit_segment": SEGMENT, "segmentkit_next_best_1": "Tents"}
    assert props[2] == {"segmentkit_segment": SEGMENT}  # not in the items: nothing sent


def test_next_best_items_go_to_braze_on_add_only(three, items) -> None:
    seg, customers, _ = three
    objects = build_braze(seg, SEGMENT, customers, predictions=items).requests[0].body
    first, second, third = objects["attributes"]
    assert first["segmentkit_next_best_1"] == "Running shoes"
    assert first["segmentkit_next_best_2"] == "Socks"
    assert "segmentkit_next_best_2" not in second
    assert "segmentkit_next_best_1" not in third
    removed = build_braze(seg, SEGMENT, customers, operation="remove", predictions=items)
    assert "segmentkit_next_best" not in json.dumps(removed.requests[0].body)


def test_next_best_items_and_predictions_together_go_to_hubspot(three, items) -> None:
    seg, customers, predictions = three
    both = predictions.merge(items, on="customer_id", how="outer")
    inputs = build_hubspot(seg, SEGMENT, customers, predictions=both).requests[0].body["inputs"]
    _no_nan_text(inputs)
    assert inputs[0]["properties"] == {
        "segmentkit_segment": SEGMENT,
        "segmentkit_predicted_clv": "1234.57",
        "segmentkit_churn_risk": "0.188",
        "segmentkit_next_best_1": "Running shoes",
        "segmentkit_next_best_2": "Socks",
    }
    assert inputs[1]["properties"]["segmentkit_next_best_1"] == "Tents"
    assert "segmentkit_next_best_2" not in inputs[1]["properties"]


def test_next_best_items_from_the_model_are_exported(three) -> None:
    seg, customers, _ = three
    raw = pd.DataFrame(
        {
            "customer": ["cust-001", "cust-001", "cust-002", "cust-003", "cust-003"],
            "time": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"],
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0],
            "category": ["Tents", "Socks", "Tents", "Socks", "Stoves"],
        }
    )
    tx = sk.Transactions.from_frame(
        raw, customer_id="customer", timestamp="time", amount="amount", category="category"
    )
    wide = sk.next_best_items(tx, "category", k=2, min_count=1)
    objects = build_braze(seg, SEGMENT, customers, predictions=wide).requests[0].body
    sent = {o["external_id"]: o.get("segmentkit_next_best_1") for o in objects["attributes"]}
    assert sent == {"cust-001": "Stoves", "cust-002": "Socks", "cust-003": "Tents"}
