"""as_of and max_timestamp values that would be guessed or overflow, and malformed rates."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import segmentkit as sk
from _bad_inputs import BadInput, CliFailure, run_cli
from segmentkit.errors import ContractError, InvalidParameterError


def _sample_tx() -> sk.Transactions:
    raw, mapping = sk.datasets.load_sample()
    return sk.Transactions.from_frame(raw, **mapping)


def _sample_csv(tmp: Path) -> str:
    raw, _ = sk.datasets.load_sample()
    path = tmp / "orders.csv"
    raw.to_csv(path, index=False)
    return str(path)


_MAP = (
    "--map",
    "customer_id=household_id",
    "timestamp=transaction_timestamp",
    "amount=sales_value",
)

CASES = [
    BadInput(
        "asof-day-month-text",
        lambda tmp: sk.extract_features(_sample_tx(), as_of="01.04.2017"),
        ContractError,
        ("as_of", "01.04.2017", "ISO 8601"),
    ),
    BadInput(
        "asof-bare-number",
        lambda tmp: sk.extract_features(_sample_tx(), as_of=1_700_000_000),
        ContractError,
        ("as_of", "1700000000", "unit='s'"),
    ),
    BadInput(
        "asof-day-month-cli",
        lambda tmp: run_cli(
            "segment",
            _sample_csv(tmp),
            *_MAP,
            "--as-of",
            "01.04.2017",
            "--out",
            str(tmp / "s.csv"),
        ),
        CliFailure,
        ("as_of", "01.04.2017", "--as-of 2024-06-30"),
    ),
    BadInput(
        "policy-max-timestamp-out-of-range",
        lambda tmp: run_cli(
            "validate", _sample_csv(tmp), *_MAP, "--policy", "max_timestamp=9999-12-31"
        ),
        CliFailure,
        ("max_timestamp", "9999-12-31", "future=keep"),
    ),
    BadInput(
        "policy-max-timestamp-number",
        lambda tmp: sk.Transactions.from_frame(
            sk.datasets.load_sample()[0],
            **sk.datasets.load_sample()[1],
            max_timestamp=1_700_000_000,
        ),
        InvalidParameterError,
        ("max_timestamp", "1700000000", "ISO 8601"),
    ),
    BadInput(
        "policy-rates-not-a-mapping",
        lambda tmp: sk.Transactions.from_frame(
            sk.datasets.load_sample()[0],
            **sk.datasets.load_sample()[1],
            rates=[("EUR", 1.0)],  # type: ignore[arg-type]
            base_currency="EUR",
        ),
        InvalidParameterError,
        ("rates", "list", "SEK"),
    ),
]

CASES += [
    BadInput(
        "policy-true-among-amounts",
        lambda tmp: sk.Transactions.from_frame(
            pd.DataFrame(
                {
                    "c": ["a", "b"],
                    "t": ["2024-01-01", "2024-01-02"],
                    "a": pd.Series([True, 3.0], dtype=object),
                }
            ),
            customer_id="c",
            timestamp="t",
            amount="a",
        ),
        ContractError,
        ("'a'", "amount", "true/false"),
    ),
]
