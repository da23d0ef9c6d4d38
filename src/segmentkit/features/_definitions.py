"""Every customer feature, declared once.

A feature is a :class:`FeatureDef`: its words (label, description, unit), its type and
meaning for the engines (dtype, direction, skew, the words that name clusters) and its
computation. A computation is an expression over *aggregations* (:class:`Agg`: count,
sum, min, max, nunique, argmax, share or last value of a column per customer, over
transaction lines, orders, events or visits, with a row filter — which may join the
events to the purchase lines — and a look-back window ending at ``as_of``), combined
by arithmetic, comparisons and :func:`where`. Two compilers read these expressions:
``_numpy`` (the pandas path: grouped numpy kernels) and ``_native`` (narwhals
expressions for polars, DuckDB, Spark, Dask). What does not fit the algebra
(profile pass-through and age) is a named :class:`Kernel`, which each compiler
implements once; visits (sessions) and abandoned carts are built by a shared
per-compiler kernel into a table of visits that the algebra then aggregates like any
other rows.

Adding a feature: append one :class:`FeatureDef` to the list it belongs to, document it
in ``docs/features.md`` and test it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AS_OF",
    "BOUGHT_JOIN",
    "BUDGET_UP_TO",
    "DERIVED",
    "PREMIUM_FROM",
    "PRICE_RATIO",
    "PURCHASE_WINDOWS",
    "ROWS",
    "ROW_COLUMNS",
    "Agg",
    "Expr",
    "FeatureDef",
    "Kernel",
    "aggregations",
    "days",
    "definition_of",
    "definitions",
    "present",
    "where",
]

Source = Literal["transactions", "events", "customers"]
Kind = Literal["numeric", "categorical", "datetime", "bool"]
Dtype = Literal["float64", "int64", "datetime", "string", "boolean", "object"]
Direction = Literal["higher_is_better", "lower_is_better", "neutral"]
#: What one row of the aggregated table is: a transaction line, an order (lines of one
#: order key), a browsing event, or a visit (events of one session).
Over = Literal["line", "order", "event", "session"]
How = Literal["count", "sum", "min", "max", "nunique", "argmax", "share", "last"]

#: Row filters each kind of row understands. Of lines: ``purchases`` (not returns),
#: ``returns``, and among purchases ``discounted`` (discount > 0), ``full_price`` (no
#: discount: 0 or missing), ``promo`` (a promo_code) and ``priced`` (a ``price_ratio``).
ROWS: dict[str, tuple[str, ...]] = {
    "line": ("all", "purchases", "returns", "discounted", "full_price", "promo", "priced"),
    "event": ("all", "views", "add_to_carts", "views_not_bought"),
    "session": ("all", "abandoned"),
}
#: Orders are selected by their lines: an order counts when it holds a selected line
#: (``purchases``: an order with a line that is not a return; ``discounted``: an order
#: with a discounted purchase line).
ROWS["order"] = ROWS["line"]
#: The column a row filter reads: an aggregation with that filter needs it.
ROW_COLUMNS = {
    "discounted": "discount",
    "full_price": "discount",
    "promo": "promo_code",
    "priced": "price_ratio",
}
#: Row filters that join each row to the customer's purchase lines by (customer, the
#: aggregated column): the transactions must hold that column too.
BOUGHT_JOIN = frozenset({"views_not_bought"})
#: Columns every table has (the rest are optional and become a feature's needs).
_ALWAYS = frozenset({"customer_id", "timestamp", "amount", "start", "seconds", "last_cart"})
#: Columns each compiler derives (never inputs themselves), with the input columns they
#: are derived from: at least one of them must be there. ``price_ratio`` is a purchase
#: line's unit price over the median unit price of its product (else its category); see
#: :data:`PRICE_RATIO`.
DERIVED: dict[str, tuple[str, ...]] = {
    "day": ("timestamp",),
    "price_ratio": ("product_id", "category"),
}
#: How both compilers derive ``price_ratio``, in words (the docs say the same).
PRICE_RATIO = (
    "A purchase line's unit price (unit_price when mapped, else amount / quantity for "
    "quantity > 0, else amount) divided by the reference price of its product: the exact "
    "median unit price of that product over every customer's purchase lines up to as_of "
    "(the median of the two middle values for an even count; product_id when mapped, "
    "else category). Undefined (the line is not priced) without a unit price, without a "
    "product (category), or when the reference is not positive."
)
#: ``price_tier`` cut points on ``price_index``: at least PREMIUM_FROM is premium, at
#: most BUDGET_UP_TO is budget, mid in between.
PREMIUM_FROM = 1.15
BUDGET_UP_TO = 0.85


class Expr:
    """A node of a feature's computation; arithmetic builds bigger nodes."""

    def _op(self, op: str, other: Expr | float, *, swap: bool = False) -> Expr:
        right = other if isinstance(other, Expr) else Lit(other)
        return Op(op, (right, self) if swap else (self, right))

    def __add__(self, other: Expr | float) -> Expr:
        return self._op("+", other)

    def __sub__(self, other: Expr | float) -> Expr:
        return self._op("-", other)

    def __rsub__(self, other: Expr | float) -> Expr:
        return self._op("-", other, swap=True)

    def __truediv__(self, other: Expr | float) -> Expr:
        return self._op("/", other)

    def __gt__(self, other: Expr | float) -> Expr:
        return self._op(">", other)

    def __ge__(self, other: Expr | float) -> Expr:
        return self._op(">=", other)

    def __le__(self, other: Expr | float) -> Expr:
        return self._op("<=", other)


