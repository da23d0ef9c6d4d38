from __future__ import annotations

import os
from pathlib import Path

# OpenMP's worker threads spin-wait; on shared 2-core CI machines that makes small
# k-means fits 100x slower. One thread keeps the suite fast and changes no result.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd
import pytest

import segmentkit as sk

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
def sample_tx() -> sk.Transactions:
    raw, mapping = sk.datasets.load_sample()
    return sk.Transactions.from_frame(raw, **mapping)


@pytest.fixture(scope="session")
def sample_features(sample_tx: sk.Transactions) -> sk.CustomerFeatures:
    return sk.extract_features(sample_tx)


def orders(**columns: list) -> pd.DataFrame:
    """A small raw orders frame with the user's own column names."""
    return pd.DataFrame(columns)
