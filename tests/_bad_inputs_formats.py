"""Bad inputs of the file-format area: dates, separators, encodings, damaged files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

import segmentkit as sk
from _bad_inputs import BadInput, CliFailure, run_cli
from segmentkit.errors import ContractError, InvalidParameterError

_MAP = ["--map", "customer_id=id", "timestamp=day", "amount=total"]


def _frame(days: list[object]) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"c{i}" for i in range(len(days))], "day": days, "total": 1.0})


def _tx(days: list[object], **options: object) -> object:
    return sk.Transactions.from_frame(
        _frame(days), customer_id="id", timestamp="day", amount="total", **options
    )


def _file(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def _csv(folder: Path, days: list[object]) -> Path:
    path = folder / "orders.csv"
    _frame(days).to_csv(path, index=False)
    return path


def _truncated_gzip(folder: Path) -> Path:
    data = gzip.compress(b"id,day,total\n" + b"a,2024-01-01,1\n" * 50_000)
    return _file(folder, "orders.csv.gz", data[: len(data) // 2])


_EUROPEAN = "id;day;total;product\na;13.02.2024 10:00;1,5;Kävelykengät\n".encode("cp1252")

CASES = [
    BadInput(
        "formats-ambiguous-day-month",
        lambda _: _tx(["01/02/2024", "03/04/2024"]),
        ContractError,
        ("'timestamp'", "row 0: '01/02/2024'", "row 1: '03/04/2024'", "dayfirst=", "date_format="),
    ),
    BadInput(
        "formats-mixed-iso-and-dotted",
        lambda _: _tx(["2024-01-02", "02.01.2024"]),
        ContractError,
        ("'timestamp'", "mixes date formats", "row 1: '02.01.2024'", "date_format="),
    ),
    BadInput(
        "formats-contradictory-orders",
        lambda _: _tx(["13/02/2024", "02/13/2024"]),
        ContractError,
        ("mixes date conventions", "row 0: '13/02/2024'", "row 1: '02/13/2024'"),
    ),
    BadInput(
        "formats-dayfirst-contradicted",
        lambda _: _tx(["01/02/2024", "13/04/2024"], dayfirst=False),
        ContractError,
        ("'timestamp'", "dayfirst=False", "row 1: '13/04/2024'"),
    ),
    BadInput(
        "formats-date-format-mismatch",
        lambda _: _tx(["13.02.2024 14:05", "2024-01-01"], date_format="%d.%m.%Y %H:%M"),
        ContractError,
        ("row 1: '2024-01-01'", "date_format='%d.%m.%Y %H:%M'"),
    ),
    BadInput(
        "formats-date-format-without-directive",
        lambda _: _tx(["13.02.2024"], date_format="dd.mm.yyyy"),
        InvalidParameterError,
        ("dd.mm.yyyy", "% directive", "%d.%m.%Y"),
    ),
    BadInput(
        "formats-epoch-without-option",
        lambda _: _tx([1_704_067_200, 1_704_067_260]),
        ContractError,
        ("epoch", "date_format='epoch'", "row 0: 1704067200"),
    ),
    BadInput(
        "formats-year-9999",
        lambda _: _tx(["9999-12-31", "2024-01-01"]),
        ContractError,
        ("outside the range", "row 0: '9999-12-31'", "2262-04-11"),
    ),
    BadInput(
        "formats-year-1200-dotted",
        lambda _: _tx(["01.01.1200", "13.01.2024"]),
        ContractError,
        ("outside the range", "row 0: '01.01.1200'"),
    ),
    BadInput(
        "formats-as-of-9999-python",
        lambda _: sk.extract_features(_tx(["2024-01-01"]), as_of="9999-12-31"),
        ContractError,
        ("as_of='9999-12-31'", "outside the range"),
    ),
    BadInput(
        "formats-as-of-garbage-cli",
        lambda tmp: run_cli("segment", str(_csv(tmp, ["2024-01-01"])), *_MAP, "--as-of", "soon"),
        CliFailure,
        ("as_of='soon'", "not a date", "--as-of"),
    ),
    BadInput(
        "formats-ambiguous-cli",
        lambda tmp: run_cli("validate", str(_csv(tmp, ["01.02.2024", "03.04.2024"])), *_MAP),
        CliFailure,
        ("'timestamp'", "row 0: '01.02.2024'", "--dayfirst", "--date-format"),
    ),
    BadInput(
        "formats-cp1252-read-as-utf8-cli",
        lambda tmp: run_cli("validate", str(_file(tmp, "store.csv", _EUROPEAN)), *_MAP),
        CliFailure,
        ("store.csv", "not utf-8", "--encoding cp1252"),
    ),
    BadInput(
        "formats-decimal-comma-cli",
        lambda tmp: run_cli(
            "validate", str(_file(tmp, "store.csv", _EUROPEAN)), *_MAP, "--encoding", "cp1252"
        ),
        CliFailure,
        ("'amount'", "decimal comma", "--decimal"),
    ),
    BadInput(
        "formats-empty-file",
        lambda tmp: sk.Transactions.from_csv(_file(tmp, "orders.csv", b"")),
        ContractError,
        ("orders.csv", "empty"),
    ),
    BadInput(
        "formats-header-only-cli",
        lambda tmp: run_cli("validate", str(_file(tmp, "head.csv", b"id,day,total\n")), *_MAP),
        CliFailure,
        ("head.csv", "no rows"),
    ),
    BadInput(
        "formats-truncated-gzip",
        lambda tmp: sk.Transactions.from_csv(_truncated_gzip(tmp), customer_id="id"),
        ContractError,
        ("orders.csv.gz", "truncated"),
    ),
    BadInput(
        "formats-ragged-rows-cli",
        lambda tmp: run_cli(
            "validate",
            str(_file(tmp, "ragged.csv", b"id,day,total\na,2024-01-01,1,2,3\n")),
            *_MAP,
        ),
        CliFailure,
        ("ragged.csv", "more fields than its header", "--sep"),
    ),
    BadInput(
        "formats-duplicate-header",
        lambda tmp: sk.Transactions.from_csv(
            _file(tmp, "dup.csv", b"id;day;total;total\na;2024-01-01;1;2\n"),
            customer_id="id",
            timestamp="day",
            amount="total",
        ),
        ContractError,
        ("dup.csv", "['total']", "more than once"),
    ),
    BadInput(
        "formats-duplicate-frame-columns",
        lambda _: sk.Transactions.from_frame(
            pd.DataFrame([["a", "2024-01-01", 1, 2]], columns=["id", "day", "total", "total"]),
            customer_id="id",
            timestamp="day",
            amount="total",
        ),
        ContractError,
        ("['total']", "more than once"),
    ),
    BadInput(
        "formats-unknown-encoding-cli",
        lambda tmp: run_cli(
            "validate", str(_csv(tmp, ["2024-01-01"])), *_MAP, "--encoding", "klingon"
        ),
        CliFailure,
        ("klingon", "encoding"),
    ),
    BadInput(
        "formats-native-ambiguous",
        lambda _: sk.Transactions.from_frame(
            __import__("polars").from_pandas(_frame(["01.02.2024"])),
            customer_id="id",
            timestamp="day",
            amount="total",
        ),
        ContractError,
        ("'timestamp'", "'01.02.2024'", "dayfirst="),
    ),
]

CASES += [
    BadInput(
        "formats-utf16-file",
        lambda tmp: run_cli(
            "validate",
            str(_file(tmp, "u16.csv", "id,day,total\na,2024-01-01,1\n".encode("utf-16"))),
            *_MAP,
        ),
        CliFailure,
        ("u16.csv", "UTF-16", "--encoding utf-16"),
    ),
    BadInput(
        "formats-extra-field-suggests-another-separator",
        lambda tmp: run_cli(
            "validate",
            str(_file(tmp, "semi.csv", b"id;day;total\na;2024-01-01;1;5\nb;2024-01-02;2\n")),
            "--sep",
            ";",
            *_MAP,
        ),
        CliFailure,
        ("semi.csv", "more fields than its header", "--sep ','"),
    ),
]