@dataclass(frozen=True, eq=True)
class Lit(Expr):
    """A constant: a number, or a text (the value of a categorical feature)."""

    value: float | str


@dataclass(frozen=True, eq=True)
class AsOf(Expr):
    """The observation end, in the compiler's time unit."""


@dataclass(frozen=True, eq=True)
class Op(Expr):
    """``+ - /`` of two numbers, ``> >= <=`` comparisons, ``days`` (time span to days),
    ``present`` (not missing) or ``where`` (``args = (condition, then, otherwise)``,
    ``None`` for missing)."""

    op: str
    args: tuple[Expr | None, ...]


@dataclass(frozen=True, eq=True)
class Agg(Expr):
    """One value per customer, aggregated over rows of one kind.

    Parameters
    ----------
    how : {'count', 'sum', 'min', 'max', 'nunique', 'argmax', 'share', 'last'}
        ``argmax``: the value of ``column`` with the largest sum of ``weight`` (ties: the
        alphabetically first); ``share``: that largest sum / the sum over all values of
        ``column`` (missing when that sum is not positive); ``last``: the value of
        ``column`` on the latest row by ``at`` among the rows where it is known (ties:
        the alphabetically first).
    column : str, optional
        The input column (``None`` for counts). Besides the table's columns, lines
        have the :data:`DERIVED` columns ``day``: the UTC calendar day of the line's
        timestamp (whole days since 1970-01-01, the day ``as_of`` and the windows count
        in), and ``price_ratio`` (:data:`PRICE_RATIO`).
    over : {'line', 'order', 'event', 'session'}
        What a row is (see :data:`ROWS` for their filters).
    rows : str
        Row filter, e.g. ``'purchases'`` (lines that are not returns). Orders take the
        filters of lines: an order is counted when it holds at least one selected line
        (in the window, if any); orders are only counted.
        Events also have
        ``'views_not_bought'``: views whose value of ``column`` (a product, a category)
        the customer did not buy — no purchase line of the same customer and value in
        the same window (``within_days``; all time up to ``as_of`` without one). It joins
        the events to the transaction lines, which must hold ``column`` too
        (:data:`BOUGHT_JOIN`).
    within_days : int, optional
        Only rows whose ``at`` time is after ``as_of - within_days`` (up to ``as_of``).
    skip_days : int, optional
        The window ends ``skip_days`` before ``as_of``: rows in ``(as_of - skip_days -
        within_days, as_of - skip_days]`` (with ``within_days=None``: every row up to
        ``as_of - skip_days``). ``skip_days=w, within_days=w`` is "the window before".
    at : str
        The time column the window applies to (``'timestamp'``; visits: ``'start'`` or
        ``'last_cart'``).
    weight : str, optional
        For ``argmax`` and ``share``: the column summed per value. For ``sum``: the sum
        is of ``column × weight`` (a missing value counts 0).
    per : {'order'}, optional
        For ``nunique``: count distinct (order, value) pairs, i.e. the distinct values
        of each order added up over the customer's orders.

    Missing aggregates (a customer without such rows) are 0 for counts and sums and
    missing otherwise.
    """

    how: How
    column: str | None = None
    over: Over = "line"
    rows: str = "all"
    within_days: int | None = None
    at: str = "timestamp"
    weight: str | None = None
    skip_days: int | None = None
    per: Literal["order"] | None = None

    def __post_init__(self) -> None:
        if self.per is not None and (self.how != "nunique" or self.over != "line"):
            msg = f"per={self.per!r} goes with how='nunique' over lines"
            raise ValueError(msg)
        if self.over == "order" and self.how != "count":
            msg = f"orders are only counted (how='count'), not how={self.how!r}"
            raise ValueError(msg)
        if self.rows not in ROWS[self.over]:
            msg = f"rows={self.rows!r} is not a filter of {self.over} rows: {ROWS[self.over]}"
            raise ValueError(msg)

    @property
    def source(self) -> Source:
        return "transactions" if self.over in ("line", "order") else "events"

    @property
    def filled(self) -> float | None:
        """The value of a customer without rows."""
        return 0 if self.how in ("count", "sum", "nunique") else None


