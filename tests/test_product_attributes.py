"""User-mapped product attributes and blank promo codes, on every backend."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import segmentkit as sk
from segmentkit.errors import ContractError, InvalidParameterError

_RAW = pd.DataFrame(
    {
        "who": ["a", "a", "b", "b"],
        "when": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
        "paid": [1.0, 2.0, 3.0, 4.0],
        "DEPT": ["007", " Produce ", None, "   "],
        "TYPE": ["x", "y", "x", "y"],
        "brand": ["A", "B", "A", "B"],
        "promo": ["  ", "SPRING", "", None],
    }
)
_MAP = {"customer_id": "who", "timestamp": "when", "amount": "paid"}


def _pandas_data(backend, table):
    return table.data if backend.is_pandas else table.to_pandas().data


def test_attributes_are_kept_coded_and_listed(backend):
    tx = sk.Transactions.from_frame(
        backend.frame(_RAW),
        **_MAP,
        attributes={"department": "DEPT", "product_type": "TYPE"},
        promo_code="promo",
    )
    assert tx.product_attributes == ("brand", "department", "product_type")
    data = _pandas_data(backend, tx)
    # Text, trimmed, zeros kept; blank or whitespace-only is missing.
    assert [None if pd.isna(v) else v for v in data["department"]] == [
        "007",
        "Produce",
        None,
        None,
    ]
    assert list(data["product_type"]) == ["x", "y", "x", "y"]
    assert [None if pd.isna(v) else v for v in data["promo_code"]] == [None, "SPRING", None, None]
    assert tx.report.rows_kept == 4  # blank codes are no code: the lines are kept


def test_a_list_keeps_the_column_names(backend):
    tx = sk.Transactions.from_frame(backend.frame(_RAW), **_MAP, attributes=["TYPE"])
    assert tx.product_attributes == ("brand", "TYPE")


def test_events_take_attributes_too(backend):
    raw = pd.DataFrame({"who": ["a"], "when": ["2024-01-01"], "kind": ["view"], "DEPT": ["toys"]})
    ev = sk.Events.from_frame(
        backend.frame(raw),
        customer_id="who",
        timestamp="when",
        event_type="kind",
        attributes={"department": "DEPT"},
    )
    assert ev.product_attributes == ("department",)
    data = ev.data if backend.is_pandas else ev.to_pandas().data
    assert list(data["department"]) == ["toys"]


@pytest.mark.parametrize(
    ("attributes", "error", "words"),
    [
        ({"brand": "DEPT"}, InvalidParameterError, "canonical column.*brand='DEPT'"),
        ({"is_return": "DEPT"}, InvalidParameterError, "segmentkit derives"),
        ({"department": "NOPE"}, ContractError, "'NOPE' \\(mapped to 'department'\\)"),
        ({"2nd": "DEPT"}, InvalidParameterError, "must start with a letter"),
        (["TYPE", "TYPE"], InvalidParameterError, "given twice"),
        (5, InvalidParameterError, "takes a dict"),
    ],
)
def test_bad_attributes_are_refused_clearly(backend, attributes, error, words):
    with pytest.raises(error, match=words):
        sk.Transactions.from_frame(backend.frame(_RAW), **_MAP, attributes=attributes)


def test_no_attributes_means_category_and_brand_only():
    tx = sk.Transactions.from_frame(_RAW.drop(columns="brand"), **_MAP, category="TYPE")
    assert tx.product_attributes == ("category",)


def test_attributes_pass_through_csv_and_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    _RAW.to_csv(tmp_path / "lines.csv", index=False)
    _RAW.to_parquet(tmp_path / "lines.parquet")
    from_csv = sk.Transactions.from_csv(tmp_path / "lines.csv", **_MAP, attributes={"d": "DEPT"})
    # Read as text: the department code keeps its leading zeros.
    assert from_csv.data["d"].iloc[0] == "007"
    from_parquet = sk.Transactions.from_parquet(
        tmp_path / "lines.parquet", **_MAP, attributes=["TYPE"]
    )
    assert from_parquet.product_attributes == ("brand", "TYPE")


def test_cli_maps_attributes(tmp_path):
    _RAW.to_csv(tmp_path / "lines.csv", index=False)
    command = [sys.executable, "-m", "segmentkit", "validate", str(tmp_path / "lines.csv")]
    command += ["--map", "customer_id=who", "timestamp=when", "amount=paid"]
    ok = subprocess.run(
        [*command, "--attributes", "department=DEPT", "TYPE"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*command, "--attributes", "brand=DEPT"], capture_output=True, text=True)
    assert bad.returncode != 0
    assert "canonical column" in bad.stderr
