"""R/F/M + 1-5 scores with segmentkit and with the tools users would pick instead, side by side.

One run generates the same synthetic order lines (``synthetic.generate_transactions``,
cached as Parquet under ``benchmarks/.cache/``) at each size and times, each method in
a fresh Python process with its peak RSS measured the way ``bench_core`` does (its
helpers are imported, not copied):

==================  ==============================================================
method              what is timed (input already in memory, in the method's format)
==================  ==============================================================
numpy_bound         ``pd.factorize`` of the text ids, ``np.maximum.at``/``np.bincount``
                    (``bench_core.rfm_numpy``), then 1-5 scores (sort + searchsorted)
numpy_direct        the same on integer ids used directly as array positions
                    (no factorising: the floor of the floor)
sk_pandas           ``Transactions.from_frame`` (customer, order, timestamp, amount)
                    → ``extract_features`` → ``RFMSegmenter().fit_predict``
sk_polars           the same three calls on a polars DataFrame
sk_duckdb           the same three calls on a DuckDB relation (in-memory table)
sk_pandas_rfm       sk_pandas asking only for R/F/M (``extract_features(features=...)``)
sk_polars_rfm       sk_polars asking only for R/F/M (``extract_features(features=...)``),
                    the work the hand-written peers do
sk_duckdb_rfm       the same on the DuckDB relation
sk_spark            the same three calls on a Spark frame read from the Parquet file
                    (local mode, 2 cores), the segments collected with ``toPandas``
                    (the only thing brought to the driver; the JVM's memory is not in
                    the peak RSS, which is the Python process's)
sk_spark_rfm        sk_spark asking only for R/F/M
sk_full             ``Transactions.from_frame`` with all 8 columns → ``extract_features``
                    (the full feature set) → ``RFMSegmenter().fit_predict``
pandas_tutorial     blog-post RFM: ``groupby.agg`` with per-customer lambdas,
                    ``pd.qcut``, scores joined as text
pandas_idiomatic    one ``groupby.agg`` with named aggregations, ``qcut`` on ranks
polars              one lazy ``group_by().agg()``, scores from ordinal ranks
duckdb_sql          one SQL query: ``GROUP BY`` with ``FILTER``, ``ntile(5)``
lifetimes           ``lifetimes.utils.summary_data_from_transaction_data`` (no scores)
pymc_rfm_summary    ``pymc_marketing.clv.utils.rfm_summary`` (no scores)
pymc_rfm_segments   ``pymc_marketing.clv.utils.rfm_segments`` (scores and segments)
…_uuid              the same method on lines whose customer and order ids are UUID
                    text (``numpy_bound_uuid``, ``sk_pandas_uuid``,
                    ``sk_pandas_rfm_uuid``, ``polars_uuid``, ``duckdb_sql_uuid``):
                    ids no prefix-and-number parsing can turn into array positions
==================  ==============================================================

``lifetimes`` and ``pymc-marketing`` run in their own virtual environment
(``benchmarks/.venv-peers``, made by ``run_peers.sh``): they are never dependencies
of segmentkit. A method whose packages cannot be imported is reported as not available,
with the reason.

After the timings every child writes its per-customer R/F/M (and scores) to the
cache; the parent compares them with segmentkit's pandas path (``agreement`` in the
JSON, and the README's table). Definitions differ between tools (returns, days versus
timestamps, mean versus total spend): see ``benchmarks/README.md``.

Usage (from the repository root; ``bash benchmarks/run_peers.sh`` does the set-up)::

    python benchmarks/bench_peers.py --rows 1000000 10000000 --repeat 3 --readme
    python benchmarks/bench_peers.py --rows 1000000 --methods sk_pandas numpy_bound

Results go to ``benchmarks/results/peers.json``; ``--readme`` also rewrites the table
between the ``peers-table`` markers of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import bench_core as core  # noqa: E402  (measurement helpers, stdlib-only at import)

DEFAULT_OUT = HERE / "results" / "peers.json"
DEFAULT_CACHE = HERE / ".cache"
DEFAULT_PEERS_PYTHON = HERE / ".venv-peers" / "bin" / "python"
README = HERE / "README.md"
TABLE_START = "<!-- peers-table:start -->"
TABLE_END = "<!-- peers-table:end -->"
GIB = core.GIB
RFM_COLUMNS = ["customer_id", "order_id", "timestamp", "amount"]
MAPPING = {name: name for name in RFM_COLUMNS}
DAY_NS = 86_400 * 10**9

# name: (label, environment, ids of the input, largest size it runs at or None)
METHODS: dict[str, tuple[str, str, str, int | None]] = {
    "numpy_bound": ("numpy bound (factorised ids)", "main", "str", None),
    "numpy_direct": ("numpy bound (direct-addressed int ids)", "main", "int", None),
    "sk_pandas": ("segmentkit, pandas (default)", "main", "str", None),
    "sk_polars": ("segmentkit, polars backend", "main", "str", None),
    "sk_duckdb": ("segmentkit, DuckDB backend", "main", "str", None),
    "sk_pandas_rfm": ("segmentkit, pandas, R/F/M only", "main", "str", None),
    "sk_polars_rfm": ("segmentkit, polars backend, R/F/M only", "main", "str", None),
    "sk_duckdb_rfm": ("segmentkit, DuckDB backend, R/F/M only", "main", "str", None),
    "sk_spark": ("segmentkit, Spark backend (local[2])", "main", "str", None),
    "sk_spark_rfm": ("segmentkit, Spark backend (local[2]), R/F/M only", "main", "str", None),
    "sk_full": ("segmentkit, pandas, full feature set", "main", "str", None),
    "pandas_tutorial": ("tutorial pandas (lambdas + qcut)", "main", "str", 1_000_000),
    "pandas_idiomatic": ("idiomatic pandas (agg + qcut on ranks)", "main", "str", None),
    "polars": ("polars (group_by + ranks)", "main", "str", None),
    "duckdb_sql": ("DuckDB SQL (ntile)", "main", "str", None),
    "lifetimes": ("lifetimes summary_data_from_transaction_data", "peers", "str", None),
    "pymc_rfm_summary": ("pymc-marketing rfm_summary", "peers", "str", None),
    "pymc_rfm_segments": ("pymc-marketing rfm_segments", "peers", "str", None),
    "numpy_bound_uuid": ("numpy bound (factorised ids), UUID ids", "main", "uuid", None),
    "sk_pandas_uuid": ("segmentkit, pandas (default), UUID ids", "main", "uuid", None),
    "sk_pandas_rfm_uuid": ("segmentkit, pandas, R/F/M only, UUID ids", "main", "uuid", None),
    "polars_uuid": ("polars (group_by + ranks), UUID ids", "main", "uuid", None),
    "duckdb_sql_uuid": ("DuckDB SQL (ntile), UUID ids", "main", "uuid", None),
}


def base_method(method: str) -> str:
    """The method a ``…_uuid`` variant runs (on other data)."""
    return method.removesuffix("_uuid")


_RESULT_PREFIX = "PEERS_RESULT "


# --------------------------------------------------------------------------- data


def cache_path(cache: Path, rows: int, seed: int, ids: str, extended: bool = False) -> Path:
    suffix = "_extended" if extended else ""
    return cache / f"transactions_{rows}_seed{seed}_{ids}{suffix}.parquet"


def ensure_data(cache: Path, rows: int, seed: int, ids: str, extended: bool = False) -> Path:
    """Generate the synthetic lines once per (size, seed, ids, extended), kept as Parquet."""
    path = cache_path(cache, rows, seed, ids, extended)
    if path.exists():
        return path
    # In a child process, so the parent does not keep the generator's memory.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from synthetic import "
        "generate_transactions as g; "
        "g(int(sys.argv[2]), seed=int(sys.argv[3]), ids=sys.argv[4], "
        "extended=sys.argv[6] == '1').to_parquet(sys.argv[5])"
    )
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    command = [sys.executable, "-c", code, str(HERE), str(rows), str(seed), ids, str(tmp)]
    subprocess.run([*command, "1" if extended else "0"], check=True)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- methods


def _scores_min_rank(values: Any, higher_is_better: bool) -> Any:
    """1-5 quantile scores with segmentkit's tie policy: bin of the first sorted position."""
    import numpy as np

    oriented = np.where(np.isfinite(values), values if higher_is_better else -values, -np.inf)
    ordered = np.sort(oriented)
    first = np.searchsorted(ordered, oriented, side="left")
    return (first * 5 // max(len(ordered), 1) + 1).astype(np.int64)


def _numpy_scores(rfm: dict[str, Any]) -> dict[str, Any]:
    rfm["r_score"] = _scores_min_rank(rfm["recency_days"], higher_is_better=False)
    rfm["f_score"] = _scores_min_rank(rfm["frequency"].astype(float), higher_is_better=True)
    rfm["m_score"] = _scores_min_rank(rfm["monetary"], higher_is_better=True)
    return rfm


def numpy_bound(raw: Any) -> dict[str, Any]:
    return _numpy_scores(core.rfm_numpy(raw))


def numpy_direct(raw: Any) -> dict[str, Any]:
    """The bound when ids are already dense integers: they index the arrays directly."""
    import numpy as np

    customer = raw["customer_id"].to_numpy()
    order = raw["order_id"].to_numpy()
    ns = raw["timestamp"].to_numpy().view(np.int64)
    amount = raw["amount"].to_numpy()
    n = int(customer.max()) + 1
    sale = amount >= 0
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, customer[sale], ns[sale])
    n_orders = int(order.max()) + 1
    order_has_sale = np.zeros(n_orders, dtype=bool)
    order_has_sale[order[sale]] = True
    order_customer = np.empty(n_orders, dtype=np.int64)
    order_customer[order] = customer
    frequency = np.bincount(order_customer[order_has_sale], minlength=n)
    monetary = np.bincount(customer, weights=amount, minlength=n)
    recency_days = np.where(frequency > 0, (ns.max() - last) / 86_400e9, np.nan)
    return _numpy_scores(
        {
            "customer_id": np.arange(n),
            "recency_days": recency_days,
            "frequency": frequency,
            "monetary": monetary,
        }
    )