@dataclass(frozen=True)
class Kernel:
    """A computation outside the algebra, implemented once by each compiler.

    ``name`` selects the implementation; ``needs`` are input columns of which at least
    one must be present.
    """

    name: str
    needs: tuple[str, ...] = ()


AS_OF = AsOf()


def where(
    condition: Expr, then: Expr | float | str | None, otherwise: Expr | float | str | None
) -> Expr:
    """``then`` where ``condition`` holds, else ``otherwise`` (``None``: missing)."""

    def wrap(value: Expr | float | str | None) -> Expr | None:
        return value if isinstance(value, Expr) or value is None else Lit(value)

    return Op("where", (condition, wrap(then), wrap(otherwise)))


def days(span: Expr) -> Expr:
    """A time span in fractional days."""
    return Op("days", (span,))


def present(value: Expr) -> Expr:
    """Whether ``value`` is not missing."""
    return Op("present", (value,))


def aggregations(expr: Expr | Kernel) -> list[Agg]:
    """The aggregations an expression reads, each once, in reading order."""
    found: dict[Agg, None] = {}

    def walk(node: Expr | Kernel | None) -> None:
        if isinstance(node, Agg):
            found[node] = None
        elif isinstance(node, Op):
            for arg in node.args:
                walk(arg)

    walk(expr)
    return list(found)


@dataclass(frozen=True)
class FeatureDef:
    """Definition of one customer feature.

    Attributes
    ----------
    name, label, description, unit : str
        Column name, a short human label, the definition in words, the unit.
    source : {'transactions', 'events', 'customers'}
        The table it comes from.
    compute : Expr or Kernel
        How it is computed.
    dtype : {'float64', 'int64', 'datetime', 'string', 'boolean', 'object'}
        Its type in the pandas output.
    direction : {'higher_is_better', 'lower_is_better', 'neutral'}
        Whether more of it is better for the business.
    skewed : bool
        Heavy right tail: engines log-transform it before clustering.
    words : tuple of (str, str), optional
        Words naming clusters above and below the base (else derived from the name).
    """

    name: str
    description: str
    unit: str
    source: Source
    compute: Expr | Kernel = field(repr=False, compare=False)
    dtype: Dtype = "float64"
    label: str = ""
    direction: Direction = "neutral"
    skewed: bool = False
    words: tuple[str, str] | None = None

    @property
    def kind(self) -> Kind:
        return {
            "datetime": "datetime",
            "string": "categorical",
            "object": "categorical",
            "boolean": "bool",
        }.get(self.dtype, "numeric")  # type: ignore[return-value]

    @property
    def needs(self) -> tuple[str, ...]:
        """Optional input columns it needs (a kernel: any one of them)."""
        if isinstance(self.compute, Kernel):
            return self.compute.needs
        columns: dict[str, None] = {}
        for agg in aggregations(self.compute):
            for column in (agg.column, agg.weight, ROW_COLUMNS.get(agg.rows)):
                for name in DERIVED.get(column or "", (column,)):
                    if name is not None and name not in _ALWAYS:
                        columns[name] = None
        return tuple(columns)

    @property
    def needs_any(self) -> bool:
        """Whether any one of :attr:`needs` is enough (kernels, and features of a
        column derived from one of several inputs, such as ``price_ratio``)."""
        if isinstance(self.compute, Kernel):
            return True
        return any(
            len(DERIVED.get(column or "", ())) > 1
            for agg in aggregations(self.compute)
            for column in (agg.column, agg.weight, ROW_COLUMNS.get(agg.rows))
        )

    def catalog_row(self) -> dict[str, str]:
        """The columns of a features' catalog: ``name, description, unit, source, kind``."""
        return {
            "name": self.name,
            "description": self.description,
            "unit": self.unit,
            "source": self.source,
            "kind": self.kind,
        }


