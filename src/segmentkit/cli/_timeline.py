"""The ``segmentkit`` commands for segments over time: snapshot, migrate, groups, report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from segmentkit.cli._shared import (
    _build_engine,
    _load_model,
    _load_transactions,
    _parse_pairs,
    _Progress,
    _summary_text,
)
from segmentkit.errors import SegmentkitError


def add_commands(commands: Any, add_input: Any) -> None:
    """Register the four commands on the main parser's subparsers."""
    raw = argparse.RawDescriptionHelpFormatter

    snapshot = commands.add_parser(
        "snapshot",
        help="segment the customers at several dates (a monthly refresh)",
        description="Segment the customers of an orders file at each observation date, "
        "using only the data before it, and write one assignments file per date.",
        epilog="example:\n  segmentkit snapshot orders.csv --map customer_id=id "
        "timestamp=date amount=total \\\n      --monthly 2024-01-01 2024-12-01 --out snapshots/",
        formatter_class=raw,
    )
    add_input(snapshot)
    _add_engine_options(snapshot)
    dates = snapshot.add_mutually_exclusive_group(required=True)
    dates.add_argument("--as-of", nargs="+", metavar="DATE", help="observation dates")
    dates.add_argument(
        "--monthly",
        nargs=2,
        metavar=("FIRST", "LAST"),
        help="the first day of every month from FIRST to LAST",
    )
    snapshot.add_argument(
        "--refit",
        choices=["first", "each", "none"],
        default="first",
        help="fit once at the first date (default), at every date, or never (with --model)",
    )
    snapshot.add_argument("--out", required=True, help="folder for the assignments files")
    snapshot.add_argument("--format", choices=["csv", "parquet", "json"], default="csv")
    snapshot.set_defaults(run=_cmd_snapshot)

    migrate = commands.add_parser(
        "migrate",
        help="who moved between two segmentations, and the changes to push",
        description="Compare two assignments files (e.g. last month's and this month's): "
        "transition matrix, moves, drift per segment and the additions and removals "
        "per segment.",
        epilog="example:\n  segmentkit migrate snapshots/segments-2024-11-01.csv "
        "snapshots/segments-2024-12-01.csv --out migration/",
        formatter_class=raw,
    )
    migrate.add_argument("before", help="earlier assignments file")
    migrate.add_argument("after", help="later assignments file")
    migrate.add_argument(
        "--match",
        choices=["auto", "name", "overlap"],
        default="name",
        help="how segments are identified across the files: by name (default) or, for "
        "refitted clusters, by customer overlap",
    )
    migrate.add_argument("--out", help="folder for matrix, moves, drift and changes CSVs")
    migrate.set_defaults(run=_cmd_migrate)

    groups = commands.add_parser(
        "groups",
        help="assign holdout and A/B test arms, stratified by segment",
        description="Split the customers of an assignments file into test arms, "
        "deterministically from the customer id and a salt.",
        epilog="example:\n  segmentkit groups segments.csv --arm control=0.1 offer_a=0.45 "
        "offer_b=0.45 \\\n      --salt campaign-2026-11 --out groups.csv",
        formatter_class=raw,
    )
    groups.add_argument("segments", help="assignments file written by 'segmentkit segment'")
    groups.add_argument(
        "--arm", nargs="+", required=True, metavar="NAME=SHARE", help="arms and their shares"
    )
    groups.add_argument("--salt", required=True, help="campaign key: same salt, same arms")
    groups.add_argument(
        "--stratify-by",
        default="segment",
        help="'segment' (default), 'none', or a column of the assignments file",
    )
    groups.add_argument("--out", required=True, help="groups file: .csv, .parquet or .json")
    groups.set_defaults(run=_cmd_groups)

    report = commands.add_parser(
        "report",
        help="write a self-contained HTML report of the segments",
        description="Segment the customers of an orders file and write one HTML file to "
        "share: sizes, revenue, profiles, the RFM grid or cluster map, and optionally "
        "the migration since an earlier date and a test's results.",
        epilog="example:\n  segmentkit report orders.csv --map customer_id=id "
        "timestamp=date amount=total \\\n      --as-of 2024-12-01 --compare-with 2024-11-01 "
        "--out report.html",
        formatter_class=raw,
    )
    add_input(report)
    _add_engine_options(report)
    report.add_argument("--as-of", help="observation end (default: last order in the file)")
    report.add_argument(
        "--compare-with", metavar="DATE", help="add the migration since this earlier date"
    )
    report.add_argument("--groups", help="groups file from 'segmentkit groups'")
    report.add_argument(
        "--outcomes",
        help="CSV of test outcomes per customer (customer_id, converted, revenue); needs --groups",
    )
    report.add_argument("--title", help="report title")
    report.add_argument("--out", required=True, help="HTML file to write")
    report.set_defaults(run=_cmd_report)


def _add_engine_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--engine", help="rfm (default), rules, kmeans, hdbscan, or a plugin")
    sub.add_argument(
        "--param", nargs="+", metavar="NAME=VALUE", help="engine parameters, e.g. n_bins=4"
    )
    sub.add_argument("--rules", help="rules file (.toml/.json/.yaml) for --engine rules")
    sub.add_argument("--model", help="a model saved with 'segmentkit segment --save-model'")
    sub.add_argument("--trust-pickle", action="store_true", help="allow a pickled model (HDBSCAN)")