def sk_pipeline(frame: Any) -> tuple[Any, Any]:
    import segmentkit as sk

    tx = sk.Transactions.from_frame(frame, **MAPPING)
    features = sk.extract_features(tx)
    del tx
    segmentation = sk.RFMSegmenter().fit_predict(features)
    # A DuckDB relation is lazy: fetching it runs the query.
    return _materialised(segmentation), features


#: What RFMSegmenter reads: the work the hand-written peers do.
RFM_FEATURES = ["recency_days", "frequency", "monetary"]


def sk_rfm_only(frame: Any) -> tuple[Any, Any]:
    import segmentkit as sk

    tx = sk.Transactions.from_frame(frame, **MAPPING)
    features = sk.extract_features(tx, features=RFM_FEATURES)
    del tx
    segmentation = sk.RFMSegmenter().fit_predict(features)
    return _materialised(segmentation), features


def _materialised(frame: Any) -> Any:
    if hasattr(frame, "toPandas"):  # Spark: the per-customer result, to the driver
        return frame.toPandas()
    if hasattr(frame, "to_arrow_table"):
        return frame.to_arrow_table()
    if hasattr(frame, "fetch_arrow_table"):  # older DuckDB
        return frame.fetch_arrow_table()
    return frame


def sk_full(frame: Any) -> tuple[Any, Any]:
    from synthetic import COLUMN_MAPPING

    import segmentkit as sk

    tx = sk.Transactions.from_frame(frame, **COLUMN_MAPPING)
    features = sk.extract_features(tx)
    del tx
    return sk.RFMSegmenter().fit_predict(features), features