# --- purchase features -----------------------------------------------------------------

_GROSS = Agg("sum", "amount", rows="purchases")
# Return lines carry negative amounts: 0 - their sum is the value returned.
_RETURNED = 0.0 - Agg("sum", "amount", rows="returns")
_FREQUENCY = Agg("count", over="order", rows="purchases")
_PURCHASE_DAYS = Agg("nunique", "day", rows="purchases")
_FIRST = Agg("min", "timestamp", rows="purchases")
_LAST = Agg("max", "timestamp", rows="purchases")
_DISCOUNT = Agg("sum", "discount", rows="purchases")
_BOUGHT = _FREQUENCY > 0
# Offers: purchase lines with a discount (> 0) and the rest (full price).
_FULL_PRICE_SPEND = Agg("sum", "amount", rows="full_price")
_DISCOUNTED_SPEND = Agg("sum", "amount", rows="discounted")
_DISCOUNT_TAKEN = Agg("sum", "discount", rows="discounted")
# Price: the spend-weighted mean of the priced lines' price_ratio.
_PRICED_SPEND = Agg("sum", "amount", rows="priced")
_PRICE_INDEX = where(
    _PRICED_SPEND > 0,
    Agg("sum", "price_ratio", rows="priced", weight="amount") / _PRICED_SPEND,
    None,
)

