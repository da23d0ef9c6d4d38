"""The full feature set and the interest work (windows, brands, affinity) next to R/F/M.

One run times, at each size, on the same synthetic order lines with brands, departments
and promo codes (``synthetic.generate_transactions(rows, extended=True)``, cached as
Parquet under ``benchmarks/.cache/``), each path in a fresh Python process, its peak
RSS measured the way ``bench_core`` does and its input loaded the way ``bench_peers``
does (their helpers are imported, not copied):

=========  ===========================================================================
path       what is timed (input already in memory, in the backend's format)
=========  ===========================================================================
rfm        ``Transactions.from_frame`` on customer, order, timestamp and amount →
           ``extract_features`` → ``RFMSegmenter().fit_predict`` (bench_peers'
           "segmentkit, pandas (default)")
target     ``Transactions.from_frame`` on the columns the windows and affinities read
           (the R/F/M columns, product, category, brand, quantity) →
           ``extract_features(features=TARGET_FEATURES)``: the R/F/M path's features
           plus every purchase window and the category and brand affinities (issue
           16's target: "the windows and affinities") → ``RFMSegmenter().fit_predict``
full       ``Transactions.from_frame`` with every column the contract knows (product,
           category, brand, quantity, discount, promo code; ``department`` as a user
           attribute where ``attributes=`` exists) → ``extract_features`` (with
           ``purchase_windows=(30, 90, 365)`` where that parameter exists) →
           ``RFMSegmenter().fit_predict``: every feature segmentkit computes
interest   the same validation and features, then the long affinity table
           (``features.affinity``, or ``sk.affinity`` where only that exists; "n/a"
           when neither does): the windows and affinities of issue 16
=========  ===========================================================================

on the pandas (default), polars and DuckDB backends (``--methods``, e.g.
``pandas_rfm polars_full``). The script adapts to the code it runs: the feature counts,
whether purchase windows, attributes and the affinity table exist, and which call of
the affinity worked are recorded per result, so it runs unchanged as features land.

Reported per path: median seconds over ``--repeat`` and the median of each stage
(validate, features, affinity, segment), the number of feature columns, peak and extra
RSS, the 1-minute load average around the measurement (the machine may be shared), and
the ratio to the R/F/M path of the same backend and size, judged against the issue's
3× (windows and affinities within 3× of R/F/M on pandas).

Usage (from the repository root)::

    python benchmarks/bench_features.py --rows 1000000 --repeat 3 --readme
    python benchmarks/bench_features.py --rows 10000000 --methods pandas_rfm pandas_full \\
        pandas_interest --merge --readme
    python benchmarks/bench_features.py --rows 1000000 --profile pandas_full  # cProfile

Results go to ``benchmarks/results/features.json``; ``--readme`` also rewrites the
table between the ``features-table`` markers of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_core as core  # noqa: E402  (measurement helpers, stdlib-only at import)
import bench_peers as peers  # noqa: E402  (data cache and input loading)

DEFAULT_OUT = HERE / "results" / "features.json"
README = HERE / "README.md"
TABLE_START = "<!-- features-table:start -->"
TABLE_END = "<!-- features-table:end -->"
GIB = core.GIB
IDS = "str"  # Arrow-backed text ids, as pandas 3 read_csv/read_parquet give (as peers)
PURCHASE_WINDOWS = (30, 90, 365)
#: The target of issue 16: windows and affinities within this many times R/F/M.
TARGET_RATIO = 3.0
BACKENDS = ("pandas", "polars", "duckdb")
PATHS = {
    "rfm": "R/F/M + scores (4 columns)",
    "target": "R/F/M + windows + affinities + scores",
    "full": "every feature + R/F/M scores",
    "interest": "features + affinity table",
}
#: The target path's features (``features=`` of extract_features): the R/F/M path's
#: own features, every purchase window and the category and brand affinities; not the
#: offers and price tier (issue 16's parts 4 and 5), which the full path adds.
TARGET_COLUMNS = (*peers.RFM_COLUMNS, "product_id", "category", "brand", "quantity")
TARGET_FEATURES = [
    "first_purchase",
    "last_purchase",
    "recency_days",
    "frequency",
    "purchase_days",
    "monetary",
    "gross_spend",
    "avg_order_value",
    "tenure_days",
    "mean_days_between_orders",
    "return_rate",
    "orders_*d",
    "spend_*d",
    "items_*d",
    "products_*d",
    "new_categories_*d",
    "n_products",
    "n_categories",
    "top_category",
    "top_category_share",
    "n_brands",
    "top_brand",
    "top_brand_share",
    "brand_repeat_rate",
]
METHODS = [f"{backend}_{path}" for backend in BACKENDS for path in PATHS]
STAGES = ("validate", "features", "affinity", "segment")
_RESULT_PREFIX = "FEATURES_RESULT "


# --------------------------------------------------------------------------- the paths


def _split(method: str) -> tuple[str, str]:
    backend, path = method.split("_", 1)
    return backend, path


def _mapping(path: str, columns: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Column mapping and options for ``Transactions.from_frame``, and what was possible."""
    import segmentkit as sk

    if path == "rfm":
        return {name: name for name in peers.RFM_COLUMNS}, {"attributes": "not mapped"}
    if path == "target":  # what the windows and affinities read, nothing more
        return {name: name for name in TARGET_COLUMNS}, {"attributes": "not mapped"}
    known = set(sk.Transactions.contract.names)
    mapping: dict[str, Any] = {name: name for name in columns if name in known}
    facts: dict[str, Any] = {}
    extra = [name for name in columns if name not in known]
    if "attributes" in inspect.signature(sk.Transactions.from_frame).parameters and extra:
        mapping["attributes"] = {name: name for name in extra}
        facts["attributes"] = extra
    else:
        facts["attributes"] = "not supported" if extra else "none"
    return mapping, facts