def pandas_tutorial(raw: Any) -> Any:
    """RFM as blog posts write it (per-customer lambdas, qcut, text concatenation)."""
    import pandas as pd

    snapshot = raw["timestamp"].max() + pd.Timedelta(days=1)
    rfm = raw.groupby("customer_id").agg(
        {
            "timestamp": lambda x: (snapshot - x.max()).days,
            "order_id": lambda x: x.nunique(),
            "amount": lambda x: x.sum(),
        }
    )
    rfm.columns = ["recency", "frequency", "monetary"]
    rfm["r_score"] = pd.qcut(rfm["recency"].rank(method="first"), 5, labels=[5, 4, 3, 2, 1])
    rfm["f_score"] = pd.qcut(rfm["frequency"].rank(method="first"), 5, labels=[1, 2, 3, 4, 5])
    rfm["m_score"] = pd.qcut(rfm["monetary"], 5, labels=[1, 2, 3, 4, 5])
    rfm["rfm_score"] = (
        rfm["r_score"].astype(str) + rfm["f_score"].astype(str) + rfm["m_score"].astype(str)
    )
    return rfm


def pandas_idiomatic(raw: Any) -> Any:
    """One group-by with named aggregations; scores by qcut on ranks (ties split)."""
    import pandas as pd

    as_of = raw["timestamp"].max()
    sale = raw["amount"] >= 0
    rfm = (
        raw.assign(sale_time=raw["timestamp"].where(sale), sale_order=raw["order_id"].where(sale))
        .groupby("customer_id", sort=False)
        .agg(
            last=("sale_time", "max"),
            frequency=("sale_order", "nunique"),
            monetary=("amount", "sum"),
        )
    )
    rfm["recency_days"] = (as_of - rfm["last"]) / pd.Timedelta(days=1)
    for score, column, ascending in (
        ("r_score", "recency_days", False),
        ("f_score", "frequency", True),
        ("m_score", "monetary", True),
    ):
        ranks = rfm[column].rank(method="first", ascending=ascending)
        rfm[score] = pd.qcut(ranks, 5, labels=False) + 1
    return rfm


def polars_rfm(frame: Any) -> Any:
    import polars as pl

    as_of = frame["timestamp"].max()
    sale = pl.col("amount") >= 0
    n = pl.len()

    def score(column: str, descending: bool) -> pl.Expr:
        ranks = pl.col(column).rank("ordinal", descending=descending).cast(pl.Int64)
        return (ranks - 1) * 5 // n + 1

    return (
        frame.lazy()
        .group_by("customer_id")
        .agg(
            last=pl.col("timestamp").filter(sale).max(),
            frequency=pl.col("order_id").filter(sale).n_unique(),
            monetary=pl.col("amount").sum(),
        )
        .with_columns(
            recency_days=(pl.lit(as_of) - pl.col("last")).dt.total_nanoseconds() / DAY_NS
        )
        .with_columns(
            r_score=score("recency_days", True),
            f_score=score("frequency", False),
            m_score=score("monetary", False),
        )
        .collect()
    )


DUCKDB_SQL = """
WITH c AS (
    SELECT customer_id,
           max(timestamp) FILTER (WHERE amount >= 0) AS last_sale,
           count(DISTINCT order_id) FILTER (WHERE amount >= 0) AS frequency,
           sum(amount) AS monetary
    FROM tx
    GROUP BY customer_id
), r AS (
    SELECT c.*, (epoch_ns(m.as_of) - epoch_ns(last_sale)) / 86400e9 AS recency_days
    FROM c, (SELECT max(timestamp) AS as_of FROM tx) m
)
SELECT customer_id, recency_days, frequency, monetary,
       ntile(5) OVER (ORDER BY recency_days DESC) AS r_score,
       ntile(5) OVER (ORDER BY frequency) AS f_score,
       ntile(5) OVER (ORDER BY monetary) AS m_score
FROM r
"""


def duckdb_sql(con: Any) -> Any:
    return _materialised(con.sql(DUCKDB_SQL))