_PURCHASE = [
    FeatureDef(
        "first_purchase",
        "Time of the first purchase line.",
        "UTC time",
        "transactions",
        where(_BOUGHT, _FIRST, None),
        dtype="datetime",
        label="First purchase",
    ),
    FeatureDef(
        "last_purchase",
        "Time of the last purchase line.",
        "UTC time",
        "transactions",
        where(_BOUGHT, _LAST, None),
        dtype="datetime",
        label="Last purchase",
        direction="higher_is_better",
    ),
    FeatureDef(
        "recency_days",
        "Days from the last purchase to as_of (missing: never bought).",
        "days",
        "transactions",
        where(_BOUGHT, days(AS_OF - _LAST), None),
        label="Recency",
        direction="lower_is_better",
        skewed=True,
        words=("Lapsed", "Recent"),
    ),
    FeatureDef(
        "frequency",
        "Distinct orders with at least one purchase line.",
        "orders",
        "transactions",
        _FREQUENCY,
        dtype="int64",
        label="Orders",
        direction="higher_is_better",
        skewed=True,
        words=("Frequent", "Infrequent"),
    ),
    FeatureDef(
        "purchase_days",
        "Distinct days (UTC calendar days) with a purchase line; two orders on one day "
        "are one purchase day.",
        "days",
        "transactions",
        _PURCHASE_DAYS,
        dtype="int64",
        label="Purchase days",
        direction="higher_is_better",
        skewed=True,
        words=("Many purchase days", "Few purchase days"),
    ),
    FeatureDef(
        "monetary",
        "Net spend: purchases minus returns.",
        "currency",
        "transactions",
        _GROSS - _RETURNED,
        label="Net spend",
        direction="higher_is_better",
        skewed=True,
        words=("High spend", "Low spend"),
    ),
    FeatureDef(
        "gross_spend",
        "Spend on purchase lines, before returns.",
        "currency",
        "transactions",
        _GROSS,
        label="Gross spend",
        direction="higher_is_better",
        skewed=True,
        words=("High spend", "Low spend"),
    ),
    FeatureDef(
        "avg_order_value",
        "gross_spend / frequency.",
        "currency",
        "transactions",
        where(_BOUGHT, _GROSS / _FREQUENCY, None),
        label="Average order value",
        direction="higher_is_better",
        skewed=True,
        # Not "baskets": basket_size (units per order) has those words.
        words=("High order value", "Low order value"),
    ),
    FeatureDef(
        "tenure_days",
        "Days from the first purchase to as_of.",
        "days",
        "transactions",
        where(_BOUGHT, days(AS_OF - _FIRST), None),
        label="Tenure",
        direction="higher_is_better",
        skewed=True,
        words=("Long-standing", "Recently joined"),
    ),
    FeatureDef(
        "mean_days_between_orders",
        "(last - first purchase) / (frequency - 1); missing with one order.",
        "days",
        "transactions",
        where(_FREQUENCY > 1, days(_LAST - _FIRST) / (_FREQUENCY - 1), None),
        label="Days between orders",
        direction="lower_is_better",
        skewed=True,
        words=("Slow repeat", "Fast repeat"),
    ),
    FeatureDef(
        "return_rate",
        "Returned value / gross_spend (0 without returns).",
        "share",
        "transactions",
        # Returns without purchases have no meaningful rate; nothing at all is 0.
        where(_GROSS > 0, _RETURNED / _GROSS, where(_RETURNED > 0, None, 0.0)),
        label="Return rate",
        direction="lower_is_better",
        words=("Frequent returns", "Few returns"),
    ),
    FeatureDef(
        "discount_share",
        "Discount / (gross_spend + discount): share of list price given as discount "
        "(0 when both are 0).",
        "share",
        "transactions",
        where(_GROSS + _DISCOUNT > 0, _DISCOUNT / (_GROSS + _DISCOUNT), 0.0),
        label="Discount share",
        words=("Discount-driven", "Full-price"),
    ),
    FeatureDef(
        "discounted_order_share",
        "Orders with at least one discounted purchase line (discount > 0) / frequency "
        "(missing without an order).",
        "share",
        "transactions",
        where(_BOUGHT, Agg("count", over="order", rows="discounted") / _FREQUENCY, None),
        label="Discounted order share",
        words=("Deal seekers", "Rarely on deal"),
    ),
    FeatureDef(
        "full_price_spend_share",
        "Spend on purchase lines without a discount (0 or missing) / gross_spend "
        "(missing when gross_spend is 0, e.g. no orders).",
        "share",
        "transactions",
        where(_GROSS > 0, _FULL_PRICE_SPEND / _GROSS, None),
        label="Full-price spend share",
        words=("Full-price buyers", "Discount buyers"),
    ),
    FeatureDef(
        "discount_depth",
        "Sum of discount / sum of (amount + discount) over the discounted purchase lines "
        "(discount > 0) only: how deep the discounts taken are (missing without one).",
        "share",
        "transactions",
        where(_DISCOUNT_TAKEN > 0, _DISCOUNT_TAKEN / (_DISCOUNTED_SPEND + _DISCOUNT_TAKEN), None),
        label="Discount depth",
        words=("Deep discounts", "Shallow discounts"),
    ),
    FeatureDef(
        "promo_order_share",
        "Orders with a promo code on a purchase line / frequency (missing without an order).",
        "share",
        "transactions",
        where(_BOUGHT, Agg("count", over="order", rows="promo") / _FREQUENCY, None),
        label="Promo order share",
        words=("Promo-driven", "Few promos"),
    ),
    FeatureDef(
        "n_promo_codes",
        "Distinct promo codes used on purchase lines.",
        "codes",
        "transactions",
        Agg("nunique", "promo_code", rows="purchases"),
        dtype="int64",
        label="Promo codes used",
        words=("Many promo codes", "Few promo codes"),
    ),
    FeatureDef(
        "price_index",
        "Spend-weighted mean of price_ratio over the priced purchase lines: a line's "
        "unit price / the median unit price of its product (else category) across all "
        "customers up to as_of; 1 is the typical price (missing without a priced line "
        "with spend).",
        "ratio",
        "transactions",
        _PRICE_INDEX,
        label="Price index",
        words=("Premium-priced", "Budget-priced"),
    ),
    FeatureDef(
        "price_tier",
        f"'premium' when price_index >= {PREMIUM_FROM}, 'budget' when <= {BUDGET_UP_TO}, "
        "else 'mid' (missing with price_index).",
        "",
        "transactions",
        where(
            present(_PRICE_INDEX),
            where(
                _PRICE_INDEX >= PREMIUM_FROM,
                "premium",
                where(_PRICE_INDEX <= BUDGET_UP_TO, "budget", "mid"),
            ),
            None,
        ),
        dtype="string",
        label="Price tier",
    ),
    FeatureDef(
        "n_products",
        "Distinct products bought.",
        "products",
        "transactions",
        Agg("nunique", "product_id", rows="purchases"),
        dtype="int64",
        label="Products",
        direction="higher_is_better",
        skewed=True,
        words=("Many products", "Few products"),
    ),
    FeatureDef(
        "n_categories",
        "Distinct categories bought.",
        "categories",
        "transactions",
        Agg("nunique", "category", rows="purchases"),
        dtype="int64",
        label="Categories",
        direction="higher_is_better",
        skewed=True,
        words=("Broad interests", "Narrow interests"),
    ),
    FeatureDef(
        "top_category",
        "Category with the most spend (ties: alphabetical).",
        "",
        "transactions",
        Agg("argmax", "category", rows="purchases", weight="amount"),
        dtype="string",
        label="Top category",
    ),
    FeatureDef(
        "top_category_share",
        "Spend in top_category / spend in all categories.",
        "share",
        "transactions",
        Agg("share", "category", rows="purchases", weight="amount"),
        label="Top category share",
        words=("Category-focused", "Category-spread"),
    ),
    FeatureDef(
        "avg_basket_size",
        "Units per order (sum of quantity / frequency).",
        "units",
        "transactions",
        where(_BOUGHT, Agg("sum", "quantity", rows="purchases") / _FREQUENCY, None),
        label="Basket size",
        direction="higher_is_better",
        skewed=True,
        words=("Large baskets", "Small baskets"),
    ),
]


