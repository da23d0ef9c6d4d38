"""Seeded, realistic browsing events (views, carts, checkouts, purchases).

Everything is generated with whole-array numpy operations – there is no Python
loop over customers, sessions or events – so tens of millions of events take
seconds. The same inputs and ``random_state`` always give the same frame, and
the order of the input rows does not matter.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segmentkit.errors import SegmentkitError

__all__ = ["EVENT_TYPES", "generate_events"]

#: Event types, in funnel order.
EVENT_TYPES = ("view", "add_to_cart", "checkout", "purchase")
_VIEW, _CART, _CHECKOUT, _PURCHASE = range(4)

#: Categories browsed when neither ``categories`` nor the transactions name any.
DEFAULT_CATEGORIES = (
    "electronics",
    "fashion",
    "home",
    "beauty",
    "sports",
    "books",
    "toys",
    "grocery",
)

# Behaviour constants (documented in generate_events' Notes).
_SESSION_RATE_SHAPE = 0.7  # gamma shape of each customer's session rate: heavy tail
_VIEW_STOP_PROB = 0.3  # views per session ~ geometric(0.3), mean 3.3
_CART_PROB = 0.35  # share of browsing sessions that add to cart
_CHECKOUT_ONLY_PROB = 0.3  # share of abandoned carts that still reach checkout
_STAY_IN_CATEGORY_PROB = 0.75  # a view stays in the session's category
_FAVOURITE_BETA = (2.0, 1.5)  # share of sessions in the favourite category, mean 0.57
_SYNTHETIC_PRODUCTS_PER_CATEGORY = 40
_DWELL_MEDIAN_S = np.array([25.0, 8.0, 60.0, 15.0])  # per event type
_DWELL_SIGMA = np.array([0.9, 0.6, 0.6, 0.5])
_MAX_DWELL_S = 1800.0
_THINK_MEAN_S = 4.0  # pause between leaving one page and the next event
_MAX_PURCHASE_LAG_MS = 120_000  # purchase event at most 2 minutes before the order
_DEFAULT_LEAD = pd.Timedelta(hours=1)  # default window starts 1 h before the first order
# Relative traffic per UTC hour of the day.
_HOURLY = np.array(
    [
        *[0.6, 0.4, 0.3, 0.25, 0.25, 0.3, 0.5, 0.8, 1.1, 1.3, 1.4, 1.5],
        *[1.6, 1.5, 1.5, 1.5, 1.6, 1.8, 2.0, 2.2, 2.3, 2.1, 1.6, 1.0],
    ]
)
_NS_PER_MS = 1_000_000
_NS_PER_HOUR = 3_600 * 1_000_000_000
_NS_PER_DAY = 24 * _NS_PER_HOUR
_MAX_WINDOW_NS = 2**62

_COLUMNS = [
    "customer_id",
    "timestamp",
    "event_type",
    "product_id",
    "category",
    "session_id",
    "duration_s",
]


class InvalidParameterError(SegmentkitError, ValueError):
    """A parameter of :func:`generate_events` has a wrong type or value."""


def _invalid(name: str, expected: str, value: object) -> InvalidParameterError:
    shown = repr(value)
    if isinstance(value, (pd.DataFrame, pd.Series, np.ndarray)) or len(shown) > 80:
        shown = f"{type(value).__name__} object"
    return InvalidParameterError(
        f"The {name!r} parameter of generate_events must be {expected}. Got {shown} instead."
    )


def _check_real(name: str, value: object, low: float, high: float) -> float:
    interval = f"[{low:g}, {'inf)' if math.isinf(high) else f'{high:g}]'}"
    expected = f"a float in the range {interval}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _invalid(name, expected, value)
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise _invalid(name, expected, value)
    return number


def _check_random_state(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise _invalid("random_state", "an int in the range [0, inf) or None", value)
    return int(value)


def _check_labels(name: str, value: object, *, allow_empty: bool) -> np.ndarray | None:
    """Validate a sequence of labels; return them as an object array of str."""
    if value is None:
        return None
    expected = "a sequence of str" + ("" if allow_empty else " with at least one element")
    expected += " or None"
    if isinstance(value, (str, bytes)) or not isinstance(
        value, (Sequence, np.ndarray, pd.Index, pd.Series)
    ):
        raise _invalid(name, expected, value)
    values = pd.Series(np.asarray(value, dtype=object), dtype=object)
    if len(values) == 0 and not allow_empty:
        raise _invalid(name, expected, value)
    if values.isna().any():
        raise _invalid(name, expected + " without missing values", value)
    return values.astype(str).to_numpy(dtype=object)


def _check_timestamp(name: str, value: object) -> int | None:
    """Parse ``start``/``end``; return nanoseconds since the epoch in UTC."""
    if value is None:
        return None
    expected = "a timestamp (str, datetime or pandas.Timestamp) or None"
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise _invalid(name, expected, value) from None
    if pd.isna(stamp):
        raise _invalid(name, expected, value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value)


@dataclass
class _Lines:
    """Transaction lines in canonical order, with integer codes."""

    customer: np.ndarray  # code into the customer table
    time_ns: np.ndarray  # int64, UTC
    product: np.ndarray | None  # object array of str / None, or None without product_id
    category: np.ndarray | None  # object array of str ("unknown" if missing), or None
    order_id: np.ndarray | None  # object array of str, or None without order_id


def _check_transactions(transactions: object) -> pd.DataFrame | None:
    if transactions is None:
        return None
    expected = (
        "a pandas DataFrame with the canonical columns 'customer_id' and 'timestamp' "
        "(optionally 'order_id', 'product_id', 'category') or None"
    )
    if not isinstance(transactions, pd.DataFrame):
        raise _invalid("transactions", expected, transactions)
    missing = [c for c in ("customer_id", "timestamp") if c not in transactions.columns]
    if missing:
        raise InvalidParameterError(
            f"The 'transactions' parameter of generate_events must be {expected}. "
            f"Missing column(s): {', '.join(map(repr, missing))}."
        )
    frame = transactions[
        [c for c in ("customer_id", "timestamp", "order_id", "product_id", "category")
         if c in transactions.columns]
    ]  # fmt: skip
    frame = frame[frame["customer_id"].notna() & frame["timestamp"].notna()]
    try:
        stamps = pd.to_datetime(frame["timestamp"], utc=True)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            "The 'transactions' parameter of generate_events has a 'timestamp' column that "
            f"cannot be read as date-times: {exc}"
        ) from None
    out = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(dtype=object),
            "time_ns": stamps.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").view("int64"),
        }
    )
    for column in ("order_id", "product_id"):
        if column in frame.columns:
            out[column] = _text_or_none(frame[column])
    if "category" in frame.columns:
        out["category"] = _text_or_none(frame["category"].fillna("unknown"))
    return out


def _text_or_none(values: pd.Series) -> np.ndarray:
    """Values as an object array of str, with ``None`` where missing."""
    present = values.notna().to_numpy()
    text = values.astype(str).to_numpy(dtype=object)
    return np.where(present, text, None)


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes that follow the sort order of ``values`` (missing -> -1) and the uniques."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), sort=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _stable_order(group: np.ndarray, rel_ms: np.ndarray, max_ms: int) -> np.ndarray:
    """Stable argsort by ``(group, rel_ms)``; ``0 <= rel_ms <= max_ms``.

    Both keys fit one int64 in all practical cases, and a stable sort of one
    array is several times faster than ``np.lexsort``.
    """
    n_groups = int(group.max()) + 1 if len(group) else 0
    if n_groups * (max_ms + 1) < 2**62:
        return np.argsort(group * (max_ms + 1) + rel_ms, kind="stable")
    return np.lexsort((rel_ms, group))


def _str_column(table: np.ndarray, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``table[codes]`` as pandas' default string column (``str`` in pandas 3)."""
    return pd.Series(table, dtype=str).array.take(codes)


