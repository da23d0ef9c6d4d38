"""The ``segmentkit`` command: quickstart, validate, segment, export, engines, and the
commands for segments over time (snapshot, migrate, groups, report).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from segmentkit._version import __version__
from segmentkit.cli._shared import (
    _add_predictions,
    _build_engine,
    _date_options,
    _input_file,
    _load_model,
    _load_transactions,
    _parse_pairs,
    _prediction_table,
    _Progress,
    _read_options,
    _summary_text,
    _write,
    add_format_options,
)
from segmentkit.errors import SegmentkitError

_EPILOG = """\
examples:
  segmentkit quickstart
  segmentkit validate orders.csv --map customer_id=CustomerID timestamp=InvoiceDate \\
      amount=Total
  segmentkit segment orders.csv --map customer_id=CustomerID timestamp=InvoiceDate \\
      quantity=Quantity unit_price=UnitPrice order_id=InvoiceNo \\
      --policy cancellation_prefix=C --engine rfm --as-of 2011-12-10 --out segments.csv

Column names in your file are mapped to segmentkit's canonical names with --map
KEY=COLUMN (or a [transactions] table in --config). Canonical keys: customer_id,
timestamp, amount (or quantity and unit_price), order_id, product_id, category,
discount, currency, channel.
"""


def _cmd_validate(args: argparse.Namespace) -> int:
    progress = _Progress(args.quiet)
    tx = _load_transactions(args, progress)
    print(tx.report)
    data = tx.data
    print(
        f"customers: {tx.n_customers}; orders: {data['order_key'].nunique()}; "
        f"period: {data['timestamp'].min()} .. {data['timestamp'].max()}"
    )
    return 0


def _cmd_segment(args: argparse.Namespace) -> int:
    import segmentkit as sk

    progress = _Progress(args.quiet)
    tx = _load_transactions(args, progress)
    features = progress.step(
        "computing features", lambda: sk.extract_features(tx, as_of=args.as_of)
    )
    if args.predict or args.engine == "value-risk":
        features = _add_predictions(args, features, progress)
    if args.model:
        if args.engine or args.param or args.rules:
            msg = "--model reuses a fitted model: leave out --engine, --param and --rules."
            raise SegmentkitError(msg)
        engine = progress.step(f"loading model {args.model}", lambda: _load_model(args))
        segmentation = progress.step(
            f"scoring with the saved {engine.engine_name or type(engine).__name__} model",
            lambda: engine.predict(features),
        )
    else:
        engine = _build_engine(args, features)
        segmentation = progress.step(
            f"segmenting with {engine.engine_name or type(engine).__name__}",
            lambda: engine.fit_predict(features),
        )
    if args.save_model:
        written = progress.step(
            f"saving model {args.save_model}", lambda: engine.save(args.save_model)
        )
        print(f"model saved to {written}")
    print(tx.report)
    print(_summary_text(segmentation))
    if args.out:
        written = progress.step(f"writing {args.out}", lambda: _write(segmentation, args.out))
        print(f"assignments written to {written}")
    if args.catalog_out:
        written = _write(segmentation, args.catalog_out, table="catalog")
        print(f"segment catalog written to {written}")
    return 0


def _cmd_next_best(args: argparse.Namespace) -> int:
    import segmentkit as sk
    from segmentkit._common._csv import write_csv

    progress = _Progress(args.quiet)
    if not args.out.lower().endswith(".csv"):
        msg = f"--out must be a .csv file, got {args.out!r}."
        raise SegmentkitError(msg)
    tx = _load_transactions(args, progress)
    model = sk.NextBestItems(
        args.attribute, k=args.k, min_support=args.min_support, basket=args.basket
    )
    progress.step("learning associations", lambda: model.fit(tx, as_of=args.as_of))
    table = progress.step("ranking items", model.transform)
    print(tx.report)
    print(
        f"next-best {args.attribute} as of {model.as_of_.isoformat()}: "
        f"{len(table)} customers, {len(model.items_)} items, {model.n_rules_} rules"
    )
    written = progress.step(
        f"writing {args.out}", lambda: write_csv(args.out, table.set_index("customer_id"))
    )
    print(f"next-best items written to {written}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import segmentkit as sk
    from segmentkit._common._csv import write_csv

    progress = _Progress(args.quiet)
    if not args.out.lower().endswith(".csv"):
        msg = f"--out must be a .csv file, got {args.out!r}."
        raise SegmentkitError(msg)
    tx = _load_transactions(args, progress)
    features = progress.step(
        "computing features", lambda: sk.extract_features(tx, as_of=args.as_of)
    )
    predicted = _add_predictions(args, features, progress)
    table = _prediction_table(predicted)
    print(tx.report)
    alive = table["p_alive"]
    print(
        f"predictions as of {predicted.as_of.isoformat()} ({args.purchase_model}): "
        f"{int(alive.notna().sum())} customers predicted, {int(alive.isna().sum())} without "
        "a purchase (left empty)"
    )
    shown = table.describe().loc[["mean", "50%"]].rename(index={"50%": "median"})
    with pd.option_context("display.width", 160):
        print(shown.round(2).to_string())
    written = progress.step(f"writing {args.out}", lambda: write_csv(args.out, table))
    print(f"predictions written to {written}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    import segmentkit as sk

    progress = _Progress(args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw, mapping = progress.step("loading the bundled sample", sk.datasets.load_sample)
    tx = progress.step(
        "validating transactions", lambda: sk.Transactions.from_frame(raw, **mapping)
    )
    print(tx.report)
    profiles, profile_mapping = sk.datasets.load_sample_customers()
    customers = sk.Customers.from_frame(profiles, **profile_mapping, extra_columns="all")
    events = progress.step(
        "generating browsing events for the sample customers",
        lambda: sk.Events.from_frame(
            sk.datasets.generate_events(tx.data, random_state=0),
            customer_id="customer_id",
            timestamp="timestamp",
            event_type="event_type",
            product_id="product_id",
            category="category",
            session_id="session_id",
            duration_s="duration_s",
        ),
    )
    features = progress.step(
        "computing features", lambda: sk.extract_features(tx, events, customers)
    )
    print(
        f"{len(features)} customers, {len(features.columns)} features each\n"
        "(the sample holds about 5% of each household's receipt lines, so frequency and\n"
        "spend are under-counted; browsing events are generated)\n"
    )
    rfm = progress.step("RFM segments", lambda: sk.RFMSegmenter().fit_predict(features))
    print(_summary_text(rfm, "RFM segments"))
    rules = sk.RuleSegmenter(rules=sk.lifecycle_rules(), default="Occasional")
    lifecycle = progress.step("lifecycle segments", lambda: rules.fit_predict(features))
    print()
    print(_summary_text(lifecycle, "Lifecycle segments"))
    # Four clusters rather than automatic k: on this sample the best silhouette is a
    # plain two-way split, which shows less of what named clusters read like.
    clusters = progress.step(
        "behaviour clusters (k-means, 4 clusters)",
        lambda: sk.KMeansSegmenter(n_clusters=4, random_state=0).fit_predict(features),
    )
    print()
    print(_summary_text(clusters, "Behaviour clusters"))
    written = [
        rfm.to_csv(out / "rfm_segments.csv"),
        rfm.to_csv(out / "rfm_catalog.csv", table="catalog"),
        rfm.report(out / "rfm_report.html", title="RFM segments of the bundled sample"),
        lifecycle.to_csv(out / "lifecycle_segments.csv"),
        clusters.to_csv(out / "cluster_segments.csv"),
    ]
    print("\nwritten:", *written, sep="\n  ")
    return 0


_BUILDERS = {
    "meta": "build_meta",
    "google_ads": "build_google_ads",
    "klaviyo": "build_klaviyo",
    "mailchimp": "build_mailchimp",
    "hubspot": "build_hubspot",
    "braze": "build_braze",
}


_REQUIRED_PARAMS = {
    "audience_id": "the Meta custom audience's id",
    "customer_id": "the Google Ads account id, e.g. 123-456-7890",
    "user_list_id": "the Customer Match user list's id",
    "list_id": "the list's id on the platform",
}


_LIST_PARAMS = ("consent", "suppression", "properties")


def _builder_params(
    builder: Callable[..., Any], platform: str, given: dict[str, Any]
) -> dict[str, Any]:
    """``given`` checked against the builder's keyword parameters, named as CLI options.

    A missing, unknown or mistyped parameter would otherwise reach the user as the
    builder's ``TypeError`` ("missing 1 required keyword-only argument").
    """
    import inspect

    options = {
        name: parameter
        for name, parameter in inspect.signature(builder).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = [name for name in given if name not in options]
    if unknown:
        msg = (
            f"--param {unknown[0]} is not a parameter of --to {platform}; it takes "
            f"{', '.join(options)} (see 'segmentkit export --help' and docs/destinations)."
        )
        raise SegmentkitError(msg)
    missing = [
        name
        for name, parameter in options.items()
        if parameter.default is inspect.Parameter.empty and name not in given
    ]
    if missing:
        needed = " ".join(f"{name}=..." for name in missing)
        what = "; ".join(f"{name} is {_REQUIRED_PARAMS.get(name, 'required')}" for name in missing)
        msg = f"--to {platform} needs --param {needed} ({what})."
        raise SegmentkitError(msg)
    params = dict(given)
    for name, value in given.items():
        annotation = str(options[name].annotation)
        if annotation in ("int", "int | None") and (
            not isinstance(value, int) or isinstance(value, bool)
        ):
            if value is None and annotation == "int | None":
                continue
            msg = f"--param {name} must be a whole number, got {value!r}."
            raise SegmentkitError(msg)
        if name in _LIST_PARAMS and isinstance(value, str):
            params[name] = [part.strip() for part in value.split(",") if part.strip()]
            if name == "consent" and len(params[name]) == 1:
                params[name] = params[name][0]
    return params


def _read_segmentation(path: str) -> Any:
    import segmentkit as sk

    file = _input_file(path, "The segments file")
    try:
        return sk.Segmentation.from_assignments(file)
    except (SegmentkitError, ValueError, KeyError, UnicodeDecodeError) as error:
        # pandas' EmptyDataError and ParserError are ValueErrors.
        reason = f"it has no {error}" if isinstance(error, KeyError) else str(error)
        msg = (
            f"Cannot read the segments file {path}: {reason}\n"
            "Use an assignments file written by 'segmentkit segment --out' "
            "(.csv, .parquet or .json)."
        )
        raise SegmentkitError(msg) from error


def _read_customers(path: str, mapping: dict[str, Any], read_options: dict[str, Any]) -> Any:
    import segmentkit as sk
    from segmentkit.errors import ContractError

    file = _input_file(path, "The --customers file")
    try:
        return sk.Customers.from_csv(file, read_options=read_options, **mapping)
    except ContractError as error:
        # The contract's hints are written for Python (customer_id='<column>').
        msg = (
            f"{error}\nOn the command line, map your columns with --map-customers "
            "KEY=COLUMN, e.g. --map-customers customer_id=CustomerID email=Email."
        )
        raise SegmentkitError(msg) from error
    except (ValueError, UnicodeDecodeError) as error:
        msg = f"Cannot read the --customers file {path}: {error}"
        raise SegmentkitError(msg) from error


def _cmd_export(args: argparse.Namespace) -> int:
    import re

    from segmentkit import exporters

    progress = _Progress(args.quiet)
    builder = getattr(exporters, _BUILDERS[args.to])
    params = _parse_pairs(args.param, "--param", typed=True)
    # Platform ids are text as written, even when they look like numbers (leading
    # zeros, dashes, '12e3').
    written = _parse_pairs(args.param, "--param", typed=False)
    for key in ("audience_id", "list_id", "customer_id", "job_id", "user_list_id"):
        if key in params and params[key] is not None:
            params[key] = written[key]
    params = _builder_params(builder, args.to, params)
    segmentation = progress.step(
        f"reading {args.segments}", lambda: _read_segmentation(args.segments)
    )
    mapping: dict[str, Any] = _parse_pairs(args.map_customers, "--map-customers", typed=False)
    mapping.update(_date_options({}, args))
    if isinstance(params.get("properties"), list):
        # Columns sent as Klaviyo properties must be kept when the profiles are read
        # (canonical ones, such as country, are kept anyway).
        from segmentkit.contracts._customers import CustomersContract

        canonical = {column.name for column in CustomersContract.columns}
        mapping["extra_columns"] = [
            c for c in params["properties"] if c not in mapping and c not in canonical
        ]
    customers = progress.step(
        f"reading {args.customers}",
        lambda: _read_customers(args.customers, mapping, _read_options({}, args)),
    )
    if args.predictions:
        if args.to not in _PREDICTION_PLATFORMS:
            msg = (
                f"--predictions goes to {', '.join(_PREDICTION_PLATFORMS)} profiles; "
                f"--to {args.to} takes no profile properties."
            )
            raise SegmentkitError(msg)
        params["predictions"] = _read_predictions(args.predictions)
    export = progress.step(
        f"building {args.to} requests",
        lambda: builder(segmentation, args.segment, customers, **params),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", args.segment.lower()).strip("-") or "segment"
    path = export.to_json(out / f"{args.to}-{slug}.json")
    print(export.report)
    print(f"{len(export.requests)} request(s) written to {path}")
    if not export.requests:
        print(
            f"nothing to send: no member of '{export.report.segment}' can be exported "
            "(see the exclusions above)"
        )
    if args.push:
        credentials = exporters.Credentials.from_env(args.to, base_url=args.base_url)
        summary = exporters.push(
            export,
            credentials=credentials,
            journal=path.with_suffix(".journal"),
            rate_per_second="platform",
            progress=not args.quiet,
        )
        print(summary)
    return 0


_PREDICTION_PLATFORMS = ("klaviyo", "braze", "hubspot")


def _read_predictions(path: str) -> Any:
    from segmentkit._common._csv import read_csv

    file = _input_file(path, "The --predictions file")
    try:
        table = read_csv(file, text=["customer_id"])
    except (ValueError, UnicodeDecodeError) as error:
        msg = f"Cannot read the --predictions file {path}: {error}"
        raise SegmentkitError(msg) from error
    if "customer_id" not in table.columns:
        msg = (
            f"The --predictions file {path} has no 'customer_id' column; use the file "
            "written by 'segmentkit predict --out' or 'segmentkit next-best --out'."
        )
        raise SegmentkitError(msg)
    return table


def _cmd_engines(args: argparse.Namespace) -> int:
    import segmentkit as sk

    for name in sk.available_engines():
        print(name)
    return 0


def add_prediction_options(sub: argparse.ArgumentParser) -> None:
    """--purchase-model and the horizons, for commands that add predictions."""
    sub.add_argument(
        "--purchase-model",
        choices=["bgnbd", "pareto"],
        default="bgnbd",
        help="purchase model of --predict / --engine value-risk (default bgnbd)",
    )
    _add_horizon_options(sub)


def _add_horizon_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--horizon",
        type=float,
        help="weeks of expected_purchases (default 52: one year)",
    )
    sub.add_argument(
        "--clv-horizon",
        type=int,
        help="months of predicted_clv (default 12)",
    )
    sub.add_argument(
        "--discount-rate",
        type=float,
        help="monthly discount rate of predicted_clv (default 0.01)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segmentkit",
        description="Customer segments from orders and browsing events.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"segmentkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    quick = commands.add_parser(
        "quickstart",
        help="run the whole pipeline on the bundled sample data",
        description="Validate the bundled sample, compute features, segment it with RFM "
        "and lifecycle rules, and write the results.",
    )
    quick.add_argument("--out", default="segmentkit-quickstart", help="folder for the results")
    quick.set_defaults(run=_cmd_quickstart)

    def add_input(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("file", help="orders file: .csv (optionally compressed) or .parquet")
        sub.add_argument(
            "--map",
            nargs="+",
            metavar="KEY=COLUMN",
            help="map canonical names to your columns, e.g. customer_id=CustomerID",
        )
        sub.add_argument(
            "--policy",
            nargs="+",
            metavar="NAME=VALUE",
            help="validation policies, e.g. returns=exclude cancellation_prefix=C "
            "orders_from=day duplicates=drop exclude_products=POST,DOT,gift_* "
            "max_timestamp=2024-06-30 future=keep invalid_values=exclude",
        )
        sub.add_argument(
            "--attributes",
            nargs="+",
            metavar="NAME=COLUMN",
            help="extra product attributes beside category and brand, e.g. "
            "department=DEPARTMENT product_type=TYPE (a bare COLUMN keeps its name)",
        )
        sub.add_argument("--config", help="TOML or JSON file with [transactions] and [engine]")
        add_format_options(sub)

    validate = commands.add_parser(
        "validate",
        help="check an orders file and report every row kept or excluded",
        description="Validate an orders file against the transactions contract.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input(validate)
    validate.set_defaults(run=_cmd_validate)

    segment = commands.add_parser(
        "segment",
        help="segment the customers of an orders file",
        description="Validate an orders file, compute features and segment the customers.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input(segment)
    segment.add_argument(
        "--engine",
        help="rfm (default), rules, kmeans, hdbscan, value-risk (predicted value x churn "
        "risk; adds the predictions), or a plugin: 'segmentkit engines'",
    )
    segment.add_argument(
        "--param", nargs="+", metavar="NAME=VALUE", help="engine parameters, e.g. n_bins=4"
    )
    segment.add_argument("--rules", help="rules file (.toml/.json/.yaml) for --engine rules")
    segment.add_argument(
        "--as-of", help="observation end, e.g. 2024-07-01 (default: last order in the file)"
    )
    segment.add_argument("--out", help="assignments file: .csv, .parquet or .json")
    segment.add_argument(
        "--save-model", help="save the fitted engine (JSON) to reuse it with --model"
    )
    segment.add_argument("--model", help="score with a saved model instead of fitting a new one")
    segment.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow loading a model whose state is pickled (HDBSCAN); only for files you made",
    )
    segment.add_argument("--catalog-out", help="segment catalog file: .csv, .parquet or .json")
    segment.add_argument(
        "--predict",
        action="store_true",
        help="add the predicted columns (p_alive, churn_risk, expected_purchases_52w, "
        "expected_spend, predicted_clv_12m) to the features, e.g. for --rules over them; "
        "implied by --engine value-risk",
    )
    add_prediction_options(segment)
    segment.set_defaults(run=_cmd_segment)

    predict = commands.add_parser(
        "predict",
        help="predict each customer's churn risk, purchases and value (CLV)",
        description="Validate an orders file, fit a purchase model (BG/NBD or Pareto/NBD) "
        "and the Gamma-Gamma spend model on the customers' history up to --as-of, and "
        "write per customer: p_alive (probability of still being a customer), churn_risk "
        "(1 - p_alive), expected_purchases_<h> (purchase days in the horizon), "
        "expected_spend (per purchase) and predicted_clv_<h> (discounted value). Money is "
        "rounded to the cent, the rest to 4 decimals; customers without a purchase get "
        "empty cells. See docs/predicting.md.",
        epilog="example:\n  segmentkit predict orders.csv --map customer_id=CustomerID "
        "timestamp=InvoiceDate \\\n      amount=Total --as-of 2024-07-01 --model pareto "
        "--horizon 26 --out predictions.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input(predict)
    predict.add_argument(
        "--as-of",
        help="end of the history the models learn from, e.g. 2024-07-01 (default: last "
        "order in the file)",
    )
    predict.add_argument(
        "--model",
        dest="purchase_model",
        choices=["bgnbd", "pareto"],
        default="bgnbd",
        help="purchase model: bgnbd (BG/NBD, default) or pareto (Pareto/NBD)",
    )
    _add_horizon_options(predict)
    predict.add_argument("--out", required=True, help="predictions file (.csv)")
    predict.set_defaults(run=_cmd_predict)

    next_best = commands.add_parser(
        "next-best",
        help="rank, per customer, the items they have not bought yet",
        description="Validate an orders file, learn which items are bought together "
        "(support, confidence, lift) up to --as-of, and write per customer the --k items "
        "they are most likely to buy next among those they never bought: customer_id, "
        "next_best_1 ... next_best_<k>. Send them to Klaviyo, Braze or HubSpot with "
        "'segmentkit export ... --predictions FILE'. See docs/what-to-offer.md.",
        epilog="example:\n  segmentkit next-best orders.csv --map customer_id=CustomerID "
        "timestamp=InvoiceDate \\\n      amount=Total category=Category --k 3 "
        "--out next_best.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_input(next_best)
    next_best.add_argument(
        "--as-of", help="end of the history learnt from (default: last order in the file)"
    )
    next_best.add_argument(
        "--attribute",
        default="category",
        help="mapped product column naming an item: category (default), brand, product_id",
    )
    next_best.add_argument("--k", type=int, default=3, help="items per customer (default 3)")
    next_best.add_argument(
        "--min-support",
        type=float,
        default=0.01,
        help="smallest share of customers a pair of items must be bought by (default 0.01)",
    )
    next_best.add_argument(
        "--basket",
        choices=["customer", "order"],
        default="customer",
        help="count items bought by the same customer (default) or in the same order",
    )
    next_best.add_argument("--out", required=True, help="next-best items file (.csv)")
    next_best.set_defaults(run=_cmd_next_best)

    export = commands.add_parser(
        "export",
        help="build a marketing platform's requests for one segment (sends nothing)",
        description="Turn one segment of a segmentation file into the exact requests a "
        "platform accepts, with identifiers normalised and hashed as it specifies, "
        "consent and suppression applied, and a report of who was left out and why.",
        epilog="example:\n  segmentkit export segments.csv --customers customers.csv \\\n"
        "      --map-customers customer_id=id email=email consent_ads=ads_ok \\\n"
        "      --to meta --segment Champions --param audience_id=2385000 --out exports/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("segments", help="assignments file written by 'segmentkit segment --out'")
    export.add_argument("--customers", required=True, help="customer profiles CSV")
    export.add_argument(
        "--map-customers",
        nargs="+",
        metavar="KEY=COLUMN",
        default=[],
        help="map profile columns: customer_id, email, phone, first_name, last_name, city, "
        "region, postal_code, country, consent_email, consent_sms, consent_ads...",
    )
    export.add_argument("--to", required=True, choices=sorted(_BUILDERS), help="platform")
    export.add_argument("--segment", required=True, help="segment name to export")
    export.add_argument(
        "--param",
        nargs="+",
        metavar="NAME=VALUE",
        default=[],
        help="builder parameters, e.g. audience_id=... (meta), list_id=... (klaviyo), "
        "operation=remove",
    )
    export.add_argument("--out", required=True, help="folder for the JSON file")
    export.add_argument(
        "--predictions",
        help="file written by 'segmentkit predict' or 'segmentkit next-best': send each "
        "profile's predicted CLV and churn risk as segmentkit_predicted_clv and "
        "segmentkit_churn_risk, and its next-best items as segmentkit_next_best_1... "
        "(klaviyo, braze, hubspot)",
    )
    export.add_argument(
        "--push",
        action="store_true",
        help="also send the requests (needs the 'push' extra and the platform's credentials "
        "in SEGMENTKIT_* environment variables); a journal next to the JSON file makes "
        "re-runs skip what was acknowledged",
    )
    export.add_argument("--base-url", help=argparse.SUPPRESS)
    add_format_options(export)
    export.set_defaults(run=_cmd_export)

    engines = commands.add_parser("engines", help="list the available engines")
    engines.set_defaults(run=_cmd_engines)

    from segmentkit.cli._timeline import add_commands

    add_commands(commands, add_input)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 1 on a data or usage error (2 for malformed arguments).
    """
    args = _parser().parse_args(argv)
    try:
        return _run_showing_warnings(args)
    except (
        SegmentkitError,
        ValueError,
        TypeError,
        OSError,
        ImportError,
        KeyError,
        RuntimeError,
    ) as error:
        if args.debug:
            raise
        message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        first, *rest = message.splitlines() or [""]
        print(f"segmentkit: error: {first}", file=sys.stderr)
        for line in rest:
            print(f"  {line}", file=sys.stderr)
        print("  (run with --debug for the traceback)", file=sys.stderr)
        return 1


def _run_showing_warnings(args: argparse.Namespace) -> int:
    # A warning about the data (e.g. a test too small to conclude) is part of the
    # answer: one plain line on stderr, never a traceback or a failed run.
    import warnings

    from segmentkit.errors import SegmentkitWarning

    recorded: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SegmentkitWarning)
            try:
                return int(args.run(args))
            finally:
                recorded = list(caught)
    finally:
        # Shown once recording has stopped: a warning re-emitted while recording would
        # be appended to the very list being read, and the loop would never end.
        for warning in recorded:
            if issubclass(warning.category, SegmentkitWarning):
                print(f"segmentkit: warning: {warning.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