def _brand_features() -> list[FeatureDef]:
    """Brand preference: how many brands, the top one, and loyalty to brands."""
    brands = Agg("nunique", "brand", rows="purchases")
    # Each order's distinct brands, added up: an order buying two brands counts two.
    order_brands = Agg("nunique", "brand", rows="purchases", per="order")
    return [
        FeatureDef(
            "n_brands",
            "Distinct brands bought.",
            "brands",
            "transactions",
            brands,
            dtype="int64",
            label="Brands",
            skewed=True,
            words=("Many brands", "Few brands"),
        ),
        FeatureDef(
            "top_brand",
            "Brand with the most spend (ties: alphabetical).",
            "",
            "transactions",
            Agg("argmax", "brand", rows="purchases", weight="amount"),
            dtype="string",
            label="Top brand",
        ),
        FeatureDef(
            "top_brand_share",
            "Spend on top_brand / spend on all brands.",
            "share",
            "transactions",
            Agg("share", "brand", rows="purchases", weight="amount"),
            label="Top brand share",
            words=("Brand-loyal", "Brand-spread"),
        ),
        FeatureDef(
            "brand_repeat_rate",
            "Share of (order, brand) pairs whose brand was bought in an earlier order: "
            "(pairs - n_brands) / pairs (missing without brand lines).",
            "share",
            "transactions",
            where(order_brands > 0, (order_brands - brands) / order_brands, None),
            label="Brand repeat rate",
            words=("Repeat-brand buyers", "Brand switchers"),
        ),
    ]


_PURCHASE += _brand_features()


def _purchase_window(w: int) -> list[FeatureDef]:
    """The purchase features of one look-back window of ``w`` days."""
    spend = Agg("sum", "amount", rows="purchases", within_days=w)
    before = Agg("sum", "amount", rows="purchases", within_days=w, skip_days=w)
    categories = Agg("nunique", "category", rows="purchases")
    known_before = Agg("nunique", "category", rows="purchases", skip_days=w)
    return [
        FeatureDef(
            f"orders_{w}d",
            f"Distinct orders with a purchase line in the last {w} days.",
            "orders",
            "transactions",
            Agg("count", over="order", rows="purchases", within_days=w),
            dtype="int64",
            label=f"Orders, {w} days",
            direction="higher_is_better",
            skewed=True,
            words=("Frequent lately", "Infrequent lately"),
        ),
        FeatureDef(
            f"spend_{w}d",
            f"Spend on purchase lines in the {w} days up to as_of, before returns.",
            "currency",
            "transactions",
            spend,
            label=f"Spend, {w} days",
            direction="higher_is_better",
            skewed=True,
            words=("High recent spend", "Low recent spend"),
        ),
        FeatureDef(
            f"items_{w}d",
            f"Units bought (sum of quantity on purchase lines) in the last {w} days.",
            "units",
            "transactions",
            Agg("sum", "quantity", rows="purchases", within_days=w),
            label=f"Items, {w} days",
            direction="higher_is_better",
            skewed=True,
            words=("Many items lately", "Few items lately"),
        ),
        FeatureDef(
            f"products_{w}d",
            f"Distinct products bought in the last {w} days.",
            "products",
            "transactions",
            Agg("nunique", "product_id", rows="purchases", within_days=w),
            dtype="int64",
            label=f"Products, {w} days",
            direction="higher_is_better",
            skewed=True,
            words=("Many products lately", "Few products lately"),
        ),
        FeatureDef(
            f"spend_trend_{w}d",
            f"spend_{w}d / spend in the {w} days before them (missing when that "
            "earlier window has no spend).",
            "ratio",
            "transactions",
            where(before > 0, spend / before, None),
            label=f"Spend trend, {w} days",
            direction="higher_is_better",
            skewed=True,
            words=("Spending more", "Spending less"),
        ),
        FeatureDef(
            f"new_categories_{w}d",
            f"Categories first bought in the last {w} days: n_categories - distinct "
            f"categories bought up to as_of - {w} days.",
            "categories",
            "transactions",
            categories - known_before,
            dtype="int64",
            label=f"New categories, {w} days",
            direction="higher_is_better",
            skewed=True,
            words=("Exploring", "Not exploring"),
        ),
    ]