def _sample_in_segments(
    rng: np.random.Generator, segment: np.ndarray, cdf: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """Draw one item per row from the weighted segment ``segment[row]``.

    ``cdf`` holds, segment after segment, each segment's cumulative weights scaled
    to end at 1; ``starts[s]`` is where segment ``s`` begins. Adding the segment
    number makes the whole array increasing, so one ``searchsorted`` serves all.
    """
    keyed = cdf + np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    u = rng.random(len(segment))
    # A small margin keeps u away from 0 and 1 so a draw never leaves its segment.
    target = segment + np.clip(u, 1e-12, 1 - 1e-12)
    index = np.searchsorted(keyed, target, side="left")
    return np.minimum(index, starts[segment + 1] - 1)


def generate_events(
    transactions: pd.DataFrame | None = None,
    *,
    customer_ids: Sequence[str] | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    sessions_per_customer: float = 6.0,
    abandonment_rate: float = 0.7,
    categories: Sequence[str] | None = None,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Generate realistic, seeded browsing events for a set of customers.

    Each customer gets a number of browsing sessions drawn from a gamma-Poisson
    (negative binomial) distribution, so a few customers browse a lot and many
    rarely. A session is a funnel: one or more product views, then possibly an
    ``add_to_cart``; a cart ends in ``checkout`` and ``purchase`` with probability
    ``1 - abandonment_rate`` and is abandoned otherwise (some abandoned carts still
    reach ``checkout``). Every customer has a favourite category that gets a
    skewed share of their sessions. When ``transactions`` are given, every real
    order also gets a session that ends in ``add_to_cart`` → ``checkout`` →
    ``purchase`` of one of the order's products shortly (at most two minutes)
    before the order's timestamp, so browsing agrees with buying.

    Parameters
    ----------
    transactions : pandas.DataFrame, optional
        Orders with canonical column names: ``customer_id`` and ``timestamp``
        (required), ``order_id``, ``product_id`` and ``category`` (optional). An
        order is one ``order_id`` of a customer, or without that column one
        customer and timestamp. Naive timestamps are taken as UTC. Rows with a
        missing customer or timestamp are ignored.
    customer_ids : sequence of str, optional
        Customers to generate events for. Defaults to the customers in
        ``transactions``; when both are given, only these customers get events and
        orders of other customers are ignored. One of the two is required.
    start, end : str or pandas.Timestamp, optional
        Time window of the events (inclusive); naive values are taken as UTC.
        Default: from one hour before the first transaction to the last one.
        Required without ``transactions``. Orders outside the window get no
        session, and sessions never leave the window.
    sessions_per_customer : float, default=6.0
        Mean number of browsing sessions per customer, on top of the sessions
        that lead to real orders. Must be >= 0.
    abandonment_rate : float, default=0.7
        Share of browsing sessions with a cart that end without a purchase, in
        [0, 1]. Sessions leading to real orders always end in a purchase.
    categories : sequence of str, optional
        Categories to browse. Defaults to the categories in ``transactions``, or
        a built-in list of eight e-commerce categories. Products come from the
        transactions where possible; categories without one get synthetic
        products (``"SKU-<category>-<n>"``).
    random_state : int or None, default=0
        Seed. The same seed and inputs give the same frame; ``None`` draws a
        fresh one.

    Returns
    -------
    pandas.DataFrame
        One row per event, sorted by ``customer_id`` then ``timestamp``, with
        columns ``customer_id`` (str), ``timestamp`` (``datetime64[ns, UTC]``),
        ``event_type`` (``"view"``, ``"add_to_cart"``, ``"checkout"`` or
        ``"purchase"``), ``product_id`` (str), ``category`` (str; ``"unknown"``
        for products of transactions without a category), ``session_id`` (str,
        ``"<customer_id>-<n>"`` with ``n`` counting the customer's sessions in
        time order) and ``duration_s`` (float, seconds spent on the page, at
        millisecond precision).

    Raises
    ------
    ValueError
        If a parameter has a wrong type or value; the message names it.

    Notes
    -----
    Views per session are geometric (mean 3.3); 35% of browsing sessions add to
    cart; page times are log-normal (median 25 s for a product page, 60 s for
    checkout) and the next event follows after the page time plus a short
    pause, so events are seconds to minutes apart. Sessions start more often in
    the (UTC) evening than at night. Events of one session are in funnel order
    even when two events share a timestamp.

    Examples
    --------
    >>> from segmentkit.datasets import generate_events
    >>> events = generate_events(
    ...     customer_ids=["a", "b", "c"], start="2024-01-01", end="2024-01-31", random_state=0
    ... )
    >>> print(*events.columns)
    customer_id timestamp event_type product_id category session_id duration_s
    >>> sorted(events["event_type"].unique())
    ['add_to_cart', 'checkout', 'purchase', 'view']
    >>> str(events["timestamp"].dtype)
    'datetime64[ns, UTC]'
    >>> events.equals(generate_events(
    ...     customer_ids=["c", "b", "a"], start="2024-01-01", end="2024-01-31", random_state=0
    ... ))
    True

    Browsing that leads to real orders:

    >>> import pandas as pd
    >>> orders = pd.DataFrame({
    ...     "customer_id": ["a", "a", "b"],
    ...     "timestamp": pd.to_datetime(
    ...         ["2024-01-05 10:00", "2024-01-20 18:30", "2024-01-09 12:00"]
    ...     ),
    ...     "product_id": ["p1", "p2", "p3"],
    ...     "category": ["books", "toys", "books"],
    ... })
    >>> events = generate_events(orders, sessions_per_customer=2, random_state=1)
    >>> purchases = events[events["event_type"] == "purchase"]
    >>> len(purchases) >= 3
    True
    >>> bool(events["timestamp"].max() <= pd.Timestamp("2024-01-20 18:30", tz="UTC"))
    True
    """
    rate = _check_real("sessions_per_customer", sessions_per_customer, 0.0, math.inf)
    abandon = _check_real("abandonment_rate", abandonment_rate, 0.0, 1.0)
    seed = _check_random_state(random_state)
    wanted_categories = _check_labels("categories", categories, allow_empty=False)
    wanted_customers = _check_labels("customer_ids", customer_ids, allow_empty=True)
    start_ns = _check_timestamp("start", start)
    end_ns = _check_timestamp("end", end)
    lines_frame = _check_transactions(transactions)

    if lines_frame is None and wanted_customers is None:
        raise InvalidParameterError(
            "generate_events needs customers: pass the 'transactions' parameter (a frame "
            "with a 'customer_id' column) or the 'customer_ids' parameter."
        )

    # ---- window ---------------------------------------------------------------
    has_lines = lines_frame is not None and len(lines_frame) > 0
    if start_ns is None:
        if not has_lines:
            raise InvalidParameterError(
                "The 'start' parameter of generate_events is required when there are no "
                "transactions to take the time window from."
            )
        start_ns = int(lines_frame["time_ns"].min()) - _DEFAULT_LEAD.value
    if end_ns is None:
        if not has_lines:
            raise InvalidParameterError(
                "The 'end' parameter of generate_events is required when there are no "
                "transactions to take the time window from."
            )
        end_ns = int(lines_frame["time_ns"].max())
    if start_ns > end_ns:
        raise InvalidParameterError(
            f"The 'start' parameter of generate_events must not be after 'end'. Got "
            f"start={pd.Timestamp(start_ns, tz='UTC')} and end={pd.Timestamp(end_ns, tz='UTC')}."
        )
    if end_ns - start_ns >= _MAX_WINDOW_NS:
        raise InvalidParameterError(
            "The 'end' parameter of generate_events must be less than 146 years after 'start'."
        )

    # ---- customers --------------------------------------------------------------
    if wanted_customers is not None:
        customers = np.unique(wanted_customers) if len(wanted_customers) else wanted_customers
    else:
        customers = np.unique(lines_frame["customer_id"].to_numpy(dtype=object))
    customers = np.asarray(customers, dtype=object)
    n_customers = len(customers)

    lines = _prepare_lines(lines_frame, customers, start_ns, end_ns)
    rng = np.random.default_rng(seed)
    return _generate(
        rng,
        customers=customers,
        lines=lines,
        has_category_column=lines_frame is not None and "category" in lines_frame.columns,
        wanted_categories=wanted_categories,
        start_ns=start_ns,
        end_ns=end_ns,
        rate=rate,
        abandon=abandon,
        n_customers=n_customers,
    )


def _prepare_lines(
    frame: pd.DataFrame | None, customers: np.ndarray, start_ns: int, end_ns: int
) -> _Lines | None:
    """Keep lines of the chosen customers; sort them canonically."""
    if frame is None:
        return None
    codes = pd.Categorical(frame["customer_id"].to_numpy(dtype=object), categories=customers).codes
    customer = codes.astype(np.int64)
    keep = customer >= 0
    time_ns = frame["time_ns"].to_numpy(dtype=np.int64)
    product = frame["product_id"].to_numpy(dtype=object) if "product_id" in frame else None
    category = frame["category"].to_numpy(dtype=object) if "category" in frame else None
    order_id = frame["order_id"].to_numpy(dtype=object) if "order_id" in frame else None

    def sort_key(values: np.ndarray | None) -> np.ndarray:
        if values is None:
            return np.zeros(len(customer), dtype=np.int64)
        return _sorted_codes(values)[0]

    # Canonical order: customer, order, time, product, category (all by value), so the
    # result never depends on the order of the input rows.
    order = np.lexsort(
        (sort_key(category), sort_key(product), time_ns, sort_key(order_id), customer)
    )
    order = order[keep[order]]

    def take(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[order]

    lines = _Lines(
        customer=customer[order],
        time_ns=time_ns[order],
        product=take(product),
        category=take(category),
        order_id=take(order_id),
    )
    return lines


def _generate(
    rng: np.random.Generator,
    *,
    customers: np.ndarray,
    lines: _Lines | None,
    has_category_column: bool,
    wanted_categories: np.ndarray | None,
    start_ns: int,
    end_ns: int,
    rate: float,
    abandon: float,
    n_customers: int,
) -> pd.DataFrame:
    n_lines = 0 if lines is None else len(lines.customer)

    # ---- category universe and its popularity -----------------------------------
    line_category = lines.category if lines is not None and has_category_column else None
    if wanted_categories is not None:
        _, first = np.unique(wanted_categories, return_index=True)
        universe = wanted_categories[np.sort(first)]
    elif line_category is not None and n_lines:
        universe = np.unique(line_category)
    else:
        universe = np.array(DEFAULT_CATEGORIES, dtype=object)
    n_categories = len(universe)
    universe_index = pd.Index(universe)

    if line_category is not None and n_lines:
        line_cat_idx = universe_index.get_indexer(line_category).astype(np.int64)
    else:
        line_cat_idx = np.full(n_lines, -1, dtype=np.int64)
    counts = np.bincount(line_cat_idx[line_cat_idx >= 0], minlength=n_categories)
    if counts.sum() > 0:
        category_weight = counts + 1.0
    else:
        category_weight = 1.0 / np.sqrt(np.arange(1, n_categories + 1))
    category_cdf = np.cumsum(category_weight / category_weight.sum())
    category_cdf[-1] = 1.0

    # ---- product catalogue: real products per category, else synthetic -----------
    if lines is not None and lines.product is not None and line_category is not None:
        has_product = pd.notna(lines.product)
        pairs = pd.DataFrame(
            {
                "product": lines.product[has_product],
                "category": line_cat_idx[has_product],
            }
        )
        pairs = pairs[pairs["category"] >= 0]
        sizes = pairs.groupby(["product", "category"], sort=True).size().reset_index(name="n")
        # Each product belongs to its most frequent category (ties: first category).
        sizes = sizes.sort_values(
            ["product", "n", "category"], ascending=[True, False, True], kind="mergesort"
        ).drop_duplicates("product")
        real_product = sizes["product"].to_numpy(dtype=object)
        real_category = sizes["category"].to_numpy(dtype=np.int64)
        real_weight = sizes["n"].to_numpy(dtype=np.float64)
    else:
        real_product = np.array([], dtype=object)
        real_category = np.array([], dtype=np.int64)
        real_weight = np.array([], dtype=np.float64)
    covered = np.bincount(real_category, minlength=n_categories) > 0
    empty = np.flatnonzero(~covered)
    n_syn = _SYNTHETIC_PRODUCTS_PER_CATEGORY
    syn_category = np.repeat(empty, n_syn)
    syn_rank = np.tile(np.arange(1, n_syn + 1), len(empty))
    syn_product = (
        pd.Series(["SKU-"] * len(syn_category), dtype=object)
        + pd.Series(syn_category + 1).astype(str).str.zfill(3).astype(object)
        + "-"
        + pd.Series(syn_rank).astype(str).str.zfill(3).astype(object)
    ).to_numpy(dtype=object)
    syn_weight = 1.0 / syn_rank
    cat_product = np.concatenate([real_product, syn_product]).astype(object)
    cat_category = np.concatenate([real_category, syn_category]).astype(np.int64)
    cat_weight = np.concatenate([real_weight, syn_weight])
    by_category = np.lexsort((np.arange(len(cat_category)), cat_category))
    cat_product = cat_product[by_category]
    cat_category = cat_category[by_category]
    cat_weight = cat_weight[by_category]
    seg_starts = np.searchsorted(cat_category, np.arange(n_categories + 1), side="left")
    seg_total = np.add.reduceat(cat_weight, seg_starts[:-1])
    within = np.cumsum(cat_weight) - np.repeat(
        np.cumsum(seg_total) - seg_total, np.diff(seg_starts)
    )
    product_cdf = within / np.repeat(seg_total, np.diff(seg_starts))
    product_cdf[seg_starts[1:] - 1] = 1.0

    def draw_category(n: int) -> np.ndarray:
        return np.searchsorted(category_cdf, rng.random(n), side="right").clip(0, n_categories - 1)

    def draw_product(category: np.ndarray) -> np.ndarray:
        return _sample_in_segments(rng, category, product_cdf, seg_starts)

    # ---- orders ----------------------------------------------------------------
    if n_lines:
        same_order = lines.customer[1:] == lines.customer[:-1]
        if lines.order_id is not None:
            same_order &= lines.order_id[1:] == lines.order_id[:-1]
        else:
            same_order &= lines.time_ns[1:] == lines.time_ns[:-1]
        order_first = np.flatnonzero(np.concatenate([[True], ~same_order]))
        order_size = np.diff(np.append(order_first, n_lines))
        # An order's time is its earliest line (lines are sorted by time within it).
        order_time = lines.time_ns[order_first]
        in_window = (order_time >= start_ns) & (order_time <= end_ns)
        order_first, order_size, order_time = (
            order_first[in_window],
            order_size[in_window],
            order_time[in_window],
        )
    else:
        order_first = order_size = order_time = np.array([], dtype=np.int64)
    n_orders = len(order_first)

    # ---- customer preferences ------------------------------------------------------
    favourite = draw_category(n_customers)
    if n_lines and (line_cat_idx >= 0).any():
        known = line_cat_idx >= 0
        pair = pd.DataFrame({"c": lines.customer[known], "k": line_cat_idx[known]})
        top = pair.groupby(["c", "k"], sort=True).size().reset_index(name="n")
        top = top.sort_values(["c", "n", "k"], ascending=[True, False, True], kind="mergesort")
        top = top.drop_duplicates("c")
        favourite[top["c"].to_numpy()] = top["k"].to_numpy()
    favourite_share = rng.beta(*_FAVOURITE_BETA, size=n_customers)

    # ---- browsing sessions -----------------------------------------------------------
    session_rate = rng.gamma(_SESSION_RATE_SHAPE, rate / _SESSION_RATE_SHAPE, n_customers)
    n_sessions = rng.poisson(session_rate)
    b_customer = np.repeat(np.arange(n_customers, dtype=np.int64), n_sessions)
    n_browse = len(b_customer)
    b_views = rng.geometric(_VIEW_STOP_PROB, n_browse).astype(np.int64)
    b_cart = rng.random(n_browse) < _CART_PROB
    b_buy = b_cart & (rng.random(n_browse) >= abandon)
    b_checkout = b_buy | (b_cart & (rng.random(n_browse) < _CHECKOUT_ONLY_PROB))
    b_category = np.where(
        rng.random(n_browse) < favourite_share[b_customer],
        favourite[b_customer],
        draw_category(n_browse),
    )

    # ---- sessions before real orders ------------------------------------------------
    o_customer = lines.customer[order_first] if n_orders else np.array([], dtype=np.int64)
    o_line = order_first + np.floor(rng.random(n_orders) * order_size).astype(np.int64)
    o_views = rng.geometric(_VIEW_STOP_PROB, n_orders).astype(np.int64)
    o_cat_idx = line_cat_idx[o_line] if n_orders else np.array([], dtype=np.int64)
    o_category = np.where(o_cat_idx >= 0, o_cat_idx, favourite[o_customer])

    # ---- all sessions: browsing first, then one per order ----------------------------
    s_customer = np.concatenate([b_customer, o_customer])
    s_views = np.concatenate([b_views, o_views])
    s_cart = np.concatenate([b_cart, np.ones(n_orders, dtype=bool)])
    s_checkout = np.concatenate([b_checkout, np.ones(n_orders, dtype=bool)])
    s_buy = np.concatenate([b_buy, np.ones(n_orders, dtype=bool)])
    s_category = np.concatenate([b_category, o_category]).astype(np.int64)
    n_all = len(s_customer)
    s_events = s_views + s_cart + s_checkout + s_buy
    n_events = int(s_events.sum())
    s_first = np.cumsum(s_events) - s_events
    e_session = np.repeat(np.arange(n_all, dtype=np.int64), s_events)
    e_step = np.arange(n_events, dtype=np.int64) - s_first[e_session]
    e_views = s_views[e_session]
    e_type = np.where(e_step < e_views, _VIEW, e_step - e_views + _CART)

    # Products: views stay in the session's category or wander; funnel events use
    # the product of the session's last view.
    is_view = e_type == _VIEW
    n_view_events = int(is_view.sum())
    view_category = np.where(
        rng.random(n_view_events) < _STAY_IN_CATEGORY_PROB,
        s_category[e_session[is_view]],
        draw_category(n_view_events),
    )
    view_item = draw_product(view_category)

    product_table = cat_product
    category_table = universe
    e_product = np.empty(n_events, dtype=np.int64)
    e_category = np.empty(n_events, dtype=np.int64)
    e_product[is_view] = view_item
    e_category[is_view] = cat_category[view_item]
    last_view = s_first + s_views - 1

    if n_orders:
        # The last view before an order is of the order's product (when known).
        o_last_view = last_view[n_browse:]
        if lines.product is not None:
            o_product = lines.product[o_line]
            known = pd.notna(o_product)
            products, product_code = np.unique(o_product[known].astype(str), return_inverse=True)
            e_product[o_last_view[known]] = len(product_table) + product_code
            product_table = np.concatenate([product_table, products.astype(object)])
            if line_category is not None:
                names = lines.category[o_line[known]]
            else:
                names = np.full(known.sum(), "unknown", dtype=object)
            cats, cat_code = np.unique(names.astype(str), return_inverse=True)
            e_category[o_last_view[known]] = len(category_table) + cat_code
            category_table = np.concatenate([category_table, cats.astype(object)])
    funnel = ~is_view
    source = last_view[e_session[funnel]]
    e_product[funnel] = e_product[source]
    e_category[funnel] = e_category[source]

    # ---- timing --------------------------------------------------------------------
    dwell_s = np.exp(
        np.log(_DWELL_MEDIAN_S[e_type]) + _DWELL_SIGMA[e_type] * rng.standard_normal(n_events)
    )
    dwell_ms = np.rint(np.minimum(dwell_s, _MAX_DWELL_S) * 1000.0).astype(np.int64)
    think_ms = np.rint(rng.exponential(_THINK_MEAN_S * 1000.0, n_events)).astype(np.int64)
    gap = dwell_ms + think_ms
    cumulative = np.cumsum(gap) - gap  # time of each event since the first event overall
    e_offset_ms = cumulative - cumulative[s_first][e_session] if n_events else cumulative
    s_span_ms = e_offset_ms[s_first + s_events - 1] if n_all else np.array([], dtype=np.int64)

    window = end_ns - start_ns
    e_offset = e_offset_ms * _NS_PER_MS
    s_span = s_span_ms * _NS_PER_MS
    # Browsing sessions longer than the window are squeezed into it.
    too_long = s_span > window
    too_long[n_browse:] = False  # order sessions are anchored to the order instead
    if too_long.any():
        squeeze = np.where(too_long, window / np.maximum(s_span, 1), 1.0)[e_session]
        e_offset = np.where(
            too_long[e_session], np.floor(e_offset * squeeze).astype(np.int64), e_offset
        )
        s_span = np.minimum(s_span, window)

    # Browsing session starts: a day, then an hour of that day by traffic, then
    # uniformly within the hour; starts that would leave the window fall back to
    # a uniform start inside it.
    room = window - s_span[:n_browse]
    day0 = start_ns - start_ns % _NS_PER_DAY
    n_days = (end_ns - day0) // _NS_PER_DAY + 1
    day = rng.integers(0, n_days, n_browse)
    hour = np.searchsorted(np.cumsum(_HOURLY / _HOURLY.sum()), rng.random(n_browse), side="right")
    hour = hour.clip(0, 23)
    minute = rng.integers(0, _NS_PER_HOUR // _NS_PER_MS, n_browse) * _NS_PER_MS
    candidate = (day0 - start_ns) + day * _NS_PER_DAY + hour * _NS_PER_HOUR + minute
    # Uniform start, whole milliseconds after ``start``.
    uniform = np.floor(rng.random(n_browse) * (room // _NS_PER_MS + 1.0)).astype(np.int64)
    uniform = np.minimum(uniform * _NS_PER_MS, room)
    b_start = start_ns + np.where((candidate >= 0) & (candidate <= room), candidate, uniform)

    # Order sessions end with the purchase shortly before the order.
    lag = rng.integers(0, _MAX_PURCHASE_LAG_MS + 1, n_orders) * _NS_PER_MS
    o_purchase_offset = e_offset[s_first[n_browse:] + s_events[n_browse:] - 1]
    o_start = order_time - lag - o_purchase_offset
    s_start = np.concatenate([b_start, o_start]).astype(np.int64)
    # Whole milliseconds after ``start`` (never before it, never later than computed).
    e_rel_ms = (np.maximum(s_start[e_session] + e_offset, start_ns) - start_ns) // _NS_PER_MS
    e_time = start_ns + e_rel_ms * _NS_PER_MS

    # ---- sort, session ids, frame ------------------------------------------------------
    e_customer = s_customer[e_session]
    # Events are generated session after session, step after step, so a stable sort
    # by (customer, time) breaks ties by session, then funnel step.
    order = _stable_order(e_customer, e_rel_ms, window // _NS_PER_MS)
    s_order = _stable_order(s_customer, e_rel_ms[s_first], window // _NS_PER_MS)
    s_rank = np.empty(n_all, dtype=np.int64)
    s_rank[s_order] = np.arange(n_all)
    first_rank = np.searchsorted(s_customer[s_order], np.arange(n_customers), side="left")
    s_number = s_rank - first_rank[s_customer] + 1
    session_names = (
        pd.Series(customers[s_customer], dtype=object)
        + "-"
        + pd.Series(s_number).astype(str).astype(object)
    ).to_numpy(dtype=object)

    e_session = e_session[order]
    timestamp = pd.DatetimeIndex(e_time[order].view("datetime64[ns]")).tz_localize("UTC")
    return pd.DataFrame(
        {
            "customer_id": _str_column(customers, e_customer[order]),
            "timestamp": timestamp,
            "event_type": _str_column(np.array(EVENT_TYPES, dtype=object), e_type[order]),
            "product_id": _str_column(product_table, e_product[order]),
            "category": _str_column(category_table, e_category[order]),
            "session_id": _str_column(session_names, e_session),
            "duration_s": dwell_ms[order] / 1000.0,
        },
        columns=_COLUMNS,
    )
