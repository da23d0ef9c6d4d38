"""Bad inputs of the store policies: each refused with the column, value and option named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import segmentkit as sk
from _bad_inputs import BadInput, CliFailure, run_cli
from segmentkit.errors import ContractError, InvalidParameterError

_COLUMNS = {
    "customer_id": "customer",
    "timestamp": "when",
    "product_id": "sku",
    "quantity": "qty",
    "unit_price": "price",
}


def _lines(**changes: Any) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer": ["a", "a", "b"],
            "when": ["2024-03-01", "2024-03-02", "2024-03-03"],
            "sku": ["mug", "B", "tea"],
            "qty": [1.0, 1.0, 2.0],
            "price": [12.0, 3.0, 4.0],
            "disc": [0.0, 0.0, 0.0],
            "paid": [True, False, True],
            "cur": ["EUR", "EUR", "USD"],
        }
    )
    return frame.assign(**changes)


def _validate(frame: pd.DataFrame, **kwargs: Any) -> Any:
    return sk.Transactions.from_frame(frame, **{**_COLUMNS, **kwargs})


def _write(folder: Path, frame: pd.DataFrame) -> str:
    path = folder / "orders.csv"
    frame.to_csv(path, index=False)
    return str(path)


def _cli_negative_price(folder: Path) -> None:
    path = _write(folder, _lines(price=[12.0, -11062.06, 4.0]))
    maps = [f"{key}={value}" for key, value in _COLUMNS.items()]
    run_cli("validate", path, "--map", *maps, "--policy", "max_timestamp=2024-12-31")


def _cli_non_buyers_clustered(folder: Path) -> None:
    frame = pd.DataFrame(
        {
            "customer": ["a", "b", "c", "d", "e", "f"] * 2,
            "when": pd.date_range("2024-01-01", periods=12, freq="5D").astype(str),
            "total": [-5.0, 10, 20, 30, 40, 50, -6.0, 11, 21, 31, 41, 51],
        }
    )
    path = _write(folder, frame)
    run_cli(
        "segment",
        path,
        "--map",
        "customer_id=customer",
        "timestamp=when",
        "amount=total",
        "--engine",
        "kmeans",
        "--param",
        "n_clusters=2",
        "non_buyers=cluster",
    )


CASES = [
    BadInput(
        "policies-negative-unit-price",
        lambda _: _validate(_lines(price=[12.0, -11062.06, 4.0])),
        ContractError,
        ("unit_price", "row 1", "-11062.06", "invalid_values='exclude'", "exclude_products"),
    ),
    BadInput(
        "policies-overflowing-amount",
        lambda _: _validate(_lines(qty=[1e200, 1.0, 1.0], price=[1e200, 3.0, 4.0])),
        ContractError,
        ("amount", "infinite", "row 0", "invalid_values='exclude'"),
    ),
    BadInput(
        "policies-negative-discount",
        lambda _: _validate(_lines(disc=[0.0, -2.5, 0.0]), discount="disc"),
        ContractError,
        ("discount", "row 1", "-2.5", "negative_discount"),
    ),
    BadInput(
        "policies-boolean-amount",
        lambda _: sk.Transactions.from_frame(
            _lines(), customer_id="customer", timestamp="when", amount="paid"
        ),
        ContractError,
        ("'paid'", "amount", "true/false", "--map amount="),
    ),
    BadInput(
        "policies-zero-exchange-rate",
        lambda _: _validate(_lines(), currency="cur", rates={"EUR": 0.0}, base_currency="USD"),
        InvalidParameterError,
        ("'EUR'", "rates", "positive"),
    ),
    BadInput(
        "policies-negative-exchange-rate",
        lambda _: _validate(_lines(), currency="cur", rates={"EUR": -1.1}, base_currency="USD"),
        InvalidParameterError,
        ("-1.1", "rates"),
    ),
    BadInput(
        "policies-exclude-products-without-product-column",
        lambda _: sk.Transactions.from_frame(
            _lines(),
            customer_id="customer",
            timestamp="when",
            quantity="qty",
            unit_price="price",
            exclude_products="POST",
        ),
        InvalidParameterError,
        ("exclude_products", "product_id", "--map product_id="),
    ),
    BadInput(
        "policies-exclude-products-wrong-type",
        lambda _: _validate(_lines(), exclude_products=5),
        InvalidParameterError,
        ("exclude_products", "--policy exclude_products=POST,DOT"),
    ),
    BadInput(
        "policies-future-raise",
        lambda _: _validate(
            _lines(when=["2024-03-01", "2024-03-02", "2031-01-01"]),
            future="raise",
            max_timestamp="2024-12-31",
        ),
        ContractError,
        ("timestamp", "1 line is dated after max_timestamp=2024-12-31", "future='exclude'"),
    ),
    BadInput(
        "policies-unreadable-max-timestamp",
        lambda _: _validate(_lines(), max_timestamp="next tuesday"),
        InvalidParameterError,
        ("max_timestamp='next tuesday'", "ISO 8601", "--policy max_timestamp="),
    ),
    BadInput(
        "policies-unknown-future-option",
        lambda _: _validate(_lines(), future="drop"),
        InvalidParameterError,
        ("'future'", "'exclude', 'keep', 'raise'", "'drop'"),
    ),
    BadInput(
        "policies-unknown-invalid-values-option",
        lambda _: _validate(_lines(), invalid_values="fix"),
        InvalidParameterError,
        ("'invalid_values'", "'raise', 'exclude'", "'fix'"),
    ),
    BadInput(
        "policies-cli-negative-unit-price",
        _cli_negative_price,
        CliFailure,
        ("unit_price", "-11062.06", "--policy invalid_values=exclude"),
    ),
    BadInput(
        "policies-cli-clustering-missing-values",
        _cli_non_buyers_clustered,
        CliFailure,
        ("missing feature values", "recency_days", "--param missing=median"),
    ),
    BadInput(
        "policies-only-non-buyers-to-cluster",
        lambda _: sk.KMeansSegmenter(n_clusters=2).fit(
            pd.DataFrame(
                {
                    "customer_id": ["a", "b", "c"],
                    "recency_days": [np.nan] * 3,
                    "frequency": [0, 0, 0],
                    "monetary": [-1.0, 0.0, -2.0],
                }
            )
        ),
        ValueError,
        ("no customer with a purchase", "non_buyers=cluster", "missing='median'"),
    ),
]
