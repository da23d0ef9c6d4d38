"""Order lines larger than memory: features + RFM through DuckDB and polars from Parquet.

The data set is ``--parts`` Parquet files of ``--rows-per-part`` synthetic lines each
(``synthetic.generate_transactions``, one seed per part), written one part at a time
so that generating it never holds more than one part: 10 × 10M = 100M lines by
default, about 3 GB on disk. Customer and order ids are text (``C`` + 10 digits,
``O`` + 11 digits) with the part's number in front, so parts share no customer and
no order: 100M lines are about 15M customers.

Each engine then runs in a fresh process, timed from the scan of the files to the
segments written back to Parquet (nothing but the report's counts reaches Python on
the way), with its peak RSS (``ru_maxrss``: DuckDB and polars run inside the process):

==========  ===============================================================
engine      what runs
==========  ===============================================================
duckdb      ``con.read_parquet(glob)`` on a connection with ``memory_limit``
            (``--duckdb-memory``, default 5 GB) and a temporary directory
            → ``Transactions.from_frame`` → ``extract_features``
            → ``RFMSegmenter().fit_predict`` → ``write_parquet``
polars      ``Transactions.from_parquet(glob, engine="polars")`` (a lazy scan)
            → the same calls → ``sink_parquet`` (the streaming engine)
pandas      ``Transactions.from_parquet`` of the first ``--pandas-parts`` parts
            read into memory → the same calls → ``to_parquet``
==========  ===============================================================

``--check`` compares the features of the first million lines of part 0 computed by
pandas, DuckDB and polars (every column, every customer).

Usage (from the repository root)::

    python benchmarks/bench_outofcore.py                      # generate, then all engines
    python benchmarks/bench_outofcore.py --engines duckdb --check

Results go to ``benchmarks/results/outofcore.json`` and a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAPPING = {name: name for name in ("customer_id", "order_id", "timestamp", "amount")}
ENGINES = ("duckdb", "polars", "pandas")


def generate(folder: Path, parts: int, rows_per_part: int) -> list[Path]:
    """The parts, generated once (a part is written whole or not at all)."""
    sys.path.insert(0, str(HERE))
    import pyarrow as pa
    import pyarrow.parquet as pq
    from synthetic import _format_ids, generate_transactions

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for part in range(parts):
        path = folder / f"part-{part:03d}.parquet"
        paths.append(path)
        if path.exists():
            continue
        started = time.perf_counter()
        lines = generate_transactions(rows_per_part, seed=part, ids="int")
        offset = part * 10**9
        table = pa.table(
            {
                "customer_id": _format_ids("C", lines["customer_id"].to_numpy() + offset, 10),
                "order_id": _format_ids("O", lines["order_id"].to_numpy() + offset * 10, 11),
                # Microseconds: what Spark and most warehouses read.
                "timestamp": lines["timestamp"].to_numpy().astype("datetime64[us]"),
                "amount": lines["amount"].to_numpy(),
            }
        )
        del lines
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp, row_group_size=1_000_000)
        tmp.replace(path)
        print(f"  {path.name}: {time.perf_counter() - started:.1f} s", flush=True)
    return paths


def run_child(engine: str, folder: Path, args: argparse.Namespace) -> dict:
    import segmentkit as sk

    files = sorted(folder.glob("part-*.parquet"))
    out = Path(tempfile.mkdtemp(prefix=f"segments_{engine}_"))
    started = time.perf_counter()
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET memory_limit = '{args.duckdb_memory}'")
        con.execute(f"SET temp_directory = '{out / 'spill'}'")
        lines = con.read_parquet(str(folder / "part-*.parquet"))
        tx = sk.Transactions.from_frame(lines, **MAPPING)
        segments = sk.RFMSegmenter().fit_predict(sk.extract_features(tx))
        segments.write_parquet(str(out / "segments.parquet"))
        n_lines = tx.report.rows_read
    elif engine == "polars":
        tx = sk.Transactions.from_parquet(
            str(folder / "part-*.parquet"), engine="polars", **MAPPING
        )
        segments = sk.RFMSegmenter().fit_predict(sk.extract_features(tx))
        segments.sink_parquet(out / "segments.parquet")
        n_lines = tx.report.rows_read
    else:
        import pandas as pd

        chosen = files[: args.pandas_parts]
        raw = pd.concat([pd.read_parquet(path) for path in chosen], ignore_index=True)
        tx = sk.Transactions.from_frame(raw, **MAPPING)
        del raw
        segmentation = sk.RFMSegmenter().fit_predict(sk.extract_features(tx))
        segmentation.assignments.to_parquet(out / "segments.parquet")
        n_lines = tx.report.rows_read
    seconds = time.perf_counter() - started
    import pyarrow.parquet as pq

    return {
        "engine": engine,
        "lines": int(n_lines),
        "customers": pq.ParquetFile(out / "segments.parquet").metadata.num_rows,
        "seconds": seconds,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "load_average_1min": os.getloadavg()[0],
    }


def check_first_million(folder: Path) -> dict:
    """Features of part 0's first million lines: pandas against DuckDB and polars."""
    import duckdb
    import numpy as np
    import pandas as pd
    import polars as pl
    import pyarrow.parquet as pq

    import segmentkit as sk

    first = pq.ParquetFile(folder / "part-000.parquet").read_row_groups([0]).to_pandas()
    reference = sk.extract_features(sk.Transactions.from_frame(first, **MAPPING)).frame
    reference = reference.reset_index().sort_values("customer_id", ignore_index=True)
    found = {}
    for engine, native in (
        ("duckdb", duckdb.connect().from_arrow(pl.from_pandas(first).to_arrow())),
        ("polars", pl.from_pandas(first).lazy()),
    ):
        features = sk.extract_features(sk.Transactions.from_frame(native, **MAPPING))
        frame = features.df() if engine == "duckdb" else features.collect().to_pandas()
        frame = frame.sort_values("customer_id", ignore_index=True)
        differing = []
        for column in reference.columns:
            ours, theirs = reference[column], frame[column]
            if pd.api.types.is_numeric_dtype(ours.dtype):
                same = np.allclose(
                    ours.to_numpy(float, na_value=np.nan),
                    theirs.to_numpy(float, na_value=np.nan),
                    rtol=1e-9,
                    atol=1e-9,
                    equal_nan=True,
                )
            else:
                same = (ours.astype(str).to_numpy() == theirs.astype(str).to_numpy()).all()
            if not same:
                differing.append(column)
        found[engine] = {
            "customers": len(frame),
            "columns": len(reference.columns),
            "differing_columns": differing,
        }
    return {"lines": len(first), "customers": len(reference), "engines": found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=10)
    parser.add_argument("--rows-per-part", type=int, default=10_000_000)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--pandas-parts", type=int, default=5, help="parts the pandas row reads")
    parser.add_argument("--duckdb-memory", default="5GB")
    parser.add_argument("--check", action="store_true", help="compare the first 1M lines")
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "outofcore.json")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    total = args.parts * args.rows_per_part
    folder = args.folder or HERE / ".cache" / f"outofcore_{args.parts}x{args.rows_per_part}"
    if args.child:
        print(json.dumps(run_child(args.child, folder, args)))
        return 0
    print(f"data: {total:,} lines in {folder}", flush=True)
    generate(folder, args.parts, args.rows_per_part)
    size = sum(p.stat().st_size for p in folder.glob("part-*.parquet")) / 2**30
    results = []
    for engine in args.engines:
        command = [sys.executable, __file__, "--child", engine, "--folder", str(folder)]
        command += ["--pandas-parts", str(args.pandas_parts)]
        command += ["--duckdb-memory", args.duckdb_memory]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            results.append({"engine": engine, "error": f"exit code {done.returncode}: {last}"})
            print(f"{engine:<8} failed: {last}", flush=True)
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        row = results[-1]
        print(
            f"{engine:<8} {row['lines']:>13,} lines {row['seconds']:8.1f} s "
            f"peak {row['peak_rss_gib']:.2f} GiB",
            flush=True,
        )
    check = check_first_million(folder) if args.check else None
    args.out.parent.mkdir(exist_ok=True)
    document = {"lines": total, "parquet_gib": size, "results": results, "check": check}
    args.out.write_text(json.dumps(document, indent=1))
    print(f"\nParquet: {size:.2f} GiB\n")
    print("| engine | lines | customers | seconds | peak RSS (GiB) | under 8 GiB |")
    print("|---|---:|---:|---:|---:|---|")
    for row in results:
        if "error" in row:
            print(f"| {row['engine']} | | | | | failed: {row['error']} |")
            continue
        verdict = "met" if row["peak_rss_gib"] < 8 else "missed"
        print(
            f"| {row['engine']} | {row['lines']:,} | {row['customers']:,} | "
            f"{row['seconds']:.1f} | {row['peak_rss_gib']:.2f} | {verdict} |"
        )
    if check is not None:
        print(f"\nfirst million lines: {json.dumps(check)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