def lifetimes_summary(raw: Any) -> Any:
    from lifetimes.utils import summary_data_from_transaction_data

    return summary_data_from_transaction_data(
        raw,
        "customer_id",
        "timestamp",
        monetary_value_col="amount",
        observation_period_end=raw["timestamp"].max(),
    )


def pymc_summary(raw: Any) -> Any:
    from pymc_marketing.clv.utils import rfm_summary

    return rfm_summary(
        raw,
        "customer_id",
        "timestamp",
        monetary_value_col="amount",
        observation_period_end=raw["timestamp"].max(),
    )


def pymc_segments(raw: Any) -> Any:
    from pymc_marketing.clv.utils import rfm_segments

    return rfm_segments(
        raw,
        "customer_id",
        "timestamp",
        monetary_value_col="amount",
        observation_period_end=raw["timestamp"].max(),
    )


# --------------------------------------------------------------------------- child


def _import_for(method: str) -> None:
    """Import what the method needs before the clock starts (paid once per process)."""
    import warnings

    warnings.filterwarnings("ignore")  # arviz and pymc announce migrations on import
    method = base_method(method)
    if method.startswith("sk_"):
        import segmentkit.engines  # noqa: F401
    if method in ("sk_polars", "sk_polars_rfm", "polars"):
        import polars  # noqa: F401
    if method in ("sk_duckdb", "sk_duckdb_rfm", "duckdb_sql"):
        import duckdb  # noqa: F401
    if method.startswith("sk_spark"):
        import pyspark.sql  # noqa: F401
    if method == "lifetimes":
        import lifetimes.utils  # noqa: F401
    if method.startswith("pymc"):
        import pymc_marketing.clv.utils  # noqa: F401


def load_input(engine: str, path: Path, columns: list[str] | None) -> Any:
    """The cached lines in an engine's own format, before any clock starts.

    ``pandas``: a DataFrame; ``polars``: a DataFrame; ``duckdb``: a connection holding
    them in the in-memory table ``tx``, as data in a warehouse would be.
    """
    import pandas as pd

    raw = pd.read_parquet(path, columns=columns)
    if engine == "pandas":
        return raw
    if engine == "polars":
        import polars as pl

        return pl.from_pandas(raw)
    if engine == "duckdb":
        import duckdb
        import pyarrow as pa

        con = duckdb.connect()
        arrow_lines = pa.Table.from_pandas(raw, preserve_index=False)
        del raw
        con.execute("CREATE TABLE tx AS SELECT * FROM arrow_lines")
        del arrow_lines
        return con
    msg = f"unknown engine {engine!r}"
    raise ValueError(msg)


def _prepare(method: str, path: Path) -> tuple[Any, Any]:
    """The method's input in its own format, and the callable to time."""
    import pandas as pd

    method = base_method(method)

    columns = None if method == "sk_full" else RFM_COLUMNS
    if method in ("sk_polars", "sk_polars_rfm", "polars"):
        frame = load_input("polars", path, columns)
        runner = {"sk_polars": sk_pipeline, "sk_polars_rfm": sk_rfm_only}
        return frame, runner.get(method, polars_rfm)
    if method in ("sk_duckdb", "sk_duckdb_rfm", "duckdb_sql"):
        con = load_input("duckdb", path, columns)
        if method == "duckdb_sql":
            return con, duckdb_sql
        return con.table("tx"), sk_rfm_only if method == "sk_duckdb_rfm" else sk_pipeline
    if method in ("sk_spark", "sk_spark_rfm"):
        lines = spark_session().read.parquet(str(_microsecond_copy(path))).select(*RFM_COLUMNS)
        return lines, sk_rfm_only if method == "sk_spark_rfm" else sk_pipeline
    raw = pd.read_parquet(path, columns=columns)
    runners = {
        "numpy_bound": numpy_bound,
        "numpy_direct": numpy_direct,
        "sk_pandas": sk_pipeline,
        "sk_pandas_rfm": sk_rfm_only,
        "sk_full": sk_full,
        "pandas_tutorial": pandas_tutorial,
        "pandas_idiomatic": pandas_idiomatic,
        "lifetimes": lifetimes_summary,
        "pymc_rfm_summary": pymc_summary,
        "pymc_rfm_segments": pymc_segments,
    }
    return raw, runners[method]


def _microsecond_copy(path: Path) -> Path:
    """The lines with timestamps cut to microseconds: Spark cannot read nanosecond ones
    from Parquet (recency moves by under a microsecond, far inside the comparison's
    tolerance)."""
    import pyarrow.parquet as pq

    copy = path.with_name(path.stem + "_us.parquet")
    if not copy.exists():
        tmp = copy.with_name(copy.name + ".tmp")
        table = pq.read_table(path)
        pq.write_table(table, tmp, coerce_timestamps="us", allow_truncated_timestamps=True)
        tmp.replace(copy)
    return copy