def _feature_options(path: str = "full") -> tuple[dict[str, Any], Any]:
    import segmentkit as sk

    parameters = inspect.signature(sk.extract_features).parameters
    options: dict[str, Any] = {}
    if path == "target":
        if "features" not in parameters:
            msg = "this segmentkit has no extract_features(features=...)"
            raise RuntimeError(msg)
        options["features"] = TARGET_FEATURES
    if "purchase_windows" in parameters:
        return {**options, "purchase_windows": PURCHASE_WINDOWS}, list(PURCHASE_WINDOWS)
    return options, "not supported"


def _materialised(frame: Any) -> Any:
    return peers._materialised(frame)


def _columns_of(frame: Any) -> list[str]:
    """Feature column names of a CustomerFeatures or a native frame."""
    if hasattr(frame, "frame"):
        return [str(c) for c in frame.frame.columns]
    names = [str(c) for c in frame.columns]
    return [name for name in names if name != "customer_id"]


def _rows_of(table: Any) -> int | None:
    table = _materialised(table)
    for attribute in ("num_rows", "height"):
        if hasattr(table, attribute):
            return int(getattr(table, attribute))
    try:
        return len(table)
    except TypeError:
        return None


def _affinity(features: Any, tx: Any, attributes: list[str]) -> tuple[Any, str]:
    """The long affinity table by whichever API this segmentkit has, and the call used.

    ``features.affinity`` (attribute or method: all attributes, else one call per
    attribute), else ``sk.affinity(tx)`` (else per attribute); ``(None, 'n/a')`` when
    there is none.
    """
    import segmentkit as sk

    def attempts(function: Any, name: str, first: Any) -> tuple[Any, str]:
        try:
            return (first() if first else function()), f"{name}()"
        except TypeError:
            tables = [function(attribute) for attribute in attributes]
            return tables, f"{name}(attribute) for {', '.join(attributes)}"

    if hasattr(features, "affinity"):
        value = features.affinity
        if not callable(value):
            return value, "features.affinity"
        return attempts(value, "features.affinity", None)
    if hasattr(sk, "affinity"):
        return attempts(lambda *a: sk.affinity(tx, *a), "sk.affinity", lambda: sk.affinity(tx))
    return None, "n/a"


