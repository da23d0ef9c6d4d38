"""Bad config files given to the CLI's --config."""

from __future__ import annotations

from pathlib import Path

import segmentkit as sk
from _bad_inputs import BadInput, CliFailure, run_cli


def _orders(tmp: Path) -> str:
    raw, _ = sk.datasets.load_sample()
    path = tmp / "orders.csv"
    raw.head(50).to_csv(path, index=False)
    return str(path)


def _segment_with_config(name: str, text: str) -> object:
    def run(tmp: Path) -> None:
        config = tmp / name
        config.write_text(text, encoding="utf-8")
        run_cli("segment", _orders(tmp), "--config", str(config), "--out", str(tmp / "s.csv"))

    return run


CASES = [
    BadInput(
        "cli-config-missing",
        lambda tmp: run_cli("segment", _orders(tmp), "--config", str(tmp / "nope.toml")),
        CliFailure,
        ("--config", "nope.toml", "does not exist"),
    ),
    BadInput(
        "cli-config-bad-toml",
        _segment_with_config("c.toml", "[transactions\nmap = 1\n"),
        CliFailure,
        ("--config", "c.toml", "TOML"),
    ),
    BadInput(
        "cli-config-bad-json",
        _segment_with_config("c.json", '{"transactions": '),
        CliFailure,
        ("--config", "c.json", "JSON"),
    ),
    BadInput(
        "cli-config-deep-json",
        _segment_with_config("c.json", "[" * 5000 + "]" * 5000),
        CliFailure,
        ("--config", "levels deep"),
    ),
    BadInput(
        "cli-config-deep-toml",
        _segment_with_config("c.toml", "x = " + "[" * 400 + "]" * 400 + "\n"),
        CliFailure,
        ("--config", "levels deep"),
    ),
    BadInput(
        "cli-config-not-tables",
        _segment_with_config("c.json", "[1, 2]"),
        CliFailure,
        ("--config", "must hold tables", "list"),
    ),
    BadInput(
        "cli-config-transactions-not-table",
        _segment_with_config("c.json", '{"transactions": "customer_id=CustomerID"}'),
        CliFailure,
        ("[transactions]", "must be a table", "str"),
    ),
]

CASES += [
    BadInput(
        "cli-config-mapping-outside-map",
        _segment_with_config("c.toml", '[transactions]\ncustomer_id = "household_id"\n'),
        CliFailure,
        ("customer_id", "[transactions]", "[transactions.map]"),
    ),
    BadInput(
        "cli-config-unknown-table",
        _segment_with_config("c.toml", '[read_options]\nsep = ";"\n'),
        CliFailure,
        ("read_options", "--config", "known"),
    ),
    BadInput(
        "cli-config-policy-not-table",
        _segment_with_config("c.json", '{"transactions": {"policy": "returns=exclude"}}'),
        CliFailure,
        ("[transactions.policy]", "must be a table"),
    ),
]
