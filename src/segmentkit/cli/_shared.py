"""What the ``segmentkit`` commands share: reading configs, options and orders files,
building engines, loading models, writing results and showing progress."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from segmentkit._common._terminal import TERMINAL_WIDTH
from segmentkit.errors import SegmentkitError
from segmentkit.results._text import segment_lines

T = TypeVar("T")


class _Progress:
    """Step lines on stderr, so stdout stays clean for results."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def step(self, label: str, action: Callable[[], T]) -> T:
        if not self.quiet:
            print(f"  {label} ...", end="", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            result = action()
        except BaseException:
            if not self.quiet:
                print(" failed", file=sys.stderr, flush=True)
            raise
        if not self.quiet:
            print(f" done ({time.perf_counter() - started:.1f}s)", file=sys.stderr, flush=True)
        return result


def _parse_pairs(pairs: Sequence[str] | None, what: str, typed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            msg = f"{what} must be KEY=VALUE, got {pair!r}."
            raise SegmentkitError(msg)
        out[key.strip()] = _literal(value) if typed else value
    return out


def _attributes(items: Sequence[str]) -> dict[str, str]:
    """``--attributes department=DEPARTMENT TYPE``: names to columns (bare: its own)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, column = item.partition("=")
        if sep and not (name.strip() and column.strip()):
            msg = f"--attributes takes NAME=COLUMN or COLUMN, got {item!r}."
            raise SegmentkitError(msg)
        out[name.strip()] = column.strip() if sep else name.strip()
    return out


def _literal(text: str) -> Any:
    # "5" → 5, "true" → True, "null" → None, anything else stays text.
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


_MAX_CONFIG_BYTES = 1_000_000


_MAX_CONFIG_DEPTH = 16


def _read_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    from segmentkit._common._documents import exceeds_depth

    file = _input_file(path, "The --config file")
    if file.stat().st_size > _MAX_CONFIG_BYTES:
        msg = f"The --config file {path} is larger than {_MAX_CONFIG_BYTES:,} bytes; no config is."
        raise SegmentkitError(msg)
    try:
        text = file.read_text(encoding="utf-8")
        if file.suffix.lower() == ".json":
            document = json.loads(text)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # Python 3.10: the same parser from PyPI
                import tomli as tomllib
            document = tomllib.loads(text)
    except RecursionError:
        document = None
        too_deep = True
    except (ValueError, UnicodeDecodeError) as error:  # JSON and TOML parse errors
        kind = "JSON" if file.suffix.lower() == ".json" else "TOML"
        msg = f"Cannot read the --config file {path} as {kind} (UTF-8): {error}"
        raise SegmentkitError(msg) from None
    else:
        too_deep = exceeds_depth(document, _MAX_CONFIG_DEPTH)
    if too_deep:
        msg = (
            f"The --config file {path} nests tables more than {_MAX_CONFIG_DEPTH} levels "
            "deep; a config has [transactions] and [engine] tables with a few settings."
        )
        raise SegmentkitError(msg)
    if not isinstance(document, dict):
        msg = (
            f"The --config file {path} must hold tables ([transactions], [engine]), "
            f"not a {type(document).__name__}."
        )
        raise SegmentkitError(msg)
    _check_config_keys(document, _CONFIG_KEYS, path, "")
    for table, keys in _CONFIG_KEYS.items():
        section = document.get(table, {})
        if not isinstance(section, dict):
            msg = (
                f"[{table}] in the --config file {path} must be a table of settings, "
                f"not a {type(section).__name__}."
            )
            raise SegmentkitError(msg)
        _check_config_keys(section, keys, path, f"[{table}]")
        for sub in ("map", "policy", "params"):
            if sub in keys and not isinstance(section.get(sub, {}), dict):
                msg = f"[{table}.{sub}] in the --config file {path} must be a table."
                raise SegmentkitError(msg)
    return document


def _check_config_keys(table: dict[str, Any], known: Any, path: str, where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if not unknown:
        return
    place = f"{where} of " if where else ""
    hint = ""
    if where == "[transactions]":
        hint = (
            ' Column names go in [transactions.map] (customer_id = "CustomerID"), policies '
            "in [transactions.policy]."
        )
    msg = (
        f"Unknown key(s) {unknown} in {place}the --config file {path}; known: "
        f"{sorted(known)}.{hint}"
    )
    raise SegmentkitError(msg)


_READ_OPTIONS = ("sep", "decimal", "thousands", "encoding", "quotechar", "na_values", "skiprows")


def _read_options(config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``[<table>.read_options]`` of the config file, overridden by --sep, --decimal..."""
    options = config.get("read_options", {})
    if not isinstance(options, dict):
        msg = "read_options in the config file must be a table, e.g. [transactions.read_options]."
        raise SegmentkitError(msg)
    unknown = sorted(set(options) - set(_READ_OPTIONS))
    if unknown:
        msg = f"Unknown read_options {unknown} in the config file; known: {list(_READ_OPTIONS)}."
        raise SegmentkitError(msg)
    options = dict(options)
    for name in ("sep", "decimal", "thousands", "encoding"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = _unescape(value)
    for name in ("sep", "decimal", "thousands"):
        if name in options and (not isinstance(options[name], str) or len(options[name]) != 1):
            msg = (
                f"{name} must be one character, e.g. --{name} ';' (a tab is '\\t'). "
                f"Got {options[name]!r}."
            )
            raise SegmentkitError(msg)
    return options


def _unescape(value: str) -> str:
    # A shell passes a tab as the two characters backslash and t.
    return {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(value, value)


def _date_options(config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``date_format`` / ``dayfirst`` of the config table, overridden by the command line."""
    dates: dict[str, Any] = {k: config[k] for k in ("date_format", "dayfirst") if k in config}
    if getattr(args, "date_format", None) is not None:
        dates["date_format"] = args.date_format
    if getattr(args, "dayfirst", None) is not None:
        dates["dayfirst"] = args.dayfirst
    return dates


def _load_transactions(args: argparse.Namespace, progress: _Progress) -> Any:
    from segmentkit import Transactions

    config = _read_config(args.config).get("transactions", {})
    mapping: dict[str, Any] = {
        **config.get("map", {}),
        **_parse_pairs(args.map, "--map", typed=False),
    }
    policy = {**config.get("policy", {}), **_parse_pairs(args.policy, "--policy", typed=True)}
    policy.update(_date_options(config, args))
    if getattr(args, "attributes", None):
        policy["attributes"] = _attributes(args.attributes)
    read_options = _read_options(config, args)
    path = Path(args.file)
    if not path.exists():
        msg = f"File not found: {args.file}"
        raise SegmentkitError(msg)
    if path.suffix.lower() == ".parquet":
        return progress.step(
            f"reading and validating {path.name}",
            lambda: Transactions.from_parquet(path, **mapping, **policy),
        )
    return progress.step(
        f"reading and validating {path.name}",
        lambda: Transactions.from_csv(path, read_options=read_options, **mapping, **policy),
    )


def add_format_options(sub: argparse.ArgumentParser) -> None:
    """--sep, --decimal, --thousands, --encoding, --date-format, --dayfirst."""
    group = sub.add_argument_group(
        "file format (European exports: --sep ';' --decimal ',' --encoding cp1252 "
        "--date-format '%%d.%%m.%%Y %%H:%%M')"
    )
    group.add_argument(
        "--sep", help="field separator: ',' ';' '\\t' '|' (default: detected from the file)"
    )
    group.add_argument("--decimal", help="decimal mark of numbers, e.g. ',' (default '.')")
    group.add_argument("--thousands", help="thousands separator of numbers, e.g. ' ' or '.'")
    group.add_argument("--encoding", help="text encoding, e.g. cp1252 or latin-1 (default utf-8)")
    group.add_argument(
        "--date-format",
        metavar="PATTERN",
        help="how dates are written: a strftime pattern such as '%%d.%%m.%%Y %%H:%%M', or "
        "epoch / epoch_ms for seconds / milliseconds since 1970 (default: ISO 8601, or "
        "the day/month order the data settles)",
    )
    group.add_argument(
        "--dayfirst",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read numeric dates such as 01.02.2024 day first (--no-dayfirst: month first)",
    )


def _build_engine(args: argparse.Namespace, features: Any) -> Any:
    import segmentkit as sk

    config = _read_config(args.config).get("engine", {})
    name = args.engine or config.get("name", "rfm")
    # Parameters in the config belong to the engine the config names.
    params = dict(config.get("params", {})) if config.get("name", name) == name else {}
    params.update(_parse_pairs(args.param, "--param", typed=True))
    if args.rules:
        if name != "rules":
            msg = "--rules goes with --engine rules."
            raise SegmentkitError(msg)
        params["rules"], params["default"] = sk.load_rules(args.rules)
    if name == "rules" and "rules" not in params:
        params["rules"] = sk.lifecycle_rules(
            browsing=False, categories="top_category_share" in features.columns
        )
        params.setdefault("default", "Occasional")
    return sk.get_engine(name, **params)


def _write(segmentation: Any, out: str, table: str = "assignments") -> Path:
    suffix = "".join(Path(out).suffixes[-2:]).lower()
    if suffix.endswith(".parquet"):
        return segmentation.to_parquet(out, table=table)
    if suffix.endswith(".json"):
        return segmentation.to_json(out, table=table)
    if suffix.endswith(".csv") or suffix.endswith((".csv.gz", ".csv.zip", ".csv.bz2")):
        return segmentation.to_csv(out, table=table)
    msg = f"Cannot tell the format of {out!r}: end the name with .csv, .parquet or .json."
    raise SegmentkitError(msg)


def _load_model(args: argparse.Namespace) -> Any:
    import segmentkit as sk
    from segmentkit.errors import PersistenceError

    try:
        return sk.load(args.model, trust_pickle=args.trust_pickle)
    except PersistenceError as error:
        # Only where trusting would help: some refusals hold even with trust_pickle.
        if "load(path, trust_pickle=True)" in str(error) and not args.trust_pickle:
            msg = f"{error} On the command line, that is --trust-pickle."
            raise SegmentkitError(msg) from error
        raise


def _summary_text(segmentation: Any, title: str = "segments") -> str:
    """The segments as a terminal table: figures first, most valuable first."""
    shown = segmentation.summary()
    lines = segment_lines(shown, ["customers", "share", "revenue_share"], width=TERMINAL_WIDTH)
    # The full instant, not just the date: it is what --as-of needs to reproduce the run.
    as_of = segmentation.as_of.isoformat()
    return f"{title} ({segmentation.engine}), as of {as_of}:\n" + "\n".join(lines)


_CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "transactions": ("map", "policy", "read_options", "date_format", "dayfirst"),
    "engine": ("name", "params"),
}


def _input_file(path: str, what: str) -> Path:
    """``path`` if it is a non-empty file; else an error naming it and ``what`` it is."""
    file = Path(path)
    if not file.is_file():
        msg = f"{what} {path} does not exist."
        raise SegmentkitError(msg)
    if file.stat().st_size == 0:
        msg = f"{what} {path} is empty."
        raise SegmentkitError(msg)
    return file


#: Decimals of each predicted column in files: money to the cent, probabilities and
#: expected counts to 4 decimals (more would only show noise of the fit).
_PREDICTION_DECIMALS = {"expected_spend": 2, "predicted_clv_": 2}


def _add_predictions(args: argparse.Namespace, features: Any, progress: _Progress) -> Any:
    """The features plus the purchase (and spend) models' predicted columns."""
    import segmentkit as sk

    model = getattr(args, "purchase_model", None) or "bgnbd"
    options: dict[str, Any] = {}
    if getattr(args, "horizon", None) is not None:
        options["horizon"] = args.horizon
    if getattr(args, "clv_horizon", None) is not None:
        options["clv_horizon"] = args.clv_horizon
    if getattr(args, "discount_rate", None) is not None:
        options["discount_rate"] = args.discount_rate
    return progress.step(
        f"fitting the purchase model ({model}) and the spend model",
        lambda: sk.add_predictions(features, model, **options),
    )


def _prediction_table(features: Any) -> pd.DataFrame:
    """Per-customer predicted columns, rounded for a file: money to the cent."""
    from segmentkit.features._catalog import predicted_definition

    columns = [c for c in features.columns if predicted_definition(c) is not None]
    table = features.frame[columns].copy()
    for column in columns:
        decimals = next(
            (d for prefix, d in _PREDICTION_DECIMALS.items() if column.startswith(prefix)), 4
        )
        table[column] = table[column].round(decimals)
    table.index.name = "customer_id"
    return table