def run_path(payload: Any, method: str, info: dict[str, Any]) -> tuple[Any, dict[str, float]]:
    """One measured run: the stages of ``method`` on its input, with their times."""
    import segmentkit as sk

    backend, path = _split(method)
    frame = payload.table("tx") if backend == "duckdb" else payload
    stages: dict[str, float] = {}
    mapping, _ = _mapping(path, info["input_columns"])
    options, _ = _feature_options(path) if path != "rfm" else ({}, None)

    started = time.perf_counter()
    tx = sk.Transactions.from_frame(frame, **mapping)
    stages["validate"] = time.perf_counter() - started

    started = time.perf_counter()
    features = sk.extract_features(tx, **options)
    stages["features"] = time.perf_counter() - started

    result: Any = features
    if path == "interest":
        started = time.perf_counter()
        table, call = _affinity(features, tx, info["attributes_present"])
        tables = table if isinstance(table, list) else [table]
        info["affinity_call"] = call
        if table is not None:
            info["affinity_rows"] = sum(_rows_of(t) or 0 for t in tables)
        stages["affinity"] = time.perf_counter() - started
        result = (features, tables)
    else:
        del tx
        started = time.perf_counter()
        segmentation = sk.RFMSegmenter().fit_predict(features)
        # A DuckDB relation is lazy: fetching it runs the query.
        result = (features, _materialised(segmentation))
        stages["segment"] = time.perf_counter() - started
    info["feature_columns"] = _columns_of(features)
    return result, stages


# --------------------------------------------------------------------------- child


def _import_for(backend: str) -> None:
    import segmentkit.engines  # noqa: F401  (scikit-learn loads here, not when timed)

    if backend == "polars":
        import polars  # noqa: F401
    if backend == "duckdb":
        import duckdb  # noqa: F401


def _prepare(method: str, path: Path) -> tuple[Any, dict[str, Any]]:
    import pyarrow.parquet as pq

    backend, kind = _split(method)
    all_columns = pq.read_schema(path).names
    columns = {"rfm": list(peers.RFM_COLUMNS), "target": list(TARGET_COLUMNS)}.get(
        kind, all_columns
    )
    payload = peers.load_input(backend, path, columns)
    mapping, _ = _mapping(kind, columns)
    # The product attributes the validated transactions hold: the affinity's attributes.
    mapped = set(mapping) | set(mapping.get("attributes", ()))
    info: dict[str, Any] = {
        "input_columns": columns,
        "attributes_present": [c for c in ("category", "brand", "department") if c in mapped],
    }
    return payload, info


def run_child(method: str, path: Path, repeat: int) -> dict[str, Any]:
    import numpy as np

    backend, kind = _split(method)
    _import_for(backend)
    started = time.perf_counter()
    payload, info = _prepare(method, path)
    prepare_seconds = time.perf_counter() - started
    load_before = os.getloadavg()[0]
    seconds: list[float] = []
    stage_seconds: dict[str, list[float]] = {}
    peaks: list[int] = []
    extras: list[int] = []
    reset_ok = True
    sources_before = core.loaded_sources()
    for _ in range(repeat):
        result = None
        core._release_free_memory()
        before = core._current_rss()
        reset_ok &= core._reset_peak()
        started = time.perf_counter()
        result, stages = run_path(payload, method, info)
        seconds.append(time.perf_counter() - started)
        peak = core._peak_rss()
        peaks.append(peak)
        extras.append(peak - before)
        for stage, value in stages.items():
            stage_seconds.setdefault(stage, []).append(value)
        del result
    load_after = os.getloadavg()[0]
    sources_after = core.loaded_sources()
    _, facts = _mapping(kind, info["input_columns"])
    _, windows = _feature_options(kind) if kind != "rfm" else ({}, "not used")
    names = info["feature_columns"]
    return {
        "method": method,
        "backend": backend,
        "path": kind,
        "label": PATHS[kind],
        "prepare_seconds": prepare_seconds,
        "load_average_1min": [load_before, load_after],
        "seconds": seconds,
        "seconds_median": statistics.median(seconds),
        "seconds_min": min(seconds),
        "stage_seconds": stage_seconds,
        "stage_seconds_median": {k: statistics.median(v) for k, v in stage_seconds.items()},
        "peak_rss_gib": max(peaks) / GIB,
        "extra_rss_gib": max(extras) / GIB,
        "peak_reset": reset_ok,
        "n_features": len(names),
        "feature_columns": names,
        "purchase_windows": windows,
        "attributes": facts["attributes"],
        "affinity_call": info.get("affinity_call"),
        "affinity_rows": info.get("affinity_rows"),
        "input_columns": info["input_columns"],
        "versions": {
            "numpy": np.__version__,
            **{
                name: core._installed_version(name)
                for name in ("pandas", "pyarrow", "polars", "duckdb", "narwhals")
            },
        },
        "src_files": sources_after,
        # Files imported during the first run are new, not changed.
        "src_changed_during_run": any(
            sources_after.get(name) != digest for name, digest in sources_before.items()
        ),
    }