# --- browsing features -----------------------------------------------------------------

_LAST_VISIT = Agg("max", "timestamp", over="event")

_BROWSING = [
    FeatureDef(
        "days_since_last_visit",
        "Days from the last browsing event to as_of.",
        "days",
        "events",
        where(present(_LAST_VISIT), days(AS_OF - _LAST_VISIT), None),
        label="Days since last visit",
        direction="lower_is_better",
        skewed=True,
        words=("Not browsing", "Browsing now"),
    ),
    FeatureDef(
        "last_viewed_category",
        "Category of the latest view up to as_of (views without a category are skipped; "
        "ties: alphabetical).",
        "",
        "events",
        Agg("last", "category", over="event", rows="views"),
        dtype="string",
        label="Last viewed category",
    ),
    FeatureDef(
        "last_viewed_brand",
        "Brand of the latest view up to as_of (views without a brand are skipped; "
        "ties: alphabetical).",
        "",
        "events",
        Agg("last", "brand", over="event", rows="views"),
        dtype="string",
        label="Last viewed brand",
    ),
]


def _browsing_window(w: int) -> list[FeatureDef]:
    """The browsing features of one look-back window of ``w`` days."""
    return [
        FeatureDef(
            f"views_{w}d",
            f"Product or page views in the last {w} days.",
            "events",
            "events",
            Agg("count", over="event", rows="views", within_days=w),
            dtype="int64",
            label=f"Views, {w} days",
            direction="higher_is_better",
            skewed=True,
        ),
        FeatureDef(
            f"add_to_carts_{w}d",
            f"Add-to-cart events in the last {w} days.",
            "events",
            "events",
            Agg("count", over="event", rows="add_to_carts", within_days=w),
            dtype="int64",
            label=f"Add-to-carts, {w} days",
            direction="higher_is_better",
            skewed=True,
        ),
        FeatureDef(
            f"sessions_{w}d",
            f"Visits that started in the last {w} days.",
            "sessions",
            "events",
            Agg("count", over="session", within_days=w, at="start"),
            dtype="int64",
            label=f"Visits, {w} days",
            direction="higher_is_better",
            skewed=True,
        ),
        FeatureDef(
            f"time_on_site_{w}d",
            f"Minutes on site in the last {w} days (durations, else visit spans).",
            "minutes",
            "events",
            Agg("sum", "seconds", over="session", within_days=w, at="start") / 60.0,
            label=f"Minutes on site, {w} days",
            direction="higher_is_better",
            skewed=True,
        ),
        FeatureDef(
            f"abandoned_carts_{w}d",
            f"Visits in the last {w} days with an add-to-cart and no purchase within "
            "abandon_hours after it.",
            "carts",
            "events",
            Agg("count", over="session", rows="abandoned", within_days=w, at="last_cart"),
            dtype="int64",
            label=f"Abandoned carts, {w} days",
            direction="lower_is_better",
            skewed=True,
        ),
        FeatureDef(
            f"viewed_not_bought_products_{w}d",
            f"Distinct products viewed in the last {w} days that the customer did not buy "
            f"in those {w} days.",
            "products",
            "events",
            _unbought(w, "product_id"),
            dtype="int64",
            label=f"Products viewed, not bought, {w} days",
            skewed=True,
            words=("Many products viewed, not bought", "Few products viewed, not bought"),
        ),
        FeatureDef(
            f"viewed_not_bought_categories_{w}d",
            f"Distinct categories viewed in the last {w} days that the customer did not "
            f"buy from in those {w} days.",
            "categories",
            "events",
            _unbought(w, "category"),
            dtype="int64",
            label=f"Categories viewed, not bought, {w} days",
            skewed=True,
            words=("Many categories viewed, not bought", "Few categories viewed, not bought"),
        ),
        FeatureDef(
            f"browse_to_buy_{w}d",
            f"Share of the distinct products viewed in the last {w} days that the customer "
            f"bought in those {w} days (missing without a product view).",
            "share",
            "events",
            where(
                _viewed(w, "product_id") > 0,
                (_viewed(w, "product_id") - _unbought(w, "product_id")) / _viewed(w, "product_id"),
                None,
            ),
            label=f"Browse to buy, {w} days",
            direction="higher_is_better",
            words=("Buys what they view", "Views without buying"),
        ),
    ]


