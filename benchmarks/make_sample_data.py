"""Build the sample data bundled with segmentkit from the Complete Journey sample.

Reads the 84.51° Complete Journey 75,000-line sample (CC0) from the shared data
folder and writes two small, deterministic gzip files into the package:

* ``src/segmentkit/datasets/data/transactions.csv.gz`` – every sampled line of a
  seeded random subset of households, with ``department`` and
  ``product_category`` joined from the product catalogue and one ``discount``
  column (sum of the three discount columns);
* ``src/segmentkit/datasets/data/customers.csv.gz`` – the demographics of those
  households that have any.

Usage (from the repository root)::

    python benchmarks/make_sample_data.py [SHARED_DATA_DIR] [--seed N]

``SHARED_DATA_DIR`` defaults to ``../shared/data`` relative to the repository
root and must contain ``completejourney_sample/``. Running the script twice gives
byte-identical files (gzip header written with ``mtime=0`` and no file name).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = REPO_ROOT / "src" / "segmentkit" / "datasets" / "data"

SEED = 8451
N_WITH_DEMOGRAPHICS = 400
N_WITHOUT_DEMOGRAPHICS = 400

ID_COLUMNS = ["household_id", "store_id", "basket_id", "product_id"]
TRANSACTION_COLUMNS = [
    "household_id",
    "basket_id",
    "product_id",
    "department",
    "product_category",
    "quantity",
    "sales_value",
    "discount",
    "transaction_timestamp",
    "store_id",
]


def _household_sort_key(ids: pd.Series) -> pd.Series:
    """Numeric order for numeric-looking ids (``"2" < "10"``), text otherwise."""
    return pd.to_numeric(ids, errors="coerce").fillna(np.inf)


def choose_households(
    transactions: pd.DataFrame, demographics: pd.DataFrame, seed: int
) -> tuple[list[str], list[str]]:
    """Pick households: half with demographics, half without, seeded.

    Returns the chosen households with and without demographics, each in
    ascending numeric order.
    """
    rng = np.random.default_rng(seed)
    in_sample = pd.Index(transactions["household_id"].unique())
    in_sample = in_sample.sort_values(key=_household_sort_key)
    has_demo = in_sample.isin(demographics["household_id"])
    with_demo = in_sample[has_demo]
    without_demo = in_sample[~has_demo]
    pick_with = rng.choice(len(with_demo), size=N_WITH_DEMOGRAPHICS, replace=False)
    pick_without = rng.choice(len(without_demo), size=N_WITHOUT_DEMOGRAPHICS, replace=False)
    chosen_with = with_demo[np.sort(pick_with)]
    chosen_without = without_demo[np.sort(pick_without)]
    return list(chosen_with), list(chosen_without)


def build(shared_dir: Path, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the transactions slice and its customers' demographics."""
    src = shared_dir / "completejourney_sample"
    ids = dict.fromkeys(ID_COLUMNS, str)
    transactions = pd.read_csv(src / "transactions_sample.csv.gz", dtype=ids)
    products = pd.read_csv(
        src / "products.csv.gz",
        dtype=str,
        usecols=["product_id", "department", "product_category"],
    )
    demographics = pd.read_csv(src / "demographics.csv.gz", dtype=str)
    if not products["product_id"].is_unique:
        raise ValueError("products.csv.gz has duplicate product ids; the join would add rows.")

    chosen_with, chosen_without = choose_households(transactions, demographics, seed)
    chosen = set(chosen_with) | set(chosen_without)

    lines = transactions[transactions["household_id"].isin(chosen)]
    lines = lines.merge(products, on="product_id", how="left", validate="many_to_one")
    discount = lines["retail_disc"] + lines["coupon_disc"] + lines["coupon_match_disc"]
    lines = lines.assign(
        discount=discount.round(2),
        sales_value=lines["sales_value"].round(2),
    )
    # Timestamps are zero-padded "YYYY-MM-DD HH:MM:SS" and basket ids all have
    # 11 digits, so text order is time order; the remaining keys only break
    # ties so the row order never depends on the input order.
    lines = lines.sort_values(
        ["transaction_timestamp", "basket_id", "product_id", "quantity", "sales_value"],
        kind="mergesort",
    )
    lines = lines[TRANSACTION_COLUMNS].reset_index(drop=True)

    customers = demographics[demographics["household_id"].isin(chosen)]
    customers = customers.sort_values("household_id", key=_household_sort_key, kind="mergesort")
    return lines, customers.reset_index(drop=True)


def write_csv_gz(frame: pd.DataFrame, path: Path) -> bytes:
    """Write ``frame`` as gzip CSV with deterministic bytes; return the bytes."""
    text = frame.to_csv(index=False, lineterminator="\n")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    data = buffer.getvalue()
    path.write_bytes(data)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "shared_dir",
        nargs="?",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "data",
        help="folder holding completejourney_sample/ (default: ../shared/data)",
    )
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    args = parser.parse_args(argv)

    lines, customers = build(args.shared_dir, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    tx_bytes = write_csv_gz(lines, args.out / "transactions.csv.gz")
    cu_bytes = write_csv_gz(customers, args.out / "customers.csv.gz")

    has_demo = lines["household_id"].isin(customers["household_id"])
    print(f"transactions.csv.gz: {len(lines):,} rows, {len(tx_bytes):,} bytes, "
          f"md5 {hashlib.md5(tx_bytes).hexdigest()}")  # fmt: skip
    print(f"customers.csv.gz: {len(customers):,} rows, {len(cu_bytes):,} bytes, "
          f"md5 {hashlib.md5(cu_bytes).hexdigest()}")  # fmt: skip
    print(f"households: {lines['household_id'].nunique():,} "
          f"({customers['household_id'].nunique():,} with demographics, "
          f"{int(has_demo.sum()):,} of their lines)")  # fmt: skip
    print(f"baskets: {lines['basket_id'].nunique():,}; "
          f"products: {lines['product_id'].nunique():,}; "
          f"stores: {lines['store_id'].nunique():,}")  # fmt: skip
    print(f"time range: {lines['transaction_timestamp'].min()} .. "
          f"{lines['transaction_timestamp'].max()}")  # fmt: skip
    print(f"sum sales_value: {lines['sales_value'].sum():,.2f}; "
          f"sum discount: {lines['discount'].sum():,.2f}")  # fmt: skip
    print(f"lines without department (product not in catalogue): "
          f"{int(lines['department'].isna().sum()):,}; without product_category: "
          f"{int(lines['product_category'].isna().sum()):,}")  # fmt: skip
    print(f"quantity == 0: {int((lines['quantity'] == 0).sum()):,}; "
          f"sales_value == 0: {int((lines['sales_value'] == 0).sum()):,}; "
          f"quantity > 100: {int((lines['quantity'] > 100).sum()):,} "
          f"(FUEL {int(((lines['quantity'] > 100) & (lines['department'] == 'FUEL')).sum()):,}, "
          f"max {int(lines['quantity'].max()):,})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
