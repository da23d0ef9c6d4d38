from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# OpenMP's worker threads spin-wait; on shared 2-core CI machines that makes small
# k-means fits 100x slower. One thread keeps the suite fast and changes no result.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Figures are drawn headless; the plot tests need no display, with or without pyplot.
os.environ.setdefault("MPLBACKEND", "Agg")

import pandas as pd
import pytest

import segmentkit as sk
from _backends import ENV, NAMES, PACKAGES, Backend, parse_selection, require

# --- backends: which frame libraries this run tests (tests/README.md) -------------------

SELECTED, _UNKNOWN = parse_selection(os.environ.get(ENV))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backends(*names): run a test taking the `backend` fixture only on these backends "
        "(among those SEGMENTKIT_TEST_BACKENDS selects); the others are deselected",
    )
    config.addinivalue_line(
        "markers",
        "requires(*packages): skip the test, with the reason, when a package is missing; "
        "the closest marker wins, so a test can override its module's with fewer packages",
    )
    if _UNKNOWN:
        raise pytest.UsageError(
            f"{ENV}={os.environ.get(ENV)!r} names unknown backends {_UNKNOWN}; use 'all' "
            f"or a comma-separated list of {', '.join(NAMES)}"
        )


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"segmentkit backends: {', '.join(SELECTED) or 'none'} ({ENV}=all runs {', '.join(NAMES)})"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A backend a test does not take is deselected, not skipped: a default run would
    # otherwise list every backend it leaves out as a skipped test.
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("backends")
        params = getattr(getattr(item, "callspec", None), "params", {})
        if marker is None or "backend" not in params:
            kept.append(item)
            continue
        unknown = set(marker.args) - set(NAMES)
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: unknown backends {sorted(unknown)}")
        (kept if params["backend"] in marker.args else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("requires")
    for package in marker.args if marker else ():
        require(package)


@pytest.fixture(params=SELECTED)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each selected backend in turn; skipped, with the reason, when it is not installed."""
    name = request.param
    require(PACKAGES[name], why=f"the {name} backend")
    session = request.getfixturevalue("spark") if name == "spark" else None
    return Backend(name, session)


def _java_version() -> int | None:
    java = shutil.which("java")
    if java is None and os.environ.get("JAVA_HOME"):
        java = str(pathlib.Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    if java is None or not pathlib.Path(java).exists():
        return None
    shown = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=120, check=False
    )
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown.stderr + shown.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session for the whole run, started by the first test that needs it.

    One core, one shuffle partition, no UI: Spark's own parallelism only slows tests down.
    """
    require("pyspark", why="Spark")
    version = _java_version()
    if version is None or version < 17:
        pytest.skip(f"PySpark needs Java 17+; found {version or 'no java'}")
    from pyspark.sql import SparkSession

    # Python workers (HDBSCAN's batches) must run this interpreter, which has segmentkit.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[1]")
        .appName("segmentkit-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.sql.session.timeZone", "UTC")
        # Naive pandas timestamps stay naive (TIMESTAMP_NTZ), as in the other engines.
        .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.adaptive.enabled", "false")
        # Test frames come from createDataFrame(pandas): their rows sit in the plan, and
        # this rule copies them into every branch of the features query (dozens of
        # per-customer tables), which exhausts the driver's heap. Real inputs are files or
        # tables, which the rule never touches (docs/scaling.md says so).
        .config(
            "spark.sql.optimizer.excludedRules",
            "org.apache.spark.sql.catalyst.optimizer.ConvertToLocalRelation",
        )
        # The default 1 GB heap ran out (a hang, no error) planning the full feature set
        # of the store in tests/test_backends.py once viewed-products features joined it.
        .config("spark.driver.memory", "4g")
        # Every per-customer table is a hash aggregate holding at least one memory page;
        # the full feature set runs dozens in one task, which ran out of pages
        # (AGGREGATE_OUT_OF_MEMORY) at the default page size on a tiny store.
        .config("spark.buffer.pageSize", "2m")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# --- shared data sets --------------------------------------------------------------------

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data set {relative} is not beside this checkout ({SHARED_DATA})")
    return path


@pytest.fixture(scope="session")
def cdnow_raw() -> pd.DataFrame:
    """The full CDNOW master file, as its README says to read it."""
    return pd.read_csv(
        _shared("cdnow/CDNOW_master.txt.gz"),
        sep=r"\s+",
        dtype={"customer_id": str, "date": str},
    )


@pytest.fixture(scope="session")
def cdnow_tx(cdnow_raw: pd.DataFrame) -> sk.Transactions:
    return sk.Transactions.from_frame(
        cdnow_raw,
        customer_id="customer_id",
        timestamp="date",
        amount="dollar_value",
        quantity="number_of_cds",
    )


@pytest.fixture(scope="session")
def journey_raw() -> pd.DataFrame:
    """The 75,000-line Complete Journey sample with product departments joined."""
    ids = {c: str for c in ["household_id", "store_id", "basket_id", "product_id"]}
    lines = pd.read_csv(_shared("completejourney_sample/transactions_sample.csv.gz"), dtype=ids)
    products = pd.read_csv(
        _shared("completejourney_sample/products.csv.gz"), dtype={"product_id": str}
    )
    lines = lines.merge(products[["product_id", "department"]], on="product_id", how="left")
    lines["discount"] = lines[["retail_disc", "coupon_disc", "coupon_match_disc"]].sum(axis=1)
    return lines


@pytest.fixture(scope="session")
def journey_tx(journey_raw: pd.DataFrame) -> sk.Transactions:
    return sk.Transactions.from_frame(
        journey_raw,
        customer_id="household_id",
        timestamp="transaction_timestamp",
        amount="sales_value",
        order_id="basket_id",
        product_id="product_id",
        category="department",
        quantity="quantity",
        discount="discount",
        timezone="America/New_York",
    )


@pytest.fixture(scope="session")
def completejourney_lines() -> pd.DataFrame:
    """The Complete Journey sample's lines merged with every product attribute."""
    ids = {c: str for c in ["household_id", "store_id", "basket_id", "product_id"]}
    lines = pd.read_csv(_shared("completejourney_sample/transactions_sample.csv.gz"), dtype=ids)
    products = pd.read_csv(
        _shared("completejourney_sample/products.csv.gz"),
        dtype={"product_id": str, "manufacturer_id": str},
    )
    return lines.merge(products, on="product_id", how="left")


@pytest.fixture(scope="session")
def sample_tx() -> sk.Transactions:
    raw, mapping = sk.datasets.load_sample()
    return sk.Transactions.from_frame(raw, **mapping)


@pytest.fixture(scope="session")
def sample_features(sample_tx: sk.Transactions) -> sk.CustomerFeatures:
    return sk.extract_features(sample_tx)


def orders(**columns: list) -> pd.DataFrame:
    """A small raw orders frame with the user's own column names."""
    return pd.DataFrame(columns)