def _viewed(w: int, column: str) -> Agg:
    """Distinct values of ``column`` viewed in the last ``w`` days."""
    return Agg("nunique", column, over="event", rows="views", within_days=w)


def _unbought(w: int, column: str) -> Agg:
    """Distinct values of ``column`` viewed and not bought in the last ``w`` days."""
    return Agg("nunique", column, over="event", rows="views_not_bought", within_days=w)


# --- profile features ------------------------------------------------------------------


def _given(name: str, description: str, dtype: Dtype = "string") -> FeatureDef:
    """A profile column passed through as given."""
    label = name.replace("_", " ").capitalize()
    return FeatureDef(
        name, description, "", "customers", Kernel("profile", (name,)), dtype=dtype, label=label
    )


_PROFILE = [
    FeatureDef(
        "age",
        "Age in whole years at as_of (from birth_date, else the age given).",
        "years",
        "customers",
        Kernel("age", ("birth_date", "age")),
        label="Age",
    ),
    _given("age_band", "Age band as given."),
    _given("gender", "Gender as given."),
    _given("city", "City."),
    _given("region", "Region or state."),
    _given("country", "Country."),
    FeatureDef(
        "days_since_signup",
        "Days from signup_date to as_of.",
        "days",
        "customers",
        Kernel("days_since_signup", ("signup_date",)),
        label="Days since signup",
        skewed=True,
    ),
    _given("consent_email", "May be e-mailed for marketing.", "boolean"),
    _given("consent_sms", "May be texted for marketing.", "boolean"),
    _given("consent_ads", "May be targeted in ad platforms.", "boolean"),
]

_FIXED = {d.name: d for d in _PURCHASE + _BROWSING + _PROFILE}
_WINDOWED = re.compile(
    r"(views|add_to_carts|sessions|time_on_site|abandoned_carts|viewed_not_bought_products"
    r"|viewed_not_bought_categories|browse_to_buy)_(\d+)d"
)
_PURCHASE_WINDOWED = re.compile(r"(orders|spend|items|products|spend_trend|new_categories)_(\d+)d")
#: The purchase windows of extract_features, in days.
PURCHASE_WINDOWS = (30, 90, 365)


def definitions(
    windows: tuple[int, ...] = (7, 30, 90),
    sources: tuple[Source, ...] = ("transactions", "events", "customers"),
    purchase_windows: tuple[int, ...] = PURCHASE_WINDOWS,
) -> list[FeatureDef]:
    """Every feature of the given sources, in output order, with browsing ``windows``
    and ``purchase_windows``."""
    out: list[FeatureDef] = []
    if "transactions" in sources:
        out += _PURCHASE
        for w in purchase_windows:
            out += _purchase_window(w)
    if "events" in sources:
        out += _BROWSING
        for w in windows:
            out += _browsing_window(w)
    if "customers" in sources:
        out += _PROFILE
    return out


def definition_of(name: str) -> FeatureDef | None:
    """The definition of a feature column (any window), or ``None`` for other columns."""
    if name in _FIXED:
        return _FIXED[name]
    for pattern, family in (
        (_WINDOWED, _browsing_window),
        (_PURCHASE_WINDOWED, _purchase_window),
    ):
        match = pattern.fullmatch(name)
        if match is not None and int(match.group(2)) > 0:
            return next(d for d in family(int(match.group(2))) if d.name == name)
    return None