def _engine(args: argparse.Namespace, features: Any) -> Any:
    if args.model:
        if args.engine or args.param or args.rules:
            msg = "--model reuses a fitted model: leave out --engine, --param and --rules."
            raise SegmentkitError(msg)
        return _load_model(args)
    return _build_engine(args, features)


def _cmd_snapshot(args: argparse.Namespace) -> int:
    import segmentkit as sk

    progress = _Progress(args.quiet)
    tx = _load_transactions(args, progress)
    if args.monthly:
        from segmentkit.features._extract import _as_utc_timestamp

        # Checked like --as-of: garbage or 9999-12-31 is a clear error, not a traceback.
        first, last = (_as_utc_timestamp(value).tz_localize(None) for value in args.monthly)
        dates = list(pd.date_range(first, last, freq="MS"))
        if not dates:
            msg = f"--monthly {args.monthly[0]} {args.monthly[1]} holds no first of a month."
            raise SegmentkitError(msg)
    else:
        dates = list(args.as_of)
    if args.model and args.refit != "none":
        msg = "--model scores with a saved model: add --refit none."
        raise SegmentkitError(msg)
    if args.refit == "none" and not args.model:
        msg = "--refit none scores with a saved model: give it with --model."
        raise SegmentkitError(msg)
    engine = _engine(args, sk.extract_features(tx))
    made = progress.step(
        f"segmenting at {len(dates)} dates",
        lambda: sk.snapshots(tx, engine, dates, refit=args.refit),
    )
    folder = made.to_dir(args.out, fmt=args.format)
    print(tx.report)
    with pd.option_context("display.width", 160, "display.max_columns", 30):
        sizes = made.sizes()
        sizes.index = [f"{d:%Y-%m-%d}" for d in sizes.index]
        print(f"customers per segment ({made[0].engine}, refit={made.refit}):")
        print(sizes.astype(int).to_string())
    if len(made) > 1:
        print(f"\nlast step: {made.migration()}")
    print(f"\n{len(made)} assignments files and sizes.csv written to {folder}")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    import segmentkit as sk

    before = sk.Segmentation.from_assignments(_existing(args.before))
    after = sk.Segmentation.from_assignments(_existing(args.after))
    moved = sk.migration(before, after, match=args.match)
    print(moved)
    with pd.option_context("display.width", 160, "display.max_columns", 30):
        print("\ntransition matrix (customers; rows: before, columns: after):")
        print(moved.matrix.to_string())
        if moved.matching is not None:
            print("\nmatching of segments:")
            print(moved.matching.to_string(index=False))
        print("\nchanges to push per segment:")
        print(moved.changes().summary().to_string())
    if args.out:
        written = moved.to_csv(args.out)
        print(f"\nwritten: {', '.join(str(p) for p in written.values())}")
    return 0


def _cmd_groups(args: argparse.Namespace) -> int:
    import segmentkit as sk

    segmentation = sk.Segmentation.from_assignments(_existing(args.segments))
    arms = _parse_pairs(args.arm, "--arm", typed=True)
    stratify = None if args.stratify_by.lower() == "none" else args.stratify_by
    groups = sk.assign_groups(segmentation, arms=arms, salt=args.salt, stratify_by=stratify)
    with pd.option_context("display.width", 160):
        print(groups.summary().to_string())
    written = _write_groups(groups, args.out)
    print(f"\n{len(groups.table)} customers assigned; written to {written}")
    return 0


def _write_groups(groups: Any, out: str) -> Path:
    suffix = Path(out).suffix.lower()
    writers = {".csv": "to_csv", ".parquet": "to_parquet", ".json": "to_json"}
    if suffix not in writers:
        msg = f"Cannot tell the format of {out!r}: end the name with .csv, .parquet or .json."
        raise SegmentkitError(msg)
    return Path(getattr(groups, writers[suffix])(out))


def _cmd_report(args: argparse.Namespace) -> int:
    import segmentkit as sk

    progress = _Progress(args.quiet)
    if args.outcomes and not args.groups:
        msg = "--outcomes needs --groups (the arms the customers were in)."
        raise SegmentkitError(msg)
    tx = _load_transactions(args, progress)
    features = progress.step(
        "computing features", lambda: sk.extract_features(tx, as_of=args.as_of)
    )
    engine = _engine(args, features)
    if not args.model:
        engine = progress.step("fitting", lambda: engine.fit(features))
    segmentation = engine.predict(features)
    migration = None
    if args.compare_with:
        earlier = progress.step(
            f"segmenting at {args.compare_with}",
            lambda: engine.predict(sk.extract_features(tx, as_of=args.compare_with)),
        )
        migration = sk.migration(earlier, segmentation, match="name")
    analysis = None
    if args.groups:
        groups = sk.GroupAssignment.read(_existing(args.groups))
        if args.outcomes:
            outcomes = pd.read_csv(_existing(args.outcomes), dtype={"customer_id": str})
            analysis = progress.step(
                "analysing the test", lambda: sk.analyze_test(groups, outcomes)
            )
    written = progress.step(
        f"writing {args.out}",
        lambda: segmentation.report(
            args.out, migration=migration, analysis=analysis, title=args.title, segmenter=engine
        ),
    )
    print(_summary_text(segmentation))
    print(f"report written to {written}")
    return 0


def _existing(path: str) -> Path:
    file = Path(path)
    if not file.exists():
        msg = f"File not found: {path}"
        raise SegmentkitError(msg)
    return file