def profile_method(method: str, path: Path, top: int) -> None:
    """cProfile of one run of the feature stages (not the validation) of ``method``."""
    import cProfile
    import pstats

    import segmentkit as sk

    backend, kind = _split(method)
    _import_for(backend)
    payload, info = _prepare(method, path)
    frame = payload.table("tx") if backend == "duckdb" else payload
    mapping, _ = _mapping(kind, info["input_columns"])
    options, _ = _feature_options(kind) if kind != "rfm" else ({}, None)
    tx = sk.Transactions.from_frame(frame, **mapping)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    features = sk.extract_features(tx, **options)
    if kind == "interest":
        _, call = _affinity(features, tx, info["attributes_present"])
    else:
        call = "not run"
    _materialised(features)
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(
        f"# cProfile of extract_features{'' if kind == 'rfm' else ' ' + str(options)} "
        f"on {path.name} ({method}; affinity: {call}): {elapsed:.2f} s under the profiler, "
        f"{len(_columns_of(features))} feature columns"
    )
    print("## by own time")
    pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(top)
    print("## segmentkit functions by cumulative time")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(r"src/segmentkit/", top)
    print("## who calls the functions with the most own time")
    pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_callers(max(top // 3, 1))


# --------------------------------------------------------------------------- parent


def _spawn(method: str, rows: int, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    backend, kind = _split(method)
    base = {"method": method, "backend": backend, "path": kind, "label": PATHS[kind]}
    base["rows"] = rows
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        method,
        "--data",
        str(path),
        "--repeat",
        str(args.repeat),
    ]
    load = os.getloadavg()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timed out ({args.timeout:.0f} s)", "load_at_start": load}
    lines = [line for line in done.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**base, "error": f"exit code {done.returncode}: {last}", "load_at_start": load}
    result = json.loads(lines[-1][len(_RESULT_PREFIX) :])
    result.update(base)
    result["load_at_start"] = load
    return result


def combine_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from the rounds of a method: every timing pooled, medians over all."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    if len(runs) == 1:
        return {**ok[0], "rounds": 1}
    out = dict(ok[-1])
    out["rounds"] = len(runs)
    out["round_errors"] = [r["error"] for r in runs if "error" in r]
    out["seconds"] = [s for r in ok for s in r["seconds"]]
    out["seconds_median"] = statistics.median(out["seconds"])
    out["seconds_min"] = min(out["seconds"])
    out["round_medians"] = [r["seconds_median"] for r in ok]
    stages: dict[str, list[float]] = {}
    for r in ok:
        for stage, values in r["stage_seconds"].items():
            stages.setdefault(stage, []).extend(values)
    out["stage_seconds"] = stages
    out["stage_seconds_median"] = {k: statistics.median(v) for k, v in stages.items()}
    out["peak_rss_gib"] = max(r["peak_rss_gib"] for r in ok)
    out["extra_rss_gib"] = max(r["extra_rss_gib"] for r in ok)
    out["peak_reset"] = all(r["peak_reset"] for r in ok)
    loads = [x for r in ok for x in r["load_average_1min"]]
    out["load_average_1min"] = [min(loads), max(loads)]
    out["src_changed_during_run"] = any(r["src_changed_during_run"] for r in ok)
    return out


def add_ratios(results: list[dict[str, Any]]) -> None:
    """Each path against the R/F/M path of the same backend and size (and pandas')."""
    ok = [r for r in results if "error" not in r]
    rfm = {(r["rows"], r["backend"]): r for r in ok if r["path"] == "rfm"}
    for r in ok:
        for key, name in (
            ((r["rows"], r["backend"]), "vs_rfm"),
            ((r["rows"], "pandas"), "vs_pandas_rfm"),
        ):
            reference = rfm.get(key)
            if reference is None:
                continue
            r[f"time_{name}"] = r["seconds_median"] / reference["seconds_median"]
            # Fastest against fastest: the least disturbed runs on a shared machine.
            r[f"time_{name}_fastest"] = r["seconds_min"] / reference["seconds_min"]
        reference = rfm.get((r["rows"], r["backend"]))
        if reference is not None:
            ref = reference["stage_seconds_median"]
            own = r["stage_seconds_median"]
            r["features_stage_vs_rfm"] = own["features"] / ref["features"]
            r["validate_stage_vs_rfm"] = own["validate"] / ref["validate"]


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 16's benchmark target, at every size measured: pandas paths within 3× R/F/M."""
    out = []
    for r in sorted(results, key=lambda r: (r["rows"], METHODS.index(r["method"]))):
        if "error" in r or r["backend"] != "pandas" or r["path"] == "rfm":
            continue
        ratio = r.get("time_vs_rfm")
        if ratio is None:
            continue
        affinity = r["path"] != "interest" or r.get("affinity_call") not in (None, "n/a")
        detail = f"{ratio:.2f}x ({r['seconds_median']:.2f} s, {r['n_features']} features"
        detail += ")" if affinity else "; no affinity table in this code: n/a)"
        out.append(
            {
                "rows": r["rows"],
                "target": f"pandas {PATHS[r['path']]} within {TARGET_RATIO:g}x of R/F/M",
                "met": ratio <= TARGET_RATIO,
                "complete": affinity,
                "detail": detail,
            }
        )
    return out


def markdown_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| rows | backend | path | features | seconds (median) | validate | features "
        "| affinity | segment | × R/F/M | within 3× | × R/F/M (fastest runs) "
        "| features stage × R/F/M's "
        "| peak RSS (GiB) | extra RSS (GiB) | load (1 min) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(results, key=lambda r: (r["rows"], METHODS.index(r["method"]))):
        head = f"| {r['rows']:,} | {r['backend']} | {PATHS[r['path']]}"
        if "error" in r:
            lines.append(f"{head} | {r['error'].replace('|', '/')} ||||||||||||")
            continue
        stages = r["stage_seconds_median"]

        def stage(name: str, stages: dict[str, float] = stages) -> str:
            return f"{stages[name]:.2f}" if name in stages else "–"

        affinity = stage("affinity")
        if r["path"] == "interest" and r.get("affinity_call") in (None, "n/a"):
            affinity = "n/a"
        ratio = r.get("time_vs_rfm")
        if r["path"] == "rfm" or ratio is None:
            mark = "–"
        else:
            mark = "met" if ratio <= TARGET_RATIO else "**missed**"
            if affinity == "n/a":
                mark += " (no affinity)"
        fastest = r.get("time_vs_rfm_fastest")
        stage_ratio = r.get("features_stage_vs_rfm")
        stage_ratio_text = (
            "–" if r["path"] == "rfm" or stage_ratio is None else f"{stage_ratio:.2f}"
        )
        load = "–".join(f"{x:.1f}" for x in r["load_average_1min"])
        lines.append(
            f"{head} | {r['n_features']} | {r['seconds_median']:.2f} | {stage('validate')} "
            f"| {stage('features')} | {affinity} | {stage('segment')} "
            f"| {'–' if ratio is None else f'{ratio:.2f}'} | {mark} "
            f"| {'–' if fastest is None or r['path'] == 'rfm' else f'{fastest:.2f}'} "
            f"| {stage_ratio_text} "
            f"| {r['peak_rss_gib']:.2f}{'' if r.get('peak_reset', True) else ' †'} "
            f"| {r['extra_rss_gib']:.2f} | {load} |"
        )
    return "\n".join(lines)


def features_table(results: list[dict[str, Any]]) -> str:
    """Which optional parts this code had, per result (so a later run shows what landed)."""
    lines = [
        "| rows | method | purchase windows | attributes | affinity call | affinity rows |",
        "|---:|---|---|---|---|---:|",
    ]
    for r in sorted(results, key=lambda r: (r["rows"], METHODS.index(r["method"]))):
        if "error" in r or r["path"] == "rfm":
            continue
        rows = r.get("affinity_rows")
        windows = r.get("purchase_windows")
        attributes = r.get("attributes")
        lines.append(
            f"| {r['rows']:,} | {r['method']} "
            f"| {', '.join(map(str, windows)) if isinstance(windows, list) else windows} "
            f"| {', '.join(attributes) if isinstance(attributes, list) else attributes} "
            f"| {r.get('affinity_call') or '–'} | {'–' if rows is None else f'{rows:,}'} |"
        )
    return "\n".join(lines)


def update_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    start, end = readme.find(TABLE_START), readme.find(TABLE_END)
    if start < 0 or end < start:
        print(f"no {TABLE_START} / {TABLE_END} markers in {README}; not updated", file=sys.stderr)
        return
    readme = readme[: start + len(TABLE_START)] + "\n" + text + "\n" + readme[end:]
    README.write_text(readme, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the methods this many times in turn (fresh processes each), pooling "
        "the timings: a busy neighbour then slows every path alike",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache", type=Path, default=peers.DEFAULT_CACHE)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per child")
    parser.add_argument("--merge", action="store_true", help="keep other results already in --out")
    parser.add_argument("--readme", action="store_true", help="rewrite the README table")
    parser.add_argument(
        "--profile",
        choices=METHODS,
        metavar="METHOD",
        help="cProfile extract_features (and the affinity table) of one method at the "
        "first --rows, print the top functions, exit (no JSON)",
    )
    parser.add_argument("--top", type=int, default=30, help="rows of the --profile listing")
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rounds < 1:
        parser.error("--repeat and --rounds must be at least 1")

    if args.child:
        result = run_child(args.child, args.data, args.repeat)
        print(_RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    if args.profile:
        path = peers.ensure_data(args.cache, args.rows[0], args.seed, IDS, extended=True)
        profile_method(args.profile, path, args.top)
        return 0

    results: list[dict[str, Any]] = []
    if args.merge and args.out.exists():
        previous = json.loads(args.out.read_text(encoding="utf-8")).get("results", [])
        rerun = {(rows, m) for rows in args.rows for m in args.methods}
        results = [r for r in previous if (r["rows"], r["method"]) not in rerun]
    for rows in args.rows:
        path = peers.ensure_data(args.cache, rows, args.seed, IDS, extended=True)
        rounds: dict[str, list[dict[str, Any]]] = {}
        # Rounds interleave the paths, so a neighbour's load falls on all of them alike.
        for round_number in range(args.rounds):
            for method in sorted(args.methods, key=METHODS.index):
                tag = f" r{round_number + 1}" if args.rounds > 1 else ""
                print(f"{rows:>12,} rows  {method:<18}{tag}", end="", flush=True)
                result = _spawn(method, rows, path, args)
                rounds.setdefault(method, []).append(result)
                if "error" in result:
                    print(f"  {result['error']}", flush=True)
                    continue
                print(
                    f"  {result['seconds_median']:8.2f} s  {result['n_features']:3d} features"
                    f"  peak {result['peak_rss_gib']:5.2f} GiB"
                    f"  load {result['load_average_1min'][0]:.1f}",
                    flush=True,
                )
        results.extend(combine_rounds(runs) for runs in rounds.values())
    add_ratios(results)
    judged = targets(results)
    changed = core._changed_sources(
        [{**r, "stage": r["method"]} for r in results if "error" not in r]
    )
    if changed:
        print(f"WARNING: segmentkit sources changed between runs: {changed}", file=sys.stderr)
    document = {
        "benchmark": "features",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python", "benchmarks/bench_features.py", *(argv or sys.argv[1:])]),
        "machine": peers._machine(),
        "git": core._git_state(),
        "config": {
            "repeat": args.repeat,
            "rounds": args.rounds,
            "seed": args.seed,
            "ids": "str (Arrow-backed)",
            "data": "synthetic.generate_transactions(rows, seed, ids='str', extended=True)",
            "purchase_windows": list(PURCHASE_WINDOWS),
        },
        "src_files_changed_between_runs": changed,
        "results": results,
        "targets": judged,
    }
    core._write_json(args.out, document)
    table = markdown_table(results) + "\n\n" + features_table(results) + "\n\n"
    table += peers.targets_table(judged)
    print()
    print(table)
    if args.readme:
        update_readme(table)
    print(f"\nwritten to {args.out}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
