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
    "DERIVED",
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

#: Row filters each kind of row understands.
ROWS: dict[str, tuple[str, ...]] = {
    "line": ("all", "purchases", "returns"),
    "order": ("purchases",),
    "event": ("all", "views", "add_to_carts", "views_not_bought"),
    "session": ("all", "abandoned"),
}
#: Row filters that join each row to the customer's purchase lines by (customer, the
#: aggregated column): the transactions must hold that column too.
BOUGHT_JOIN = frozenset({"views_not_bought"})
#: Columns every table has (the rest are optional and become a feature's needs).
_ALWAYS = frozenset({"customer_id", "timestamp", "amount", "start", "seconds", "last_cart"})
#: Columns each compiler derives from another one (not inputs: never a feature's needs).
DERIVED = {"day": "timestamp"}


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


@dataclass(frozen=True, eq=True)
class Lit(Expr):
    """A constant."""

    value: float


@dataclass(frozen=True, eq=True)
class AsOf(Expr):
    """The observation end, in the compiler's time unit."""


@dataclass(frozen=True, eq=True)
class Op(Expr):
    """``+ - /`` of two numbers, ``>`` comparison, ``days`` (time span to days),
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
        have ``day``: the UTC calendar day of the line's timestamp (whole days since
        1970-01-01, the day ``as_of`` and the windows count in).
    over : {'line', 'order', 'event', 'session'}
        What a row is (see :data:`ROWS` for their filters).
    rows : str
        Row filter, e.g. ``'purchases'`` (lines that are not returns). Events also have
        ``'views_not_bought'``: views whose value of ``column`` (a product, a category)
        the customer did not buy — no purchase line of the same customer and value in
        the same window (``within_days``; all time up to ``as_of`` without one). It joins
        the events to the transaction lines, which must hold ``column`` too
        (:data:`BOUGHT_JOIN`).
    within_days : int, optional
        Only rows whose ``at`` time is after ``as_of - within_days`` (up to ``as_of``).
    at : str
        The time column the window applies to (``'timestamp'``; visits: ``'start'`` or
        ``'last_cart'``).
    weight : str, optional
        For ``argmax`` and ``share``: the column summed per value.

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

    def __post_init__(self) -> None:
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


def where(condition: Expr, then: Expr | float | None, otherwise: Expr | float | None) -> Expr:
    """``then`` where ``condition`` holds, else ``otherwise`` (``None``: missing)."""

    def wrap(value: Expr | float | None) -> Expr | None:
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
            for column in (agg.column, agg.weight):
                if column is not None and column not in _ALWAYS and column not in DERIVED:
                    columns[column] = None
        return tuple(columns)

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
        words=("Big baskets", "Small baskets"),
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
    FeatureDef(
        "spend_90d",
        "Spend on purchase lines in the 90 days up to as_of, before returns.",
        "currency",
        "transactions",
        Agg("sum", "amount", rows="purchases", within_days=90),
        label="Spend, 90 days",
        direction="higher_is_better",
        skewed=True,
        words=("High recent spend", "Low recent spend"),
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


def definitions(
    windows: tuple[int, ...] = (7, 30, 90),
    sources: tuple[Source, ...] = ("transactions", "events", "customers"),
) -> list[FeatureDef]:
    """Every feature of the given sources, in output order, with browsing ``windows``."""
    out: list[FeatureDef] = []
    if "transactions" in sources:
        out += _PURCHASE
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
    match = _WINDOWED.fullmatch(name)
    if match is None or int(match.group(2)) <= 0:
        return None
    return next(d for d in _browsing_window(int(match.group(2))) if d.name == name)
