"""Seeded, realistic browsing events (views, carts, checkouts, purchases).

Everything is generated with whole-array numpy operations – there is no Python
loop over customers, orders, sessions or events – so ten million events take
seconds. The same inputs and ``random_state`` always give the same frame, and
the order of the input rows does not matter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segmentkit._common._params import (
    NONE,
    InstanceOf,
    Interval,
    Satisfies,
    _shown,
    validated,
)
from segmentkit.errors import InvalidParameterError

__all__ = ["DEFAULT_CATEGORIES", "EVENT_TYPES", "generate_events"]

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

# Behaviour constants (described in the Notes of generate_events).
_SESSION_RATE_SHAPE = 0.7  # gamma shape of each customer's session rate: heavy tail
_VIEW_STOP_PROB = 0.3  # views per session ~ geometric(0.3), mean 3.3
_CART_PROB = 0.35  # share of browsing sessions that add to cart
_CHECKOUT_ONLY_PROB = 0.3  # share of abandoned carts that still reach checkout
_STAY_IN_CATEGORY_PROB = 0.75  # a view stays in the session's category
_FAVOURITE_BETA = (2.0, 1.5)  # share of sessions in the favourite category, mean 0.57
_SYNTHETIC_PRODUCTS_PER_CATEGORY = 40
_DWELL_MEDIAN_S = np.array([25.0, 8.0, 60.0, 15.0])  # per event type, funnel order
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
_UNKNOWN = "unknown"
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
_OPTIONAL_COLUMNS = ("order_id", "product_id", "category")


# ---- parameter checks ------------------------------------------------------------------


def _invalid(name: str, expected: str, value: object) -> InvalidParameterError:
    return InvalidParameterError(
        f"The {name!r} parameter of generate_events() must be {expected}. "
        f"Got {_shown(value)} instead."
    )


def _is_finite_non_negative(value: object) -> bool:
    return Interval(float, 0, None).is_satisfied_by(value) and math.isfinite(value)  # type: ignore[arg-type]


def _is_timestamp(value: object) -> bool:
    try:
        return not pd.isna(pd.Timestamp(value))
    except (TypeError, ValueError, OverflowError):
        return False


_LABEL_TYPES = (Sequence, np.ndarray, pd.Index, pd.Series)


def _is_labels(value: object) -> bool:
    # Sets are refused: their order, and so the generated data, would vary by run.
    return isinstance(value, _LABEL_TYPES) and not isinstance(value, str | bytes)


def _is_some_labels(value: object) -> bool:
    return _is_labels(value) and len(value) > 0  # type: ignore[arg-type]


_TIMESTAMP = [Satisfies(_is_timestamp, "a timestamp (str, datetime or pandas.Timestamp)"), NONE]


def _labels(name: str, value: object) -> np.ndarray | None:
    """The labels (checked a sequence by the declaration) as an object array of str."""
    if value is None:
        return None
    values = pd.Series(np.asarray(value, dtype=object).ravel(), dtype=object)
    if values.isna().any():
        raise _invalid(name, "a sequence of str without missing values or None", value)
    return values.astype(str).to_numpy(dtype=object)


def _timestamp_ns(value: object) -> int | None:
    """``start``/``end`` (checked parseable by the declaration) in nanoseconds, UTC."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value)