def spark_session() -> Any:
    """Local mode on the machine's 2 cores, configured as ``docs/scaling.md`` advises."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "8g")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )


def _per_customer(method: str, result: Any) -> dict[str, Any]:
    """R/F/M (and scores) per customer, in segmentkit's units where the tool allows.

    recency in days since the last purchase, frequency in orders, monetary as total
    spend; NaN where the tool has no such figure.
    """
    import numpy as np
    import pandas as pd

    method = base_method(method)
    if method.startswith("numpy"):
        frame = pd.DataFrame(result)
        if method == "numpy_direct":
            frame["customer_id"] = [f"C{i:07d}" for i in frame["customer_id"]]
        return _columns(frame)
    if method.startswith("sk_"):
        segmentation, features = result
        features = _to_pandas(_materialised(features))
        if "customer_id" not in features.columns:
            features = features.frame.reset_index() if hasattr(features, "frame") else features
        assignments = _to_pandas(
            segmentation.assignments if hasattr(segmentation, "assignments") else segmentation
        )
        merged = features[["customer_id", "recency_days", "frequency", "monetary"]].merge(
            assignments[["customer_id", "r_score", "f_score", "m_score"]], on="customer_id"
        )
        return _columns(merged)
    frame = _to_pandas(result)
    if "customer_id" not in frame.columns:
        frame = frame.reset_index()
    if method == "pandas_tutorial":
        # Whole days to "snapshot" (last timestamp + 1 day), every line counted.
        frame["recency_days"] = frame["recency"] - 1.0
        for score in ("r_score", "f_score", "m_score"):
            frame[score] = frame[score].astype(int)
    elif method in ("lifetimes", "pymc_rfm_summary"):
        # Repeat purchase days; "recency" is first to last purchase, T is first to end.
        frame["recency_days"] = frame["T"] - frame["recency"]
        frame["frequency"] = frame["frequency"] + 1
        frame["monetary"] = np.nan  # mean value of the repeat days: no total to compare
    elif method == "pymc_rfm_segments":
        # Purchase days (first included), days since the last one, mean value per day.
        frame["recency_days"] = frame["recency"]
        frame["monetary"] = frame["monetary_value"] * frame["frequency"]
        scores = frame["rfm_score"].astype(str)
        for i, score in enumerate(("r_score", "f_score", "m_score")):
            frame[score] = scores.str[i].astype(int)
    return _columns(frame)


def _to_pandas(frame: Any) -> Any:
    if hasattr(frame, "to_pandas"):
        return frame.to_pandas()
    return frame


def _columns(frame: Any) -> dict[str, Any]:
    import numpy as np

    out = {"customer_id": np.asarray(frame["customer_id"].astype(str), dtype="U")}
    for name in ("recency_days", "frequency", "monetary", "r_score", "f_score", "m_score"):
        values = frame[name] if name in frame.columns else None
        out[name] = (
            np.full(len(frame), np.nan) if values is None else np.asarray(values, dtype=float)
        )
    return out


def run_child(method: str, path: Path, repeat: int, rfm_out: Path) -> dict[str, Any]:
    import numpy as np

    _import_for(method)
    started = time.perf_counter()
    payload, run = _prepare(method, path)
    prepare_seconds = time.perf_counter() - started
    load_before = os.getloadavg()[0]
    seconds: list[float] = []
    peaks: list[int] = []
    extras: list[int] = []
    reset_ok = True
    result = None
    for _ in range(repeat):
        result = None
        core._release_free_memory()
        before = core._current_rss()
        reset_ok &= core._reset_peak()
        started = time.perf_counter()
        result = run(payload)
        seconds.append(time.perf_counter() - started)
        peak = core._peak_rss()
        peaks.append(peak)
        extras.append(peak - before)
    load_after = os.getloadavg()[0]
    # After the measurements, so it costs nothing to the figures.
    np.savez(rfm_out, **_per_customer(method, result))
    return {
        "method": method,
        "label": METHODS[method][0],
        "prepare_seconds": prepare_seconds,
        "load_average_1min": [load_before, load_after],
        "seconds": seconds,
        "seconds_median": statistics.median(seconds),
        "seconds_min": min(seconds),
        "peak_rss_gib": max(peaks) / GIB,
        "extra_rss_gib": max(extras) / GIB,
        "peak_reset": reset_ok,
        "python": sys.executable,
        "versions": _versions(method),
        "src_files": core.loaded_sources() if method.startswith("sk_") else {},
        # Which segmentkit ran: this checkout, or a --baseline copy.
        "segmentkit_from": _segmentkit_home() if method.startswith("sk_") else None,
    }


def _segmentkit_home() -> str:
    import segmentkit

    return str(Path(segmentkit.__file__).resolve().parent.parent)


def _versions(method: str) -> dict[str, str | None]:
    names = ["numpy", "pandas", "pyarrow"]
    names += {
        "sk_polars": ["polars", "narwhals"],
        "sk_polars_rfm": ["polars", "narwhals"],
        "polars": ["polars"],
        "sk_duckdb": ["duckdb", "narwhals"],
        "sk_duckdb_rfm": ["duckdb", "narwhals"],
        "sk_spark": ["pyspark", "narwhals"],
        "sk_spark_rfm": ["pyspark", "narwhals"],
        "duckdb_sql": ["duckdb"],
        "lifetimes": ["lifetimes"],
        "pymc_rfm_summary": ["pymc-marketing", "pymc"],
        "pymc_rfm_segments": ["pymc-marketing", "pymc"],
    }.get(base_method(method), [])
    return {name: core._installed_version(name) for name in names}


# --------------------------------------------------------------------------- parent


def _python_for(method: str, args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The interpreter for a method, or why there is none."""
    if METHODS[method][1] == "main":
        return sys.executable, None
    python = Path(args.peers_python)
    if not python.exists():
        return None, f"no peers environment at {python} (run benchmarks/run_peers.sh)"
    module = "lifetimes.utils" if method == "lifetimes" else "pymc_marketing.clv.utils"
    check = subprocess.run(
        [str(python), "-W", "ignore", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["import failed"])[-1]
        return None, f"cannot import {module}: {last}"
    return str(python), None


def _spawn(
    method: str,
    rows: int,
    path: Path,
    args: argparse.Namespace,
    baseline: tuple[str, Path] | None = None,
) -> dict[str, Any]:
    """One method in a fresh process; with ``baseline`` = (revision, source tree), the
    same harness runs that revision's segmentkit instead of this one."""
    label = METHODS[method][0] + (f" @ {baseline[0]}" if baseline else "")
    base = {"method": method, "label": label, "rows": rows}
    if baseline:
        base["baseline"] = baseline[0]
    python, reason = _python_for(method, args)
    if python is None:
        return {**base, "error": f"not available: {reason}"}
    suffix = "_baseline" if baseline else ""
    rfm_out = args.cache / f"rfm_{method}{suffix}_{rows}.npz"
    env = None
    if baseline:
        env = {**os.environ, "PYTHONPATH": str(baseline[1] / "src")}
    rfm_out.unlink(missing_ok=True)
    command = [
        python,
        str(Path(__file__).resolve()),
        "--child",
        method,
        "--data",
        str(path),
        "--repeat",
        str(args.repeat),
        "--rfm-out",
        str(rfm_out),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timed out ({args.timeout:.0f} s)"}
    lines = [line for line in done.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        optional = ("sk_polars", "sk_duckdb", "sk_spark")
        prefix = "not available: " if method.startswith(optional) else ""
        return {**base, "error": f"{prefix}exit code {done.returncode}: {last}"}
    result = json.loads(lines[-1][len(_RESULT_PREFIX) :])
    result.update(base)
    result["rfm_file"] = str(rfm_out)
    return result


def baseline_tree(revision: str, cache: Path) -> Path:
    """A clean copy of ``revision``'s sources (``git archive``), reused between runs."""
    commit = subprocess.run(
        ["git", "-C", str(core.REPO), "rev-parse", "--verify", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    tree = cache / f"baseline-{commit[:12]}"
    if not (tree / "src" / "segmentkit" / "__init__.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(core.REPO), "archive", commit, "src"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def agreement(reference: Path, other: Path) -> dict[str, Any]:
    """How far a method's per-customer R/F/M are from segmentkit's (shares of customers)."""
    import numpy as np
    import pandas as pd

    def load(path: Path) -> Any:
        with np.load(path) as data:
            frame = pd.DataFrame({name: data[name] for name in data.files})
        return frame.set_index("customer_id")

    ref = load(reference)
    got = load(other).reindex(ref.index)
    out: dict[str, Any] = {
        "customers": len(load(other)),
        "customers_reference": len(ref),
        "missing_customers": int(got["frequency"].isna().sum()),
    }
    both = got["frequency"].notna().to_numpy()

    def share(mask: Any) -> float | None:
        return round(float(mask[both].mean()), 6) if both.any() else None

    r_ref, r_got = ref["recency_days"].to_numpy(), got["recency_days"].to_numpy()
    out["frequency_equal"] = share(ref["frequency"].to_numpy() == got["frequency"].to_numpy())
    if np.isnan(got["monetary"].to_numpy()[both]).all():
        out["monetary_equal"] = None
    else:
        out["monetary_equal"] = share(
            np.isclose(
                ref["monetary"].to_numpy(), got["monetary"].to_numpy(), rtol=1e-9, atol=1e-6
            )
        )
    out["recency_equal"] = share(np.isclose(r_ref, r_got, rtol=0, atol=1e-6, equal_nan=True))
    out["recency_whole_days_equal"] = share(
        (np.floor(r_ref) == np.floor(r_got)) | (np.isnan(r_ref) & np.isnan(r_got))
    )
    for score in ("r_score", "f_score", "m_score"):
        values = got[score].to_numpy()
        out[f"{score}_equal"] = (
            None if np.isnan(values[both]).all() else share(ref[score].to_numpy() == values)
        )
    return out


def _with_ratios(results: list[dict[str, Any]]) -> None:
    for rows in {r["rows"] for r in results}:
        same = {
            r["method"]: r
            for r in results
            if r["rows"] == rows and "error" not in r and not r.get("baseline")
        }
        for r in results:
            if r["rows"] != rows or "error" in r:
                continue
            # Against the bound on the same kind of ids.
            suffix = "_uuid" if r["method"].endswith("_uuid") else ""
            for bound in ("numpy_bound", "numpy_direct"):
                if bound + suffix in same:
                    seconds = same[bound + suffix]["seconds_median"]
                    r[f"time_vs_{bound}"] = r["seconds_median"] / seconds


#: The native backends against the same engine used by hand, at every size.
_BACKEND_PEERS = {
    "sk_duckdb_rfm": "duckdb_sql",
    "sk_duckdb": "duckdb_sql",
    "sk_polars_rfm": "polars",
    "sk_polars": "polars",
}
#: Every feature of a path against its R/F/M only run, on the same backend.
_FULL_VS_RFM = {
    "sk_pandas": "sk_pandas_rfm",
    "sk_polars": "sk_polars_rfm",
    "sk_duckdb": "sk_duckdb_rfm",
    "sk_spark": "sk_spark_rfm",
}
#: On UUID ids, the pandas path against DuckDB SQL.
_UUID_PEERS = {"sk_pandas_rfm_uuid": "duckdb_sql_uuid", "sk_pandas_uuid": "duckdb_sql_uuid"}


def _ratio_targets(
    results: list[dict[str, Any]], pairs: dict[str, str], limit: float, wording: str
) -> list[dict[str, Any]]:
    """``method`` within ``limit`` times ``peer``'s median, for each pair, at every size;
    ``wording`` names the target from ``{method}`` and ``{peer}`` (their labels)."""
    out = []
    for rows in sorted({r["rows"] for r in results}):
        same = {
            r["method"]: r["seconds_median"]
            for r in results
            if r["rows"] == rows and "error" not in r and not r.get("baseline")
        }
        for method, peer in pairs.items():
            if method in same and peer in same:
                ratio = same[method] / same[peer]
                target = wording.format(method=METHODS[method][0], peer=METHODS[peer][0])
                detail = f"{ratio:.2f}x ({same[method]:.2f} s vs {same[peer]:.2f} s)"
                met = ratio <= limit
                out.append({"rows": rows, "target": target, "met": met, "detail": detail})
    return out


def backend_targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """R/F/M + scores on DuckDB and polars within 1.5x of the same engine by hand; every
    feature within 2x of the same backend's R/F/M only; on UUID ids, the pandas path no
    slower than DuckDB SQL."""
    return (
        _ratio_targets(results, _BACKEND_PEERS, 1.5, "{method} within 1.5x of {peer}")
        + _ratio_targets(results, _FULL_VS_RFM, 2.0, "{method} within 2x of {peer}")
        + _ratio_targets(results, _UUID_PEERS, 1.0, "{method} no slower than {peer}")
    )


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, judged on the largest size that has the methods involved."""
    out = backend_targets(results)
    for rows in sorted({r["rows"] for r in results}, reverse=True):
        same = {
            r["method"]: r
            for r in results
            if r["rows"] == rows and "error" not in r and not r.get("baseline")
        }
        if "sk_pandas" not in same:
            continue
        sk = same["sk_pandas"]
        t = sk["seconds_median"]

        def judge(name: str, ok: bool, detail: str, rows: int = rows) -> None:
            out.append({"rows": rows, "target": name, "met": bool(ok), "detail": detail})

        for peer in ("duckdb_sql", "polars"):
            if peer in same:
                p = same[peer]["seconds_median"]
                judge(f"R/F/M no slower than {peer}", t <= p, f"{t:.2f} s vs {p:.2f} s")
        for bound in ("numpy_bound", "numpy_direct"):
            if bound in same:
                b = same[bound]["seconds_median"]
                judge(f"R/F/M within 1.5x of {bound}", t <= 1.5 * b, f"{t / b:.2f}x ({t:.2f} s)")
        for peer in ("pymc_rfm_summary", "pymc_rfm_segments", "lifetimes"):
            if peer in same:
                p = same[peer]["seconds_median"]
                judge(f">= 4x faster than {peer}", p >= 4 * t, f"{p / t:.1f}x")
        peak = sk["peak_rss_gib"]
        judge("R/F/M peak RSS <= 1.5 GiB", peak <= 1.5, f"{peak:.2f} GiB")
        for method in ("sk_pandas", "sk_full"):
            old = next(
                (
                    r
                    for r in results
                    if r["rows"] == rows
                    and r["method"] == method
                    and r.get("baseline")
                    and "error" not in r
                ),
                None,
            )
            if old is not None and method in same:
                ratio = same[method]["seconds_median"] / old["seconds_median"]
                judge(
                    f"{METHODS[method][0]} within 10% of {old['baseline']}",
                    ratio <= 1.10,
                    f"{ratio:.2f}x ({same[method]['seconds_median']:.2f} s vs "
                    f"{old['seconds_median']:.2f} s)",
                )
        if "sk_full" in same:
            for bound in ("numpy_bound", "numpy_direct"):
                if bound in same:
                    f = same["sk_full"]["seconds_median"] / same[bound]["seconds_median"]
                    judge(f"full features within 3x of {bound}", f <= 3, f"{f:.2f}x")
        break
    return out


def markdown_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| rows | method | seconds (median) | × numpy bound | × direct-id bound "
        "| peak RSS (GiB) | extra RSS (GiB) | load (1 min) | F equal | M equal | R equal |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = list(METHODS)
    for r in sorted(
        results, key=lambda r: (r["rows"], order.index(r["method"]), bool(r.get("baseline")))
    ):
        head = f"| {r['rows']:,} | {r['label']}"
        if "error" in r:
            lines.append(f"{head} | {r['error'].replace('|', '/')} |||||||||")
            continue
        agree = r.get("agreement", {})

        def pct(key: str, agree: dict[str, Any] = agree) -> str:
            value = agree.get(key)
            return "n/a" if value is None else f"{100 * value:.1f} %"

        load = "–".join(f"{x:.1f}" for x in r["load_average_1min"])
        lines.append(
            f"{head} | {r['seconds_median']:.2f} "
            f"| {r.get('time_vs_numpy_bound', float('nan')):.2f} "
            f"| {r.get('time_vs_numpy_direct', float('nan')):.2f} "
            f"| {r['peak_rss_gib']:.2f}{'' if r.get('peak_reset', True) else ' †'} "
            f"| {r['extra_rss_gib']:.2f} | {load} "
            f"| {pct('frequency_equal')} | {pct('monetary_equal')} | {pct('recency_equal')} |"
        )
    return "\n".join(lines)


def targets_table(judged: list[dict[str, Any]]) -> str:
    lines = ["| rows | target | met | measured |", "|---:|---|---|---|"]
    for t in judged:
        met = "met" if t["met"] else "**missed**"
        lines.append(f"| {t['rows']:,} | {t['target']} | {met} | {t['detail']} |")
    return "\n".join(lines)


def update_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    start, end = readme.find(TABLE_START), readme.find(TABLE_END)
    if start < 0 or end < start:
        print(f"no {TABLE_START} / {TABLE_END} markers in {README}; not updated", file=sys.stderr)
        return
    readme = readme[: start + len(TABLE_START)] + "\n" + text + "\n" + readme[end:]
    README.write_text(readme, encoding="utf-8")


def _machine() -> dict[str, Any]:
    with contextlib.suppress(Exception):
        return core._machine()
    return {"platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--peers-python", default=str(DEFAULT_PEERS_PYTHON))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per child")
    parser.add_argument("--merge", action="store_true", help="keep other results already in --out")
    parser.add_argument("--readme", action="store_true", help="rewrite the README table")
    parser.add_argument(
        "--render",
        action="store_true",
        help="rewrite the table (and the README's with --readme) from --out, running nothing",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also time segmentkit's pandas methods at git revision REV, in the same run "
        "(each right after the current code), and judge them within 10%%",
    )
    parser.add_argument("--child", choices=list(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rfm-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    if args.child:
        result = run_child(args.child, args.data, args.repeat, args.rfm_out)
        print(_RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    if args.render:
        results = json.loads(args.out.read_text(encoding="utf-8"))["results"]
        _with_ratios(results)
        table = markdown_table(results) + "\n\n" + targets_table(targets(results))
        print(table)
        if args.readme:
            update_readme(table)
        return 0

    results: list[dict[str, Any]] = []
    if args.merge and args.out.exists():
        previous = json.loads(args.out.read_text(encoding="utf-8")).get("results", [])
        rerun = {(rows, m) for rows in args.rows for m in args.methods}
        results = [r for r in previous if (r["rows"], r["method"]) not in rerun]
    for rows in args.rows:
        references: dict[str, Path] = {}
        for method in args.methods:
            _, _, ids, max_rows = METHODS[method]
            print(f"{rows:>12,} rows  {METHODS[method][0]:<46}", end="", flush=True)
            if max_rows is not None and rows > max_rows:
                results.append(
                    {
                        "method": method,
                        "label": METHODS[method][0],
                        "rows": rows,
                        "error": f"not run above {max_rows:,} rows (see README)",
                    }
                )
                print("  skipped", flush=True)
                continue
            path = ensure_data(args.cache, rows, args.seed, ids)
            result = _spawn(method, rows, path, args)
            results.append(result)
            if "error" in result:
                print(f"  {result['error']}", flush=True)
                continue
            if method in ("sk_pandas", "sk_pandas_uuid"):
                references[ids] = Path(result["rfm_file"])
            if args.baseline and method in ("sk_pandas", "sk_full"):
                tree = baseline_tree(args.baseline, args.cache)
                print(f"{rows:>12,} rows  {'  … at ' + args.baseline:<46}", end="", flush=True)
                old = _spawn(method, rows, path, args, baseline=(args.baseline, tree))
                results.append(old)
                if "error" in old:
                    print(f"  {old['error']}", flush=True)
                else:
                    print(f"  {old['seconds_median']:8.2f} s", flush=True)
            print(
                f"  {result['seconds_median']:8.2f} s  peak {result['peak_rss_gib']:5.2f} GiB"
                f"  load {result['load_average_1min'][0]:.1f}",
                flush=True,
            )
        for r in results:
            # Each against segmentkit's pandas path on the same ids (a merged result of
            # an earlier run may have lost its file with the cache).
            uuid = r["method"].endswith("_uuid")
            reference = references.get("uuid" if uuid else "str") or (
                args.cache / f"rfm_sk_pandas{'_uuid' if uuid else ''}_{rows}.npz"
            )
            if (
                r["rows"] == rows
                and "rfm_file" in r
                and reference.exists()
                and Path(r["rfm_file"]).exists()
            ):
                r["agreement"] = agreement(reference, Path(r["rfm_file"]))
    _with_ratios(results)
    judged = targets(results)
    document = {
        "benchmark": "peers",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python", "benchmarks/bench_peers.py", *(argv or sys.argv[1:])]),
        "machine": _machine(),
        "git": core._git_state(),
        "config": {"repeat": args.repeat, "seed": args.seed, "ids": "str (Arrow-backed)"},
        "results": results,
        "targets": judged,
    }
    core._write_json(args.out, document)
    table = markdown_table(results) + "\n\n" + targets_table(judged)
    print()
    print(table)
    if args.readme:
        update_readme(table)
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
