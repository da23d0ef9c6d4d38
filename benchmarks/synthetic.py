"""Seeded, realistic synthetic order lines for the segmentkit benchmarks.

Every step is a whole-array numpy operation (no Python loop over customers,
orders or lines): ten million lines take 10-15 s and 2.3 GiB peak on one core.

The shape of the data, chosen to resemble an online store's order export:

* **customers**: ``n_rows / 6.7`` of them by default. Orders per customer are
  heavy-tailed (a discretised Lomax, shape 1.6): about 60 % bought once, about
  18 % twice, and about 0.1 % have 100 orders or more (capped at 400).
* **orders**: one timestamp and one ``order_id`` per order; 1 line plus a
  gamma-weighted (overdispersed) share of the rest, about 2.5 lines on average.
  Each customer is acquired at some point of the two years (more of them later:
  the store grows) and orders until the end of an exponential lifetime (longer
  for frequent buyers); times of day peak in the evening.
* **products**: a catalogue of ``max(500, n_rows / 200)`` products with
  Zipf-like popularity, each in one of 20 categories of very different sizes.
  Every customer has a favourite category that about 60 % of their lines come
  from.
* **prices**: log-normal unit price per product (category-dependent median,
  from a few to a few hundred), ``quantity`` mostly 1; ``amount`` is the price
  paid for the line: ``unit price × quantity − discount``.
* **discounts**: 0 on about 85 % of the lines, otherwise 10–50 % of the line.
* **returns**: about 3 % of the orders after a customer's first one are
  returns: every line of the order has negative ``quantity`` and ``amount``.

With ``extended=True`` three product and offer columns are added (drawn from a second
generator seeded from ``seed``, so the main draws are the same):

* **brand**: ``clip(n_products / 20, 50, 500)`` brands, each belonging to one
  category (every category has at least one), with Zipf popularity within it; every
  product has one brand. About 30 % of customers are brand-loyal: half of their lines
  from their favourite category are replaced by a product of their favourite brand
  (so ``product_id``, ``amount`` and ``discount`` of those lines differ from the
  frame without ``extended``).
* **department**: one of 7 departments per category.
* **promo_code**: 40 % of the orders holding a discounted line carry one of 40 codes
  (Zipf popularity; ``WELCOME`` is the most used) on every line; missing otherwise.

Rows come sorted by timestamp, as exports usually are. The same arguments always
give the same frame.

Usage::

    from synthetic import generate_transactions
    frame = generate_transactions(1_000_000, seed=0)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CATEGORIES",
    "COLUMN_MAPPING",
    "DEPARTMENTS",
    "EXTENDED_MAPPING",
    "generate_transactions",
]

#: The 20 product categories, with relative sizes (share of catalogue and of traffic).
CATEGORIES = (
    "grocery",
    "fashion",
    "home",
    "beauty",
    "electronics",
    "sports",
    "books",
    "toys",
    "garden",
    "health",
    "pets",
    "baby",
    "automotive",
    "office",
    "music",
    "games",
    "jewellery",
    "shoes",
    "kitchen",
    "outdoor",
)
_CATEGORY_WEIGHT = 1.0 / np.arange(1, len(CATEGORIES) + 1) ** 0.9
# Median unit price per category (log-normal around it, sigma 0.7).
_CATEGORY_PRICE = np.array(
    [4, 35, 30, 18, 120, 45, 14, 22, 28, 12, 15, 20, 60, 10, 16, 40, 90, 70, 25, 55], float
)

#: Keyword arguments for ``Transactions.from_frame`` (the generator uses canonical names).
COLUMN_MAPPING = {
    "customer_id": "customer_id",
    "timestamp": "timestamp",
    "amount": "amount",
    "order_id": "order_id",
    "product_id": "product_id",
    "category": "category",
    "quantity": "quantity",
    "discount": "discount",
}

#: ``COLUMN_MAPPING`` plus the columns of ``extended=True`` that the contract knows
#: (``department`` is a user attribute: mapped through ``attributes=`` where supported).
EXTENDED_MAPPING = {**COLUMN_MAPPING, "brand": "brand", "promo_code": "promo_code"}

#: Department of each category (same order as ``CATEGORIES``).
DEPARTMENTS = (
    "food",
    "fashion & beauty",
    "home",
    "fashion & beauty",
    "electronics & media",
    "sports & outdoor",
    "electronics & media",
    "family",
    "home",
    "health",
    "family",
    "family",
    "sports & outdoor",
    "electronics & media",
    "electronics & media",
    "electronics & media",
    "fashion & beauty",
    "fashion & beauty",
    "home",
    "sports & outdoor",
)
_DEPARTMENT_NAMES = tuple(sorted(set(DEPARTMENTS)))
_DEPARTMENT_OF_CATEGORY = np.array([_DEPARTMENT_NAMES.index(d) for d in DEPARTMENTS])
_BRAND_ZIPF = 1.1
_LOYAL_CUSTOMER_SHARE = 0.3
_LOYAL_LINE_SHARE = 0.5  # of a loyal customer's lines from the favourite category
_PROMO_ORDER_SHARE = 0.4  # of the orders holding a discounted line
_N_PROMO_CODES = 40
_PROMO_ZIPF = 1.2
#: Stream of the extended columns' generator (``default_rng([seed, _EXTENDED_STREAM])``).
_EXTENDED_STREAM = 16

ROWS_PER_CUSTOMER = 6.7
START = np.datetime64("2023-01-01T00:00:00", "ns")
END = np.datetime64("2025-01-01T00:00:00", "ns")

_ORDERS_SHAPE = 1.6  # Lomax shape of orders per customer: heavy tail
_ORDERS_SCALE = 1.3
_MAX_ORDERS = 400
_LINES_SHAPE = 1.5  # gamma shape of each order's line rate (overdispersion)
_FAVOURITE_SHARE = 0.6
_PRODUCT_ZIPF = 1.05
_RETURN_ORDER_SHARE = 0.03
_DISCOUNTED_SHARE = 0.15
_DISCOUNT_RATES = np.array([0.1, 0.15, 0.2, 0.3, 0.5])
_LIFETIME_MEAN_DAYS = 300.0
_NS_PER_DAY = 86_400 * 10**9


def generate_transactions(
    n_rows: int,
    *,
    n_customers: int | None = None,
    seed: int = 0,
    ids: str = "object",
    extended: bool = False,
) -> pd.DataFrame:
    """Synthetic order lines, one row per product line.

    Parameters
    ----------
    n_rows : int
        Number of lines (exact).
    n_customers : int, optional
        Number of distinct customers (exact; each has at least one line). Defaults to
        ``round(n_rows / 6.7)``.
    seed : int, default=0
        Seed of the random generator; the same seed gives the same frame.
    ids : {'object', 'str', 'int', 'uuid'}, default='object'
        How ``customer_id``, ``order_id``, ``product_id`` (and ``category``) are held:
        text such as ``"C0000123"``, ``"O000004567"``, ``"P00042"`` in object columns
        (what pandas 2 ``read_csv`` gives), the same text in pandas' string dtype
        ``"str"`` (what pandas 3 ``read_csv`` gives; Arrow-backed when pyarrow is
        installed), int64 ids (``category`` stays text), or ``"uuid"``: customer and
        order ids as random-looking UUID text (``"9f1c…-…"``, 36 characters, string
        dtype), which no prefix-and-number parsing can turn into array positions.
    extended : bool, default=False
        Add ``brand``, ``department`` and ``promo_code`` (text, held as ``ids`` says
        except for int ids) and make some customers brand-loyal (see the module's
        docstring). Without it the frame is the same as before these columns existed.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id, order_id, timestamp (datetime64[ns]), product_id,
        category, quantity (int64), amount, discount`` (then ``brand, department,
        promo_code`` with ``extended``) sorted by timestamp, with a RangeIndex.
    """
    if ids not in ("object", "str", "int", "uuid"):
        msg = f"ids must be 'object', 'str', 'int' or 'uuid', got {ids!r}."
        raise ValueError(msg)
    n_rows = int(n_rows)
    if n_rows <= 0:
        msg = f"n_rows must be positive, got {n_rows}."
        raise ValueError(msg)
    if n_customers is None:
        n_customers = max(1, round(n_rows / ROWS_PER_CUSTOMER))
    n_customers = int(n_customers)
    if not 1 <= n_customers <= n_rows:
        msg = f"n_customers must be between 1 and n_rows={n_rows}, got {n_customers}."
        raise ValueError(msg)
    rng = np.random.default_rng(seed)

    # Orders per customer: heavy-tailed, then shrunk if they would not fit in n_rows.
    lomax = _ORDERS_SCALE * (rng.random(n_customers) ** (-1.0 / _ORDERS_SHAPE) - 1.0)
    orders_per_customer = np.minimum(np.ceil(lomax), _MAX_ORDERS).astype(np.int64)
    np.maximum(orders_per_customer, 1, out=orders_per_customer)
    n_orders = int(orders_per_customer.sum())
    if n_orders > n_rows:
        shrink = (n_rows - n_customers) / (n_orders - n_customers)
        orders_per_customer = 1 + np.floor((orders_per_customer - 1) * shrink).astype(np.int64)
        n_orders = int(orders_per_customer.sum())
    order_customer = np.repeat(np.arange(n_customers), orders_per_customer)
    first_order_of = np.cumsum(orders_per_customer) - orders_per_customer
    rank_in_customer = np.arange(n_orders) - first_order_of[order_customer]

    # Lines per order: 1 each, the rest spread by a gamma-weighted multinomial (exact total).
    line_rate = rng.gamma(_LINES_SHAPE, 1.0, n_orders)
    line_rate /= line_rate.sum()
    lines_per_order = 1 + rng.multinomial(n_rows - n_orders, line_rate)
    del line_rate

    # Order times: acquisition skewed later, orders uniform over an exponential lifetime.
    span = (END - START).astype(np.int64)
    acquired = (rng.beta(1.3, 1.0, n_customers) * span).astype(np.int64)
    # Frequent buyers stay longer: about a day and a half per order on top of the draw.
    lifetime_days = rng.exponential(_LIFETIME_MEAN_DAYS, n_customers) + 1.5 * orders_per_customer
    lifetime = (lifetime_days * _NS_PER_DAY).astype(np.int64)
    lifetime = np.minimum(lifetime, span - acquired)
    offset = (rng.random(n_orders) * lifetime[order_customer]).astype(np.int64)
    offset[rank_in_customer == 0] = 0  # the first order is the acquisition
    day = (acquired[order_customer] + offset) // _NS_PER_DAY * _NS_PER_DAY
    # Time of day: evening peak (normal around 19:00, sd 4 h, wrapped).
    hour = np.mod(rng.normal(19.0, 4.0, n_orders), 24.0)
    order_ns = START.astype(np.int64) + day + (hour * 3_600e9).astype(np.int64)
    np.minimum(order_ns, END.astype(np.int64) - 1, out=order_ns)
    # A share of each customer's later orders are returns.
    is_return_order = (rank_in_customer > 0) & (rng.random(n_orders) < _RETURN_ORDER_SHARE)
    del offset, day, hour, rank_in_customer, first_order_of

    # Expand orders to lines.
    line_order = np.repeat(np.arange(n_orders), lines_per_order)
    line_customer = order_customer[line_order]
    del lines_per_order

    # Products: a catalogue sorted by category, Zipf popularity within each category.
    n_products = max(500, n_rows // 200)
    n_categories = len(CATEGORIES)
    category_p = _CATEGORY_WEIGHT / _CATEGORY_WEIGHT.sum()
    product_category = np.sort(rng.choice(n_categories, n_products, p=category_p))
    # Every category gets at least one product.
    product_category[:n_categories] = np.arange(n_categories)
    product_category.sort()
    category_start = np.searchsorted(product_category, np.arange(n_categories))
    rank_in_category = np.arange(n_products) - category_start[product_category]
    popularity = 1.0 / (1.0 + rank_in_category) ** _PRODUCT_ZIPF
    category_total = np.bincount(product_category, weights=popularity, minlength=n_categories)
    within_cdf = (
        np.cumsum(popularity) - np.r_[0.0, np.cumsum(category_total)[:-1]][product_category]
    )
    # Category c occupies (c, c + 1] of this global cdf: one searchsorted picks for all.
    global_cdf = product_category + within_cdf / category_total[product_category]
    global_cdf[np.r_[category_start[1:] - 1, n_products - 1]] = np.arange(1, n_categories + 1)
    unit_price = _CATEGORY_PRICE[product_category] * np.exp(rng.normal(0.0, 0.7, n_products))
    unit_price = np.round(np.maximum(unit_price, 0.5), 2)

    favourite = rng.choice(n_categories, n_customers, p=category_p)
    from_favourite = rng.random(n_rows) < _FAVOURITE_SHARE
    line_category = np.where(
        from_favourite,
        favourite[line_customer],
        rng.choice(n_categories, n_rows, p=category_p),
    )
    del from_favourite
    product = np.searchsorted(global_cdf, line_category + rng.random(n_rows), side="right")
    np.minimum(product, n_products - 1, out=product)
    del line_category
    if extended:
        # A second generator: the main one makes the same draws with or without brands.
        extra = np.random.default_rng([seed, _EXTENDED_STREAM])
        product_brand, n_brands = _brands(extra, product_category, popularity)
        _brand_loyalty(
            extra,
            product,
            product_brand,
            n_brands,
            favourite[line_customer] == product_category[product],
            line_customer,
            n_customers,
        )

    # Quantity, amount, discount, returns.
    quantity = 1 + rng.poisson(0.35, n_rows) * (rng.random(n_rows) < 0.4)
    gross = unit_price[product] * quantity
    rate = _DISCOUNT_RATES[rng.integers(0, len(_DISCOUNT_RATES), n_rows)]
    discount = np.where(rng.random(n_rows) < _DISCOUNTED_SHARE, np.round(gross * rate, 2), 0.0)
    del rate
    returned = is_return_order[line_order]
    discount[returned] = 0.0
    amount = np.round(gross - discount, 2)
    del gross
    sign = np.where(returned, -1, 1)
    amount *= sign
    quantity *= sign
    del returned, sign
    if extended:
        promo = _promo_codes(extra, discount > 0, line_order, n_orders)

    # Sort lines by time (stable: lines of one order stay together and in order).
    line_ns = order_ns[line_order]
    order = np.argsort(line_ns, kind="stable")
    line_ns = line_ns[order]
    line_order = line_order[order]
    line_customer = line_customer[order]
    product = product[order]
    quantity = quantity[order]
    amount = amount[order]
    discount = discount[order]
    if extended:
        promo = promo[order]
    del order

    # Ids: customers and orders get shuffled numbers so ids carry no information.
    customer_number = rng.permutation(n_customers)
    order_number = rng.permutation(n_orders)
    if ids == "int":
        customer_col = pd.Series(customer_number[line_customer])
        order_col = pd.Series(order_number[line_order])
        product_col = pd.Series(product.astype(np.int64))
    elif ids == "uuid":
        customer_col = _expand(_uuid_ids(customer_number, salt=1), line_customer)
        order_col = _expand(_uuid_ids(order_number, salt=2), line_order)
        product_col = _expand(_format_ids("P", np.arange(n_products), 6), product)
    else:
        customer_col = _expand(_format_ids("C", customer_number, 7), line_customer)
        order_col = _expand(_format_ids("O", order_number, 9), line_order)
        product_col = _expand(_format_ids("P", np.arange(n_products), 6), product)
    line_category_code = product_category[product]
    category_col = _expand(np.asarray(CATEGORIES, dtype=object), line_category_code)
    if ids in ("str", "uuid"):
        customer_col, order_col, product_col, category_col = (
            column.astype("str") for column in (customer_col, order_col, product_col, category_col)
        )

    columns = {
        "customer_id": customer_col,
        "order_id": order_col,
        "timestamp": pd.Series(line_ns.view("datetime64[ns]")),
        "product_id": product_col,
        "category": category_col,
        "quantity": quantity.astype(np.int64),
        "amount": amount,
        "discount": discount,
    }
    if extended:
        brand_names = _format_ids("B", np.arange(n_brands), 4)
        columns["brand"] = _expand(brand_names, product_brand[product])
        departments = np.asarray(_DEPARTMENT_NAMES, dtype=object)
        columns["department"] = _expand(departments, _DEPARTMENT_OF_CATEGORY[line_category_code])
        codes = np.asarray([None, *_promo_names()], dtype=object)
        columns["promo_code"] = _expand(codes, promo + 1)
        if ids in ("str", "uuid"):
            for name in ("brand", "department", "promo_code"):
                columns[name] = columns[name].astype("str")
    return pd.DataFrame(columns)


def _brands(
    rng: np.random.Generator, product_category: np.ndarray, popularity: np.ndarray
) -> tuple[np.ndarray, int]:
    """Each product's brand, and the number of brands.

    Brands belong to one category each (every category has one at least); a product
    takes a brand of its category, by the brands' Zipf popularity within it. A
    product's own popularity does not matter, so big brands span popular and niche
    products alike.
    """
    n_products = len(product_category)
    n_categories = len(CATEGORIES)
    n_brands = int(np.clip(n_products // 20, 50, 500))
    # Categories weighted by their share of the traffic.
    traffic = np.bincount(product_category, weights=popularity, minlength=n_categories)
    brand_category = np.sort(rng.choice(n_categories, n_brands, p=traffic / traffic.sum()))
    brand_category[:n_categories] = np.arange(n_categories)
    brand_category.sort()
    start = np.searchsorted(brand_category, np.arange(n_categories))
    rank = np.arange(n_brands) - start[brand_category]
    weight = 1.0 / (1.0 + rank) ** _BRAND_ZIPF
    total = np.bincount(brand_category, weights=weight, minlength=n_categories)
    within = np.cumsum(weight) - np.r_[0.0, np.cumsum(total)[:-1]][brand_category]
    # Category c occupies (c, c + 1] of this cdf, as for the products.
    cdf = brand_category + within / total[brand_category]
    cdf[np.r_[start[1:] - 1, n_brands - 1]] = np.arange(1, n_categories + 1)
    brand = np.searchsorted(cdf, product_category + rng.random(n_products), side="right")
    return np.minimum(brand, n_brands - 1), n_brands


def _brand_loyalty(
    rng: np.random.Generator,
    product: np.ndarray,
    product_brand: np.ndarray,
    n_brands: int,
    in_favourite: np.ndarray,
    line_customer: np.ndarray,
    n_customers: int,
) -> None:
    """Loyal customers: part of their favourite category's lines go to one brand.

    The favourite brand is the brand of the customer's first line in their favourite
    category (a popular product's brand, most of the time); ``product`` is changed in
    place to a product of that brand, uniformly among its products.
    """
    loyal = rng.random(n_customers) < _LOYAL_CUSTOMER_SHARE
    candidates = np.flatnonzero(in_favourite & loyal[line_customer])
    if len(candidates) == 0:
        return
    favourite_brand = np.full(n_customers, -1, dtype=np.int64)
    # Reversed assignment: the first line of each customer is written last and wins.
    favourite_brand[line_customer[candidates[::-1]]] = product_brand[product[candidates[::-1]]]
    switch = candidates[rng.random(len(candidates)) < _LOYAL_LINE_SHARE]
    by_brand = np.argsort(product_brand, kind="stable")
    brand_start = np.searchsorted(product_brand[by_brand], np.arange(n_brands))
    brand_size = np.bincount(product_brand, minlength=n_brands)
    brand = favourite_brand[line_customer[switch]]
    pick = (rng.random(len(switch)) * brand_size[brand]).astype(np.int64)
    product[switch] = by_brand[brand_start[brand] + pick]


def _promo_names() -> list[str]:
    return ["WELCOME", *(f"PROMO{i:02d}" for i in range(1, _N_PROMO_CODES))]


def _promo_codes(
    rng: np.random.Generator, discounted: np.ndarray, line_order: np.ndarray, n_orders: int
) -> np.ndarray:
    """Per line, the code (``0..n-1``) of its order's promotion, -1 for none."""
    order_discounted = np.zeros(n_orders, dtype=bool)
    order_discounted[line_order[discounted]] = True
    with_code = order_discounted & (rng.random(n_orders) < _PROMO_ORDER_SHARE)
    weight = 1.0 / np.arange(1, _N_PROMO_CODES + 1) ** _PROMO_ZIPF
    code = rng.choice(_N_PROMO_CODES, n_orders, p=weight / weight.sum())
    return np.where(with_code, code, -1)[line_order]


def _format_ids(prefix: str, numbers: np.ndarray, min_width: int) -> np.ndarray:
    """``prefix`` + zero-padded numbers as an object array of str, built digit-wise."""
    width = max(min_width, len(str(int(numbers.max()))) if len(numbers) else 1)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = (numbers[:, None] // powers % 10 + ord("0")).astype(np.uint8)
    raw = np.empty((len(numbers), width + 1), dtype=np.uint8)
    raw[:, 0] = ord(prefix)
    raw[:, 1:] = digits
    return raw.view(f"S{width + 1}").ravel().astype(f"U{width + 1}").astype(object)


def _uuid_ids(numbers: np.ndarray, salt: int) -> np.ndarray:
    """UUID-formatted text from distinct numbers: distinct, and random-looking.

    splitmix64's finaliser is a bijection on 64 bits, so distinct numbers give distinct
    halves; the second half mixes the number with another salt.
    """

    def mix(x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))

    base = numbers.astype(np.uint64)
    halves = np.stack([mix(base + np.uint64(salt)), mix(base ^ np.uint64(0x5DEECE66D * salt))])
    raw = np.ascontiguousarray(halves.T, dtype=">u8").view(np.uint8).reshape(len(numbers), 16)
    hex_digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    digits = np.empty((len(numbers), 32), dtype=np.uint8)
    digits[:, 0::2] = hex_digits[raw >> 4]
    digits[:, 1::2] = hex_digits[raw & 15]
    text = np.full((len(numbers), 36), ord("-"), dtype=np.uint8)
    for start, stop, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        text[:, at : at + stop - start] = digits[:, start:stop]
    return text.view("S36").ravel().astype("U36").astype(object)


def _expand(values: np.ndarray, codes: np.ndarray) -> pd.Series:
    # Lines share the str object of their customer, order or product: 8 bytes per line
    # plus one string per distinct id.
    return pd.Series(values[codes], dtype=object)


if __name__ == "__main__":
    import argparse
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ids", choices=["object", "str", "int", "uuid"], default="object")
    parser.add_argument("--extended", action="store_true", help="add brand, department, promo")
    args = parser.parse_args()
    started = time.perf_counter()
    frame = generate_transactions(args.rows, seed=args.seed, ids=args.ids, extended=args.extended)
    elapsed = time.perf_counter() - started
    print(frame.head(10).to_string())
    print(f"{len(frame):,} rows, {frame['customer_id'].nunique():,} customers in {elapsed:.1f} s")
