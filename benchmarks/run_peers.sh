#!/usr/bin/env bash
# One command from a fresh clone: environments, then the peer benchmark.
#   bash benchmarks/run_peers.sh                      # 1M and 10M rows, 3 runs each
#   bash benchmarks/run_peers.sh --rows 1000000       # any bench_peers.py options
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
    .venv/bin/pip install --quiet -e ".[parquet,polars,duckdb]"
fi
.venv/bin/python -c "import segmentkit, polars, duckdb, pyarrow" 2>/dev/null \
    || .venv/bin/pip install --quiet -e ".[parquet,polars,duckdb]"

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

exec .venv/bin/python benchmarks/bench_peers.py --readme "$@"
