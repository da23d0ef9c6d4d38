"""The command line's predictions: ``segmentkit predict`` and ``segment --engine value-risk``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk
from segmentkit.cli import main

MAP = ["customer_id=CustomerID", "timestamp=InvoiceDate", "amount=Total", "order_id=InvoiceNo"]
AS_OF = ["--as-of", "2017-10-01"]


@pytest.fixture(scope="module")
def orders_csv(tmp_path_factory) -> str:
    raw, _ = sk.datasets.load_sample()
    orders = raw.rename(
        columns={
            "household_id": "CustomerID",
            "transaction_timestamp": "InvoiceDate",
            "sales_value": "Total",
            "basket_id": "InvoiceNo",
        }
    )[["CustomerID", "InvoiceDate", "Total", "InvoiceNo"]]
    orders["CustomerID"] = orders["CustomerID"].astype(str)
    # An id a spreadsheet would run as a formula, and a customer who only returned.
    orders.loc[orders["CustomerID"] == "1001", "CustomerID"] = "=1+2"
    returned = pd.DataFrame(
        {"CustomerID": ["r1"], "InvoiceDate": ["2017-03-01"], "Total": [-5.0], "InvoiceNo": ["x"]}
    )
    path = tmp_path_factory.mktemp("orders") / "orders.csv"
    pd.concat([orders, returned]).to_csv(path, index=False)
    return str(path)


def test_predict_writes_rounded_spreadsheet_safe_predictions(orders_csv, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    assert main(["-q", "predict", orders_csv, "--map", *MAP, *AS_OF, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "790 customers predicted, 1 without a purchase" in printed.out
    assert "predictions written to" in printed.out
    assert "segmentkit: warning: BetaGeoModel" in printed.err  # the sample suits it badly
    table = pd.read_csv(out, dtype={"customer_id": str}, keep_default_na=True)
    assert list(table.columns) == [
        "customer_id",
        "p_alive",
        "churn_risk",
        "expected_purchases_52w",
        "expected_spend",
        "predicted_clv_12m",
    ]
    assert len(table) == 791
    assert "'=1+2" in set(table["customer_id"])
    text = out.read_text(encoding="utf-8")
    assert "nan" not in text.lower()
    returned = table.set_index("customer_id").loc["r1"]
    assert returned.isna().all()  # empty cells, not "nan"
    for column in ("expected_spend", "predicted_clv_12m"):
        cents = table[column].dropna() * 100
        assert np.allclose(cents, cents.round(), atol=1e-6), column
    probability = table["p_alive"].dropna()
    assert ((probability >= 0) & (probability <= 1)).all()
    assert np.allclose(table["churn_risk"].dropna(), 1 - probability, atol=2e-4)


def test_predict_with_pareto_and_a_horizon(orders_csv, tmp_path, capsys):
    out = tmp_path / "pareto.csv"
    args = ["-q", "predict", orders_csv, "--map", *MAP, *AS_OF, "--model", "pareto"]
    args += ["--horizon", "13", "--clv-horizon", "6", "--out", str(out)]
    assert main(args) == 0
    assert "(pareto)" in capsys.readouterr().out
    table = pd.read_csv(out, dtype={"customer_id": str})
    assert {"expected_purchases_13w", "predicted_clv_6m"} <= set(table.columns)


def test_predict_refuses_bad_options(orders_csv, tmp_path, capsys):
    base = ["predict", orders_csv, "--map", *MAP, *AS_OF]
    assert main([*base, "--out", str(tmp_path / "p.json")]) == 1
    assert "--out must be a .csv file" in capsys.readouterr().err
    assert main([*base, "--horizon", "-3", "--out", str(tmp_path / "p.csv")]) == 1
    assert "horizon must be a number of time units >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main([*base, "--model", "lifetimes", "--out", str(tmp_path / "p.csv")])
    assert stopped.value.code == 2
    assert "invalid choice: 'lifetimes'" in capsys.readouterr().err


def test_predict_help_says_what_it_writes(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["predict", "--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    for words in ("churn_risk", "predicted_clv_<h>", "--model {bgnbd,pareto}", "cent"):
        assert words in text


def test_segment_with_the_value_risk_engine(orders_csv, tmp_path, capsys):
    out = tmp_path / "segments.csv"
    args = ["-q", "segment", orders_csv, "--map", *MAP, *AS_OF, "--engine", "value-risk"]
    args += ["--param", "value_quantiles=[0.5,0.9]", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "segments (value-risk)" in printed
    assert "High value · loyal core" in printed
    # Descriptions follow the table, wrapped to 100 columns.
    assert "the 90% and 50% quantiles of the 790 customers with a prediction" in " ".join(
        printed.split()
    )
    table = printed.split("segments (value-risk)")[1].split("assignments written")[0]
    assert max(len(line) for line in table.splitlines()) <= 100
    written = pd.read_csv(out, dtype={"customer_id": str})
    assert len(written) == 791
    assert written.set_index("customer_id").loc["r1", "segment"] == "No prediction"


def test_segment_with_rules_over_predictions(orders_csv, tmp_path, capsys):
    rules = tmp_path / "rules.toml"
    rules.write_text(
        'default = "Others"\n[[rules]]\nname = "Slipping"\nwhen = "p_alive < 0.9"\n'
        '[[rules]]\nname = "Valuable"\nwhen = "predicted_clv_12m >= 150"\n',
        encoding="utf-8",
    )
    args = ["-q", "segment", orders_csv, "--map", *MAP, *AS_OF, "--engine", "rules"]
    assert main([*args, "--rules", str(rules)]) == 1
    assert "Unknown feature 'p_alive'" in capsys.readouterr().err
    assert main([*args, "--rules", str(rules), "--predict"]) == 0
    printed = capsys.readouterr().out
    assert "Slipping" in printed
    assert "Valuable" in printed


def test_export_sends_the_predictions_file(orders_csv, tmp_path, capsys):
    predictions = tmp_path / "predictions.csv"
    segments = tmp_path / "segments.csv"
    assert (
        main(["-q", "predict", orders_csv, "--map", *MAP, *AS_OF, "--out", str(predictions)]) == 0
    )
    args = ["-q", "segment", orders_csv, "--map", *MAP, *AS_OF, "--engine", "value-risk"]
    assert main([*args, "--out", str(segments)]) == 0
    customers = tmp_path / "customers.csv"
    pd.DataFrame(
        {"id": ["=1+2", "1008", "r1"], "email": ["a@example.com", "b@example.com", "c@x.org"]}
    ).to_csv(customers, index=False)
    capsys.readouterr()
    export = [
        "-q", "export", str(segments), "--customers", str(customers), "--map-customers",
        "customer_id=id", "email=email", "--param", "consent=null", "--to", "braze",
        "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    segment = pd.read_csv(segments, dtype={"customer_id": str}).set_index("customer_id")
    chosen = segment.loc["1008", "segment"]
    assert main([*export, "--segment", chosen, "--predictions", str(predictions)]) == 0
    written = next((tmp_path / "out").glob("braze-*.json")).read_text(encoding="utf-8")
    table = pd.read_csv(predictions, dtype={"customer_id": str}).set_index("customer_id")
    assert f'"segmentkit_predicted_clv": {table.loc["1008", "predicted_clv_12m"]}' in written
    assert '"segmentkit_churn_risk": ' in written
    assert main([*export, "--segment", chosen, "--predictions", str(tmp_path / "none.csv")]) == 1
    assert "The --predictions file" in capsys.readouterr().err
    mailchimp = [*export[:-4], "--to", "mailchimp", "--param", "list_id=L", "consent=null"]
    mailchimp += ["--out", str(tmp_path / "out"), "--segment", chosen]
    assert main([*mailchimp, "--predictions", str(predictions)]) == 1
    assert "takes no profile properties" in capsys.readouterr().err
