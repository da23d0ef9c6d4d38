#!/usr/bin/env bash
# One command from a fresh clone: environments, then every benchmark of the scale targets.
#   bash benchmarks/run_peers.sh                      # 1M and 10M rows, 3 runs each
#   bash benchmarks/run_peers.sh --rows 1000000       # any bench_peers.py options
#   PEERS_ONLY=1 bash benchmarks/run_peers.sh         # the peer benchmark alone
# After the peers (pandas, polars, DuckDB, Spark, lifetimes, pymc-marketing; about 30
# minutes on 2 cores), the clustering engines at 10k-1M customers (a full HDBSCAN fit of
# 1M takes about 8 minutes) and the out-of-core run (100M lines generated once, ~1.3 GB
# under benchmarks/.cache; about 10 minutes): about an hour in all. Each prints its
# table with every target met or missed.
# segmentkit's own environment is .venv (made with the polars and DuckDB extras when
# missing). lifetimes and pymc-marketing go to benchmarks/.venv-peers, never into
# segmentkit's dependencies; when they cannot be installed the benchmark reports them
# as not available and runs the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_BIN=${PYTHON_BIN:-python3}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON_BIN" -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e ".[parquet,polars,duckdb,spark]"
fi
.venv/bin/python -c "import segmentkit, polars, duckdb, pyarrow, pyspark" 2>/dev/null \
    || .venv/bin/pip install --quiet -e ".[parquet,polars,duckdb,spark]"

PEERS=benchmarks/.venv-peers
if [ ! -x "$PEERS/bin/python" ] \
    || ! "$PEERS/bin/python" -W ignore -c "import lifetimes.utils, pymc_marketing.clv.utils, pyarrow" 2>/dev/null; then
    "$PYTHON_BIN" -m venv "$PEERS"
    "$PEERS/bin/pip" install --quiet --upgrade pip || true
    # Each on its own, so one failing does not stop the other; the benchmark reports
    # whichever cannot be imported, with the reason.
    "$PEERS/bin/pip" install --quiet pyarrow lifetimes \
        || echo "lifetimes could not be installed (see pip's message above)" >&2
    "$PEERS/bin/pip" install --quiet pyarrow pymc-marketing \
        || echo "pymc-marketing could not be installed (see pip's message above)" >&2
fi

.venv/bin/python benchmarks/bench_peers.py --readme "$@"
if [ -z "${PEERS_ONLY:-}" ]; then
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_clustering.py \
        --customers 10000 100000 1000000
    .venv/bin/python benchmarks/bench_outofcore.py --check
fi