def _check_transactions(transactions: pd.DataFrame | None) -> pd.DataFrame | None:
    """Return the usable columns: ids as text, ``time_ns`` as int64 UTC nanoseconds."""
    if transactions is None:
        return None
    expected = (
        "a pandas DataFrame with the canonical columns 'customer_id' and 'timestamp' "
        "(optionally 'order_id', 'product_id', 'category') or None"
    )
    missing = [c for c in ("customer_id", "timestamp") if c not in transactions.columns]
    if missing:
        raise InvalidParameterError(
            f"The 'transactions' parameter of generate_events() must be {expected}. "
            f"Missing column(s): {', '.join(map(repr, missing))}."
        )
    usable = transactions["customer_id"].notna() & transactions["timestamp"].notna()
    frame = transactions[usable]
    try:
        stamps = pd.to_datetime(frame["timestamp"], utc=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidParameterError(
            "The 'transactions' parameter of generate_events() has a 'timestamp' column that "
            f"cannot be read as date-times: {exc}"
        ) from None
    out = pd.DataFrame(
        {
            "customer_id": _as_text(frame["customer_id"]).to_numpy(dtype=object),
            "time_ns": pd.DatetimeIndex(stamps).as_unit("ns").asi8,
        }
    )
    for column in _OPTIONAL_COLUMNS:
        if column in frame.columns:
            values = frame[column]
            present = values.notna().to_numpy()
            text = _as_text(values).to_numpy(dtype=object)
            out[column] = np.where(present, text, _UNKNOWN if column == "category" else None)
    return out


def _as_text(values: pd.Series) -> pd.Series:
    """Ids as text; whole-number floats (ints with gaps read as float) without ``.0``."""
    if pd.api.types.is_float_dtype(values.dtype):
        finite = values.dropna()
        if len(finite) and (finite == np.round(finite)).all() and finite.abs().max() < 2**53:
            return values.astype("Int64").astype(str)
    return values.astype(str)


# ---- helpers -----------------------------------------------------------------------------


def _sorted_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes that follow the sort order of ``values`` (missing -> -1), and the uniques."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), sort=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _stable_order(group: np.ndarray, rel_ms: np.ndarray, max_ms: int) -> np.ndarray:
    """Stable argsort by ``(group, rel_ms)`` with ``0 <= rel_ms <= max_ms``.

    Both keys fit one int64 in all practical cases, and a stable sort of one
    array is several times faster than :func:`numpy.lexsort`.
    """
    n_groups = int(group.max()) + 1 if len(group) else 0
    if n_groups * (max_ms + 1) < 2**62:
        return np.argsort(group * (max_ms + 1) + rel_ms, kind="stable")
    return np.lexsort((rel_ms, group))


def _first_per_group(group: np.ndarray, count: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Index of each group's most frequent item (ties: smallest item); by group order."""
    order = np.lexsort((item, -count, group))
    first = np.ones(len(order), dtype=bool)
    first[1:] = group[order][1:] != group[order][:-1]
    return order[first]


def _pair_counts(
    left: np.ndarray, right: np.ndarray, n_right: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct ``(left, right)`` integer pairs and how often each occurs."""
    keys, counts = np.unique(left * n_right + right, return_counts=True)
    return keys // n_right, keys % n_right, counts


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
    # The margin keeps every draw strictly inside its own segment.
    target = segment + np.clip(rng.random(len(segment)), 1e-9, 1 - 1e-9)
    index = np.searchsorted(keyed, target, side="left")
    return np.clip(index, starts[segment], starts[segment + 1] - 1)


@dataclass
class _Lines:
    """Transaction lines in canonical order, as integer codes."""

    customer: np.ndarray  # int64 code into the sorted customer table
    time_ns: np.ndarray  # int64, UTC
    order: np.ndarray | None  # int64 code of order_id (-1 missing); None without the column
    product: np.ndarray | None  # int64 code into product_names (-1 missing), or None
    product_names: np.ndarray
    category: np.ndarray | None  # int64 code into category_names, or None
    category_names: np.ndarray


def _prepare_lines(frame: pd.DataFrame, customers: np.ndarray) -> _Lines:
    """Keep the lines of ``customers``, coded and sorted by value."""
    customer = pd.Index(customers).get_indexer(frame["customer_id"].to_numpy(dtype=object))
    customer = customer.astype(np.int64)
    time_ns = frame["time_ns"].to_numpy(dtype=np.int64)
    empty = np.array([], dtype=object)
    order, _ = _sorted_codes(frame["order_id"]) if "order_id" in frame else (None, empty)
    product, product_names = (
        _sorted_codes(frame["product_id"]) if "product_id" in frame else (None, empty)
    )
    category, category_names = (
        _sorted_codes(frame["category"]) if "category" in frame else (None, empty)
    )

    zeros = np.zeros(len(customer), dtype=np.int64)
    # Canonical order: customer, order, time, product, category – all by value – so the
    # result never depends on the order of the input rows.
    keys = [
        zeros if category is None else category,
        zeros if product is None else product,
        time_ns,
        zeros if order is None else order,
        customer,
    ]
    rows = np.lexsort(keys)
    rows = rows[customer[rows] >= 0]

    def take(codes: np.ndarray | None) -> np.ndarray | None:
        return None if codes is None else codes[rows]

    return _Lines(
        customer=customer[rows],
        time_ns=time_ns[rows],
        order=take(order),
        product=take(product),
        product_names=product_names,
        category=take(category),
        category_names=category_names,
    )


# ---- the generator ---------------------------------------------------------------------------


@validated(
    transactions=[
        InstanceOf(
            (pd.DataFrame,),
            "a pandas DataFrame with the canonical columns 'customer_id' and 'timestamp' "
            "(optionally 'order_id', 'product_id', 'category')",
        ),
        NONE,
    ],
    customer_ids=[Satisfies(_is_labels, "a sequence of str"), NONE],
    start=_TIMESTAMP,
    end=_TIMESTAMP,
    sessions_per_customer=[Satisfies(_is_finite_non_negative, "a float in the range [0, inf)")],
    abandonment_rate=[Interval(float, 0, 1)],
    categories=[Satisfies(_is_some_labels, "a sequence of str with at least one element"), NONE],
    random_state=[Interval(int, 0, None), NONE],
)
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
    rate = float(sessions_per_customer)
    abandon = float(abandonment_rate)
    seed = None if random_state is None else int(random_state)
    wanted_categories = _labels("categories", categories)
    wanted_customers = _labels("customer_ids", customer_ids)
    start_ns = _timestamp_ns(start)
    end_ns = _timestamp_ns(end)
    frame = _check_transactions(transactions)

    if frame is None and wanted_customers is None:
        raise InvalidParameterError(
            "generate_events needs customers: pass the 'transactions' parameter (a frame "
            "with a 'customer_id' column) or the 'customer_ids' parameter."
        )
    has_lines = frame is not None and len(frame) > 0
    for name, value in (("start", start_ns), ("end", end_ns)):
        if value is None and not has_lines:
            raise InvalidParameterError(
                f"The {name!r} parameter of generate_events() is required when there are no "
                "transactions to take the time window from."
            )
    if start_ns is None or end_ns is None:
        # Checked above: without both bounds there are transaction lines to take them from.
        assert frame is not None
        if start_ns is None:
            start_ns = int(frame["time_ns"].min()) - _DEFAULT_LEAD.value
        if end_ns is None:
            end_ns = int(frame["time_ns"].max())
    if start_ns > end_ns:
        raise InvalidParameterError(
            "The 'start' parameter of generate_events() must not be after 'end'. Got "
            f"start={pd.Timestamp(start_ns, tz='UTC')} and end={pd.Timestamp(end_ns, tz='UTC')}."
        )
    if end_ns - start_ns >= _MAX_WINDOW_NS:
        raise InvalidParameterError(
            "The 'end' parameter of generate_events() must be less than 146 years after 'start'."
        )

    if wanted_customers is not None:
        customers = _sorted_codes(wanted_customers)[1]
    else:
        assert frame is not None  # checked above: one of the two is given
        customers = _sorted_codes(frame["customer_id"].to_numpy(dtype=object))[1]
    lines = _prepare_lines(frame, customers) if frame is not None else None
    return _generate(
        np.random.default_rng(seed),
        customers=customers,
        lines=lines,
        wanted_categories=wanted_categories,
        start_ns=start_ns,
        end_ns=end_ns,
        rate=rate,
        abandon=abandon,
    )


def _generate(
    rng: np.random.Generator,
    *,
    customers: np.ndarray,
    lines: _Lines | None,
    wanted_categories: np.ndarray | None,
    start_ns: int,
    end_ns: int,
    rate: float,
    abandon: float,
) -> pd.DataFrame:
    n_customers = len(customers)
    n_lines = 0 if lines is None else len(lines.customer)
    no_codes = np.array([], dtype=np.int64)

    # ---- category universe and its popularity ------------------------------------------
    line_category = None if lines is None else lines.category
    if wanted_categories is not None:
        _, first = np.unique(wanted_categories, return_index=True)
        universe = wanted_categories[np.sort(first)]
    elif lines is not None and line_category is not None and n_lines:
        universe = lines.category_names[np.unique(line_category)]
    else:
        universe = np.array(DEFAULT_CATEGORIES, dtype=object)
    n_categories = len(universe)
    if lines is not None and line_category is not None:
        name_to_universe = pd.Index(universe).get_indexer(lines.category_names)
        line_cat_idx = name_to_universe.astype(np.int64)[line_category]
    else:
        line_cat_idx = np.full(n_lines, -1, dtype=np.int64)
    counts = np.bincount(line_cat_idx[line_cat_idx >= 0], minlength=n_categories)
    if counts.sum() > 0:
        category_weight = counts + 1.0
    else:
        category_weight = 1.0 / np.sqrt(np.arange(1, n_categories + 1))
    category_cdf = np.cumsum(category_weight / category_weight.sum())
    category_cdf[-1] = 1.0

    # ---- product catalogue: real products per category, else synthetic ---------------
    if lines is not None and lines.product is not None:
        usable = (lines.product >= 0) & (line_cat_idx >= 0)
        product, category, n = _pair_counts(
            lines.product[usable], line_cat_idx[usable], n_categories
        )
        # Each product belongs to its most frequent category (ties: first category).
        pick = _first_per_group(product, n, category)
        real_product = lines.product_names[product[pick]]
        real_category = category[pick]
        real_weight = n[pick].astype(np.float64)
    else:
        real_product = np.array([], dtype=object)
        real_category = no_codes
        real_weight = np.array([], dtype=np.float64)
    uncovered = np.flatnonzero(np.bincount(real_category, minlength=n_categories) == 0)
    n_syn = _SYNTHETIC_PRODUCTS_PER_CATEGORY
    syn_category = np.repeat(uncovered, n_syn)
    syn_rank = np.tile(np.arange(1, n_syn + 1), len(uncovered))
    syn_product = (
        "SKU-"
        + pd.Series(syn_category + 1, dtype=np.int64).astype(str).str.zfill(3)
        + "-"
        + pd.Series(syn_rank, dtype=np.int64).astype(str).str.zfill(3)
    ).to_numpy(dtype=object)
    cat_product = np.concatenate([real_product, syn_product]).astype(object)
    cat_category = np.concatenate([real_category, syn_category]).astype(np.int64)
    cat_weight = np.concatenate([real_weight, 1.0 / syn_rank])
    by_category = np.argsort(cat_category, kind="stable")
    cat_product = cat_product[by_category]
    cat_category = cat_category[by_category]
    cat_weight = cat_weight[by_category]
    seg_starts = np.searchsorted(cat_category, np.arange(n_categories + 1), side="left")
    seg_size = np.diff(seg_starts)
    seg_total = np.add.reduceat(cat_weight, seg_starts[:-1])
    before = np.repeat(np.cumsum(seg_total) - seg_total, seg_size)
    product_cdf = (np.cumsum(cat_weight) - before) / np.repeat(seg_total, seg_size)
    product_cdf[seg_starts[1:] - 1] = 1.0

    def draw_category(n: int) -> np.ndarray:
        u = rng.random(n)
        return np.searchsorted(category_cdf, u, side="right").clip(0, n_categories - 1)

    def draw_product(category: np.ndarray) -> np.ndarray:
        return _sample_in_segments(rng, category, product_cdf, seg_starts)

    # ---- orders --------------------------------------------------------------------------
    if lines is not None and n_lines:
        same = lines.customer[1:] == lines.customer[:-1]
        if lines.order is not None:
            # Lines without an order id are grouped by timestamp instead.
            same &= lines.order[1:] == lines.order[:-1]
            same &= (lines.order[1:] >= 0) | (lines.time_ns[1:] == lines.time_ns[:-1])
        else:
            same &= lines.time_ns[1:] == lines.time_ns[:-1]
        order_first = np.flatnonzero(np.concatenate([[True], ~same]))
        order_size = np.diff(np.append(order_first, n_lines))
        # An order's time is its earliest line (lines are sorted by time within it).
        order_time = lines.time_ns[order_first]
        in_window = (order_time >= start_ns) & (order_time <= end_ns)
        order_first = order_first[in_window]
        order_size = order_size[in_window]
        order_time = order_time[in_window]
    else:
        order_first = order_size = order_time = no_codes
    n_orders = len(order_first)

    # ---- customer preferences ----------------------------------------------------------------
    favourite = draw_category(n_customers)
    known = line_cat_idx >= 0
    if lines is not None and known.any():
        # A customer's favourite is the category they bought most often.
        who, category, n = _pair_counts(lines.customer[known], line_cat_idx[known], n_categories)
        pick = _first_per_group(who, n, category)
        favourite[who[pick]] = category[pick]
    favourite_share = rng.beta(*_FAVOURITE_BETA, size=n_customers)

    # ---- browsing sessions -------------------------------------------------------------------
    session_rate = rng.gamma(_SESSION_RATE_SHAPE, rate / _SESSION_RATE_SHAPE, n_customers)
    b_customer = np.repeat(np.arange(n_customers, dtype=np.int64), rng.poisson(session_rate))
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

    # ---- sessions before real orders --------------------------------------------------------
    o_customer = lines.customer[order_first] if lines is not None and n_orders else no_codes
    o_line = order_first + np.floor(rng.random(n_orders) * order_size).astype(np.int64)
    o_views = rng.geometric(_VIEW_STOP_PROB, n_orders).astype(np.int64)
    o_cat_idx = line_cat_idx[o_line] if n_orders else no_codes
    o_category = np.where(o_cat_idx >= 0, o_cat_idx, favourite[o_customer])

    # ---- events of all sessions: browsing first, then one session per order ---------------
    always = np.ones(n_orders, dtype=bool)
    s_customer = np.concatenate([b_customer, o_customer])
    s_views = np.concatenate([b_views, o_views])
    s_checkout = np.concatenate([b_checkout, always])
    s_buy = np.concatenate([b_buy, always])
    s_category = np.concatenate([b_category, o_category]).astype(np.int64)
    s_events = s_views + np.concatenate([b_cart, always]) + s_checkout + s_buy
    n_sessions = len(s_customer)
    n_events = int(s_events.sum())
    s_first = np.cumsum(s_events) - s_events
    s_last_view = s_first + s_views - 1
    e_session = np.repeat(np.arange(n_sessions, dtype=np.int64), s_events)
    e_step = np.arange(n_events, dtype=np.int64) - s_first[e_session]
    e_views = s_views[e_session]
    e_type = np.where(e_step < e_views, _VIEW, e_step - e_views + _CART)

    # Views stay in the session's category or wander off; the funnel events are
    # about the product of the session's last view.
    is_view = e_type == _VIEW
    n_views = int(is_view.sum())
    view_category = np.where(
        rng.random(n_views) < _STAY_IN_CATEGORY_PROB,
        s_category[e_session[is_view]],
        draw_category(n_views),
    )
    view_product = draw_product(view_category)
    e_product = np.empty(n_events, dtype=np.int64)
    e_category = np.empty(n_events, dtype=np.int64)
    e_product[is_view] = view_product
    e_category[is_view] = cat_category[view_product]

    # Before an order, the last view is of the order's product (when known), with the
    # order line's category ("unknown" without a category column).
    product_table = np.concatenate([cat_product, lines.product_names if lines is not None else []])
    category_table = np.concatenate(
        [universe, lines.category_names if lines is not None else [], [_UNKNOWN]]
    ).astype(object)
    if lines is not None and n_orders and lines.product is not None:
        o_product = lines.product[o_line]
        has_product = o_product >= 0
        target = s_last_view[n_browse:][has_product]
        e_product[target] = len(cat_product) + o_product[has_product]
        if lines.category is not None:
            o_category_name = len(universe) + lines.category[o_line[has_product]]
        else:
            o_category_name = np.full(len(target), len(category_table) - 1)
        e_category[target] = o_category_name
    funnel = ~is_view
    source = s_last_view[e_session[funnel]]
    e_product[funnel] = e_product[source]
    e_category[funnel] = e_category[source]

    # ---- timing --------------------------------------------------------------------------------
    noise = rng.standard_normal(n_events)
    dwell_s = np.exp(np.log(_DWELL_MEDIAN_S[e_type]) + _DWELL_SIGMA[e_type] * noise)
    dwell_ms = np.rint(np.minimum(dwell_s, _MAX_DWELL_S) * 1000.0).astype(np.int64)
    think_ms = np.rint(rng.exponential(_THINK_MEAN_S * 1000.0, n_events)).astype(np.int64)
    gap = dwell_ms + think_ms
    elapsed = np.cumsum(gap) - gap  # since the very first event; exact in int64
    e_offset = (elapsed - elapsed[s_first][e_session]) * _NS_PER_MS
    s_span = e_offset[s_first + s_events - 1] if n_sessions else no_codes

    window = end_ns - start_ns
    # Browsing sessions longer than the window are squeezed into it (order sessions
    # are anchored to their order instead).
    too_long = s_span > window
    too_long[n_browse:] = False
    if too_long.any():
        squeeze = window / np.maximum(s_span, 1)
        squeezed = np.floor(e_offset * squeeze[e_session]).astype(np.int64)
        e_offset = np.where(too_long[e_session], squeezed, e_offset)
        s_span = np.where(too_long, window, s_span)

    # A browsing session starts on a random day, at an hour drawn from the daily
    # traffic curve; starts that would leave the window fall back to a uniform one.
    room = window - s_span[:n_browse]
    day0 = start_ns - start_ns % _NS_PER_DAY
    n_days = (end_ns - day0) // _NS_PER_DAY + 1
    day = rng.integers(0, n_days, n_browse)
    hour_cdf = np.cumsum(_HOURLY / _HOURLY.sum())
    hour = np.searchsorted(hour_cdf, rng.random(n_browse), side="right").clip(0, 23)
    within_hour = rng.integers(0, _NS_PER_HOUR // _NS_PER_MS, n_browse) * _NS_PER_MS
    candidate = (day0 - start_ns) + day * _NS_PER_DAY + hour * _NS_PER_HOUR + within_hour
    uniform = np.floor(rng.random(n_browse) * (room // _NS_PER_MS + 1.0)).astype(np.int64)
    uniform = np.minimum(uniform * _NS_PER_MS, room)
    b_start = np.where((candidate >= 0) & (candidate <= room), candidate, uniform) + start_ns

    # A session before an order ends with the purchase shortly before the order.
    lag = rng.integers(0, _MAX_PURCHASE_LAG_MS + 1, n_orders) * _NS_PER_MS
    o_start = order_time - lag - s_span[n_browse:]
    s_start = np.concatenate([b_start, o_start]).astype(np.int64)
    # Whole milliseconds after ``start``: never before it, never later than computed.
    e_rel_ms = (np.maximum(s_start[e_session] + e_offset, start_ns) - start_ns) // _NS_PER_MS
    e_time = start_ns + e_rel_ms * _NS_PER_MS

    # ---- sort, session ids, frame --------------------------------------------------------------
    e_customer = s_customer[e_session]
    # Events are laid out session after session, step after step, so a stable sort by
    # (customer, time) keeps a session's funnel order when timestamps tie.
    max_ms = window // _NS_PER_MS
    order = _stable_order(e_customer, e_rel_ms, max_ms)
    s_order = _stable_order(s_customer, e_rel_ms[s_first], max_ms)
    s_rank = np.empty(n_sessions, dtype=np.int64)
    s_rank[s_order] = np.arange(n_sessions)
    first_rank = np.searchsorted(s_customer[s_order], np.arange(n_customers), side="left")
    s_number = s_rank - first_rank[s_customer] + 1
    session_names = (
        pd.Series(customers[s_customer], dtype=object)
        + "-"
        + pd.Series(s_number, dtype=np.int64).astype(str).astype(object)
    ).to_numpy(dtype=object)

    timestamp = pd.DatetimeIndex(e_time[order].view("datetime64[ns]")).tz_localize("UTC")
    return pd.DataFrame(
        {
            "customer_id": _str_column(customers, e_customer[order]),
            "timestamp": timestamp,
            "event_type": _str_column(np.array(EVENT_TYPES, dtype=object), e_type[order]),
            "product_id": _str_column(product_table, e_product[order]),
            "category": _str_column(category_table, e_category[order]),
            "session_id": _str_column(session_names, e_session[order]),
            "duration_s": dwell_ms[order] / 1000.0,
        },
        columns=_COLUMNS,
    )
