"""One row per customer: purchase, browsing and profile features as of a date.

Everything here is whole-array work (``np.bincount``, factorised keys, one sort for
sessions): no Python loop runs per customer, order or event. Customers from the
three tables are placed in one id space first, so each feature block is an array
over that space and joining blocks is free.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit._common._runs import (
    constant_within_runs,
    keys_used,
    one_run_each,
    run_lengths,
    run_starts,
    run_sums,
    runs_holding,
)
from segmentkit.contracts._customers import PII_COLUMNS, Customers
from segmentkit.contracts._events import Events
from segmentkit.contracts._schema import category_codes, to_ns
from segmentkit.contracts._transactions import Transactions
from segmentkit.features._catalog import FeatureDef, definitions_by_name

if TYPE_CHECKING:
    from segmentkit.contracts._native_tables import NativeTransactions

__all__ = ["CustomerFeatures", "extract_features"]

_DAY_NS = 86_400 * 10**9
_NAT = np.iinfo(np.int64).min


class CustomerFeatures:
    """Features of every customer at one observation date, with their definitions.

    Returned by :func:`extract_features`; engines take it as input. Wrap a frame of
    your own features with :meth:`from_frame`.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per customer, indexed by ``customer_id``.
    as_of : pandas.Timestamp
        End of the observation window (UTC).
    definitions : dict of str to FeatureDef, optional
        Definitions of the columns; columns without one are described as user-supplied.
    excluded : dict of str to int, optional
        Input rows that the features did not use, by reason (e.g. rows after ``as_of``).

    Attributes
    ----------
    frame : pandas.DataFrame
        The features.
    as_of : pandas.Timestamp
        Observation end.
    catalog : pandas.DataFrame
        Definition of each column: ``name, description, unit, source, kind``.
    excluded : dict of str to int
        Rows not used, by reason.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> own = pd.DataFrame({"customer_id": ["a", "b"], "recency_days": [3.0, 40.0],
    ...                     "frequency": [5, 1], "monetary": [250.0, 20.0]})
    >>> features = sk.CustomerFeatures.from_frame(own, as_of="2024-06-30")
    >>> len(features), features.as_of
    (2, Timestamp('2024-06-30 00:00:00+0000', tz='UTC'))
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        as_of: pd.Timestamp,
        definitions: Mapping[str, FeatureDef] | None = None,
        excluded: Mapping[str, int] | None = None,
    ) -> None:
        self.frame = frame
        self.as_of = as_of
        definitions = dict(definitions or {})
        self.catalog = pd.DataFrame(
            [
                vars(definitions[c])
                if c in definitions
                else {
                    "name": c,
                    "description": "User-supplied column.",
                    "unit": "",
                    "source": "user",
                    "kind": _kind_of(frame[c]),
                }
                for c in frame.columns
            ],
            columns=["name", "description", "unit", "source", "kind"],
        )
        self.excluded = dict(excluded or {})

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, *, as_of: Any = None, customer_id: str = "customer_id"
    ) -> Self:
        """Wrap a frame of features computed elsewhere.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per customer; the id is the column ``customer_id`` or the index.
        as_of : str or datetime-like, optional
            Observation end the features refer to; defaults to now.
        customer_id : str, default='customer_id'
            Name of the id column.

        Returns
        -------
        CustomerFeatures
            The wrapped features.

        Raises
        ------
        ValueError
            If ids are missing or repeated.
        """
        if customer_id in frame.columns:
            frame = frame.set_index(customer_id)
        frame = frame.copy()
        frame.index = pd.Index(frame.index.astype(str), dtype=str, name="customer_id")
        if frame.index.has_duplicates:
            repeated = frame.index[frame.index.duplicated()].unique()[:5].tolist()
            msg = (
                f"Features must be one row per customer; ids repeat, e.g. {repeated}. "
                "Aggregate them first."
            )
            raise ValueError(msg)
        stamp = _as_utc_timestamp(as_of) if as_of is not None else pd.Timestamp.now(tz="UTC")
        known = definitions_by_name((7, 30, 90))
        return cls(frame, stamp, {c: known[c] for c in frame.columns if c in known})

    @property
    def customer_ids(self) -> pd.Index:
        """Customer ids, in row order."""
        return self.frame.index

    @property
    def columns(self) -> list[str]:
        """Feature names."""
        return list(self.frame.columns)

    def to_frame(self) -> pd.DataFrame:
        """The features as a plain frame with ``customer_id`` as the first column.

        Returns
        -------
        pandas.DataFrame
            A copy; changing it does not change the features.
        """
        return self.frame.reset_index()

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return (
            f"<CustomerFeatures: {len(self)} customers × {self.frame.shape[1]} features, "
            f"as_of={self.as_of.isoformat()}>"
        )

    def _repr_html_(self) -> str:
        head = f"<p>{self!r}</p>".replace("<C", "&lt;C").replace(">,", "&gt;,")
        return head + self.frame.head(10).to_html()


def _kind_of(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values.dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(values.dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return "datetime"
    return "categorical"


#: Numeric day/month text (01.04.2024, 4/1/24): one value cannot say which is which.
_DAY_MONTH_TEXT = re.compile(r"\s*\d{1,2}[./-]\d{1,2}[./-]\d{2,4}(?:\D.*)?")


def _as_utc_timestamp(value: Any) -> pd.Timestamp:
    if isinstance(value, bool):
        _refuse_as_of(value, "is not a date or time")
    if isinstance(value, int | np.integer) and 10_000_101 <= value <= 99_991_231:
        # 19970115 is a date written as a number (as in CDNOW), not nanoseconds.
        value = str(value)
    elif isinstance(value, int | float | np.integer | np.floating):
        # pandas would read a bare number as nanoseconds since 1970: never what is meant.
        _refuse_as_of(
            value,
            "is a number, which could be seconds, milliseconds or nanoseconds since 1970; "
            "for epoch seconds pass pd.Timestamp(value, unit='s')",
        )
    if isinstance(value, str) and _DAY_MONTH_TEXT.fullmatch(value):
        # Never guessed: '01.04.2024' is 1 April in Helsinki and 4 January in New York.
        _refuse_as_of(value, "is written day/month or month/day, which as_of never guesses")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as error:
        _refuse_as_of(value, "is not a date or time")
        raise AssertionError from error  # unreachable: _refuse_as_of raises
    if stamp is pd.NaT:
        _refuse_as_of(value, "is not a date or time")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    try:
        # Features count in nanoseconds: 9999-12-31 (an 'open end' placeholder) parses,
        # but lies beyond what they can hold.
        return stamp.as_unit("ns")
    except (OverflowError, ValueError):
        _refuse_as_of(value, "is outside the range segmentkit can hold (1677-09-21 to 2262-04-11)")
        raise


def _refuse_as_of(value: Any, problem: str) -> None:
    from segmentkit.errors import ContractError, ContractFailure, Reason

    failure = ContractFailure(
        column="as_of",
        check="as_of",
        reason=Reason.OUT_OF_RANGE if "range" in problem else Reason.WRONG_DTYPE,
        message=(
            f"as_of={value!r} {problem}. Use an ISO 8601 date or time, e.g. '2024-06-30' "
            "(command line: --as-of 2024-06-30)."
        ),
    )
    raise ContractError([failure], table="as_of")


@overload
def extract_features(
    transactions: NativeTransactions,
    events: Events | None = ...,
    customers: Customers | None = ...,
    *,
    as_of: Any = ...,
    windows: Sequence[int] = ...,
    abandon_hours: float = ...,
    session_gap_minutes: float = ...,
    output: Literal["pandas"],
) -> CustomerFeatures: ...


# Transactions kept in polars, DuckDB, Spark, Dask...: a frame of that engine.
@overload
def extract_features(
    transactions: NativeTransactions,
    events: Events | None = ...,
    customers: Customers | None = ...,
    *,
    as_of: Any = ...,
    windows: Sequence[int] = ...,
    abandon_hours: float = ...,
    session_gap_minutes: float = ...,
    output: Literal["native"] = ...,
) -> Any: ...


@overload
def extract_features(
    transactions: Transactions,
    events: Events | None = ...,
    customers: Customers | None = ...,
    *,
    as_of: Any = ...,
    windows: Sequence[int] = ...,
    abandon_hours: float = ...,
    session_gap_minutes: float = ...,
    output: str = ...,
) -> CustomerFeatures: ...


def extract_features(
    transactions: Transactions,
    events: Events | None = None,
    customers: Customers | None = None,
    *,
    as_of: Any = None,
    windows: Sequence[int] = (7, 30, 90),
    abandon_hours: float = 24.0,
    session_gap_minutes: float = 30.0,
    output: str = "native",
) -> Any:
    """Compute one row of features per customer from data up to ``as_of``.

    Customers are everyone with an order line (purchase or return), a browsing
    event or (when given) a profile on or before ``as_of``. People who never bought
    get ``frequency = 0``, ``monetary = 0`` and a missing ``recency_days``. Only rows
    with a timestamp ``<= as_of`` are used; the rest are counted in
    :attr:`CustomerFeatures.excluded`.
    Personal data (e-mail, phone, names, postal code, birth date) is never joined in.

    Parameters
    ----------
    transactions : Transactions
        Validated order lines.
    events : Events, optional
        Validated browsing events; adds the browsing features.
    customers : Customers, optional
        Validated profiles; adds age, gender, location, signup and consent columns
        and any extra profile columns.
    as_of : str or datetime-like, optional
        End of observation (inclusive). Defaults to the last transaction timestamp.
        A time zone-naive value is read as UTC; ``'2024-06-30'`` means midnight at the
        start of that day.
    windows : sequence of int, default=(7, 30, 90)
        Look-back windows in days for the browsing features.
    abandon_hours : float, default=24.0
        A visit with an add-to-cart and no purchase within this many hours counts as
        an abandoned cart. Carts younger than this at ``as_of`` are not counted yet.
    session_gap_minutes : float, default=30.0
        Without a ``session_id``, a pause longer than this starts a new visit.
    output : {'native', 'pandas'}, default='native'
        For transactions validated on polars, pyarrow, DuckDB, PySpark or Dask: return
        a frame of that engine (``customer_id`` plus the features) or, with
        ``'pandas'``, ``CustomerFeatures``. Pandas transactions always give the latter.

    Returns
    -------
    CustomerFeatures or native frame
        The features, their catalog and ``as_of``; for transactions kept in another
        engine (and ``output='native'``), a frame of that engine.

    Raises
    ------
    ValueError
        If no transaction falls on or before ``as_of``, or a parameter is out of range.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> features = sk.extract_features(tx, as_of="2017-12-01")
    >>> features.frame[["recency_days", "frequency", "monetary"]].describe().loc["count"]
    recency_days    ...
    frequency       ...
    monetary        ...
    Name: count, dtype: float64
    """
    if hasattr(type(transactions), "native"):  # validated on polars, DuckDB, Spark...: stays
        from segmentkit.features._native import extract_native_features

        return extract_native_features(
            # Only NativeTransactions has `native`; the type is not imported to test it, so
            # that pandas users never import the narwhals path.
            cast("NativeTransactions", transactions),
            events,
            customers,
            as_of=as_of,
            windows=windows,
            abandon_hours=abandon_hours,
            session_gap_minutes=session_gap_minutes,
            output=output,
        )
    windows = checked_browsing_params(windows, abandon_hours, session_gap_minutes)
    tx = transactions.data
    if len(tx) == 0:
        raise ValueError(NO_LINES_KEPT)
    stamp = (
        _as_utc_timestamp(as_of)
        if as_of is not None
        else pd.Timestamp(tx["timestamp"].max()).tz_convert("UTC")
    )
    as_of_ns = stamp.value

    tx_ns = to_ns(tx["timestamp"])
    tx_in = tx_ns <= as_of_ns
    if not tx_in.any():
        raise ValueError(nothing_by_as_of(stamp, tx["timestamp"].min()))
    n_after = len(tx_in) - int(np.count_nonzero(tx_in))
    excluded = {"transactions_after_as_of": n_after}

    id_tables = [tx["customer_id"].cat.categories]
    ev = events.data if events is not None else None
    if ev is not None:
        id_tables.append(ev["customer_id"].cat.categories)
    profiles = customers.data if customers is not None else None
    if profiles is not None:
        id_tables.append(profiles["customer_id"].cat.categories)
    if len(id_tables) > 1:
        ids = _union(id_tables)
        tx_codes = ids.get_indexer(id_tables[0])[category_codes(tx["customer_id"])]
    else:
        # Transactions alone: their categories are the id space, no hashing of ids.
        ids = id_tables[0]
        tx_codes = category_codes(tx["customer_id"])
    if n_after == 0:
        # Nothing after as_of (the default): no filtered copy of every column.
        columns, present = _purchase_features(tx, tx_codes, tx_ns, len(ids), as_of_ns)
    else:
        columns, present = _purchase_features(
            tx[tx_in], tx_codes[tx_in], tx_ns[tx_in], len(ids), as_of_ns
        )

    if ev is not None:
        ev_ns = to_ns(ev["timestamp"])
        ev_in = ev_ns <= as_of_ns
        excluded["events_after_as_of"] = int((~ev_in).sum())
        ev_codes = ids.get_indexer(ev["customer_id"].cat.categories)[
            category_codes(ev["customer_id"])
        ]
        present[ev_codes[ev_in]] = True
        purchase_times = _order_times(tx[tx_in], tx_codes[tx_in], tx_ns[tx_in])
        columns |= _browsing_features(
            ev[ev_in],
            ev_codes[ev_in],
            ev_ns[ev_in],
            len(ids),
            as_of_ns,
            windows=windows,
            purchases=purchase_times,
            abandon_ns=int(abandon_hours * 3600 * 10**9),
            gap_ns=int(session_gap_minutes * 60 * 10**9),
        )
    if profiles is not None:
        eligible = np.ones(len(profiles), dtype=bool)
        if "signup_date" in profiles:
            signup = to_ns(profiles["signup_date"])
            eligible = (signup == _NAT) | (signup <= as_of_ns)
            excluded["profiles_signed_up_after_as_of"] = int((~eligible).sum())
        pr_codes = ids.get_indexer(profiles["customer_id"].cat.categories)[
            category_codes(profiles["customer_id"])
        ]
        present[pr_codes[eligible]] = True
        columns |= _profile_features(profiles[eligible], pr_codes[eligible], len(ids), stamp)

    index = pd.Index(ids, dtype=str, name="customer_id")
    # Sorted ids make the output independent of the input's row order. The rows are
    # picked in their final order before the frame is built: one take per column.
    order = _text_order(index)
    if present.all() and _is_identity(order):  # the usual case: nothing to reorder
        frame = pd.DataFrame(columns, index=index, copy=False)
    else:
        rows = order[present[order]]
        frame = pd.DataFrame(
            {name: values[rows] for name, values in columns.items()},
            index=index[rows],
            copy=False,
        )
    # copy=False: the columns are ours, and pandas would otherwise copy all the float
    # ones into one block (a second copy of the table).
    del columns, present, order
    definitions = definitions_by_name(windows)
    return CustomerFeatures(frame, stamp, definitions, excluded)


def nothing_by_as_of(as_of: pd.Timestamp, earliest: pd.Timestamp) -> str:
    """The message of both paths when no line is on or before ``as_of``."""
    return (
        f"No transaction is on or before as_of={as_of.isoformat()}; the earliest is "
        f"{earliest.isoformat()}. Choose a later as_of."
    )


#: Raised by both paths when validation excluded every line.
NO_LINES_KEPT = (
    "Validation kept no transaction line (see the transactions' report): there is "
    "nothing to compute features from."
)


def checked_browsing_params(
    windows: Sequence[int], abandon_hours: float, session_gap_minutes: float
) -> tuple[int, ...]:
    """The look-back windows as ints, after refusing non-positive browsing parameters."""
    windows = tuple(int(w) for w in windows)
    if any(w <= 0 for w in windows):
        msg = f"The 'windows' parameter must hold positive day counts. Got {windows} instead."
        raise ValueError(msg)
    if abandon_hours <= 0 or session_gap_minutes <= 0:
        msg = "The 'abandon_hours' and 'session_gap_minutes' parameters must be positive."
        raise ValueError(msg)
    return windows


def _text_order(index: pd.Index) -> np.ndarray:
    """Positions that sort distinct text ids in code point order, as ``sort_index`` does.

    Ids of at most 16 UTF-8 bytes (nearly all real ones) are packed into one or two
    big-endian integers each and sorted as numbers: several times faster than comparing
    1.5M strings. Other ids are sorted as text.
    """
    if _sorted_arrow_texts(index):  # ids coded by direct addressing come sorted
        return np.arange(len(index))
    keys = _packed_texts(index)
    if keys is None:
        return index.argsort()
    if len(keys) == 1:
        return np.argsort(keys[0], kind="stable")
    return np.lexsort(keys[::-1])  # lexsort's primary key is its last


def _is_identity(order: np.ndarray) -> bool:
    return bool((order == np.arange(len(order))).all())


def _sorted_arrow_texts(index: pd.Index) -> bool:
    """Whether Arrow-backed texts are already in code point (byte) order."""
    if len(index) < 2 or not (
        isinstance(index.dtype, pd.StringDtype) and index.dtype.storage == "pyarrow"
    ):
        return False
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = pa.array(index.array)
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.null_count:
        return False
    return bool(pc.all(pc.less_equal(texts[:-1], texts[1:])).as_py())


def _packed_texts(index: pd.Index) -> list[np.ndarray] | None:
    """The UTF-8 bytes of each id as 8-byte big-endian words (zero-padded), or ``None``.

    Byte order is code point order. Zero padding cannot tie two distinct ids unless
    one holds a NUL byte, so those (and ids longer than 16 bytes) return ``None``.
    """
    if not (isinstance(index.dtype, pd.StringDtype) and index.dtype.storage == "pyarrow"):
        return None
    import pyarrow as pa

    texts = pa.array(index.array)
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if len(texts) == 0 or texts.null_count or texts.buffers()[2] is None:
        return None
    if pa.types.is_large_string(texts.type):
        offset_type = np.int64
    elif pa.types.is_string(texts.type):
        offset_type = np.int32
    else:
        return None
    offsets = np.frombuffer(texts.buffers()[1], dtype=offset_type)
    offsets = offsets[texts.offset : texts.offset + len(texts) + 1].astype(np.int64)
    data = np.frombuffer(texts.buffers()[2], dtype=np.uint8)
    lengths = np.diff(offsets)
    longest = int(lengths.max())
    if longest > 16 or (data[offsets[0] : offsets[-1]] == 0).any():
        return None
    starts = offsets[:-1]
    last_byte = len(data) - 1
    words = []
    for word in range(1 if longest <= 8 else 2):
        key = np.zeros(len(starts), dtype=np.uint64)
        for position in range(8 * word, 8 * word + 8):
            byte = data[np.minimum(starts + position, last_byte)].astype(np.uint64)
            key = (key << np.uint64(8)) | np.where(position < lengths, byte, np.uint64(0))
        words.append(key)
    return words


def _union(indexes: Iterable[pd.Index]) -> pd.Index:
    values = np.concatenate([np.asarray(index, dtype=object) for index in indexes])
    return pd.Index(pd.unique(values), dtype=object)


def _days(ns: np.ndarray) -> np.ndarray:
    return ns / _DAY_NS


#: Neutral for a minimum of nanosecond times (NaT, the int64 minimum, is for maxima).
_NO_EARLIEST = np.iinfo(np.int64).max


def _group_extreme(codes: np.ndarray, values: np.ndarray, n: int, how: str) -> np.ndarray:
    # Unbuffered ufunc.at is a tight C loop in numpy >= 2: several times faster than a
    # group-by here. Empty groups keep the NaT marker.
    if how == "min":
        out = np.full(n, _NO_EARLIEST, dtype=np.int64)
        np.minimum.at(out, codes, values)
        out[out == _NO_EARLIEST] = _NAT
    else:
        out = np.full(n, _NAT, dtype=np.int64)
        np.maximum.at(out, codes, values)
    return out


def _as_utc_times(ns: np.ndarray) -> pd.api.extensions.ExtensionArray:
    # A view, not a conversion: int64 nanoseconds are what datetime64[ns] stores, and
    # the int64 minimum is NaT.
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC").array


def _purchase_features(
    tx: pd.DataFrame, codes: np.ndarray, ns: np.ndarray, n: int, as_of_ns: int
) -> tuple[dict[str, Any], np.ndarray]:
    """The purchase features, and which customers have at least one line."""
    amount = tx["amount"].to_numpy(dtype=float)
    is_return = tx["is_return"].to_numpy(dtype=bool)
    returns = np.flatnonzero(is_return)
    # 0 − Σ amount is exactly Σ −amount (rounding is symmetric) without a negated copy.
    returned = 0.0 - np.bincount(codes[returns], weights=amount[returns], minlength=n)

    # Per run of an order's adjacent lines rather than per line (see _runs): a few
    # million scatters instead of ten million. An order key has one customer by
    # construction; an order counts unless all of its lines are returns.
    order_key = tx["order_key"].to_numpy()
    starts = run_starts(order_key)
    # In numpy's index type: bincount would otherwise convert it at every call.
    run_customer = codes[starts].astype(np.intp)
    # Every line is in a run, and a run has its order's one customer.
    has_lines = np.zeros(n, dtype=bool)
    has_lines[run_customer] = True
    return_runs, returns_in_run = runs_holding(returns, starts)
    only_returns = return_runs[returns_in_run == run_lengths(return_runs, starts, len(order_key))]
    sales = run_sums(amount, starts, skip=returns, skip_runs=return_runs)
    gross = np.bincount(run_customer, weights=sales, minlength=n)
    del sales, return_runs, returns_in_run
    frequency = _orders_with_a_sale(order_key, starts, run_customer, only_returns, n)
    first, last = _purchase_span(
        codes, ns, n, order_key, starts, run_customer, only_returns, returns
    )
    del starts, run_customer, only_returns

    bought = frequency > 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        recency = np.where(bought, _days(as_of_ns - last), np.nan)
        tenure = np.where(bought, _days(as_of_ns - first), np.nan)
        between = np.where(frequency > 1, _days(last - first) / (frequency - 1), np.nan)
        avg_order = np.where(bought, gross / np.maximum(frequency, 1), np.nan)
        # Nothing bought and nothing returned is a rate of 0; returns without purchases
        # have no meaningful rate.
        return_rate = np.where(gross > 0, returned / gross, np.where(returned > 0, np.nan, 0.0))
    columns: dict[str, Any] = {
        "first_purchase": _as_utc_times(np.where(bought, first, _NAT)),
        "last_purchase": _as_utc_times(np.where(bought, last, _NAT)),
        "recency_days": recency,
        "frequency": frequency.astype(np.int64),
        "monetary": gross - returned,
        "gross_spend": gross,
        "avg_order_value": avg_order,
        "tenure_days": tenure,
        "mean_days_between_orders": between,
        "return_rate": return_rate,
    }
    sale = ~is_return
    if "discount" in tx:
        discount = np.nan_to_num(tx["discount"].to_numpy(dtype=float)) * sale
        total_discount = np.bincount(codes, weights=discount, minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            list_price = gross + total_discount
            columns["discount_share"] = np.where(list_price > 0, total_discount / list_price, 0.0)
    if any(name in tx for name in ("product_id", "category", "quantity")):
        sale_codes = codes[sale]
    if "product_id" in tx:
        columns["n_products"] = _distinct_per_customer(sale_codes, tx["product_id"][sale], n)
    if "category" in tx:
        columns |= _category_features(sale_codes, tx["category"][sale], amount[sale], n)
    if "quantity" in tx:
        units = np.bincount(sale_codes, weights=np.nan_to_num(tx["quantity"][sale]), minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            columns["avg_basket_size"] = np.where(bought, units / np.maximum(frequency, 1), np.nan)
    return columns, has_lines


def _orders_with_a_sale(
    order_key: np.ndarray,
    starts: np.ndarray,
    run_customer: np.ndarray,
    only_returns: np.ndarray,
    n: int,
) -> np.ndarray:
    """Per customer, the orders holding at least one sale line.

    ``only_returns`` are the runs whose lines are all returns.
    """
    n_keys = int(order_key.max()) + 1 if len(order_key) else 0
    if one_run_each(keys_used(order_key[starts], n_keys), len(starts)):
        # Every order is exactly one run (its lines are adjacent), so orders are
        # counted as runs, less the few of returns only.
        runs = np.bincount(run_customer, minlength=n)
        return runs - np.bincount(run_customer[only_returns], minlength=n)
    run_has_sale = np.ones(len(starts), dtype=bool)
    run_has_sale[only_returns] = False
    sale_run_order = order_key[starts[run_has_sale]]
    order_customer = np.zeros(n_keys, dtype=run_customer.dtype)
    order_customer[sale_run_order] = run_customer[run_has_sale]
    order_has_sale = np.zeros(n_keys, dtype=bool)
    order_has_sale[sale_run_order] = True
    return np.bincount(order_customer[order_has_sale], minlength=n)


def _purchase_span(
    codes: np.ndarray,
    ns: np.ndarray,
    n: int,
    order_key: np.ndarray,
    starts: np.ndarray,
    run_customer: np.ndarray,
    only_returns: np.ndarray,
    returns: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's first and last purchase time (NaT for customers without one).

    ``only_returns`` are the runs whose lines are all returns, ``returns`` the return
    lines: neither is a purchase.
    """
    if constant_within_runs(ns, order_key):
        # An order's lines share its time (the usual export): one value per run, the
        # runs of returns only blanked with the neutral value of each reduction.
        run_ns = ns[starts]
        run_ns[only_returns] = _NO_EARLIEST
        first = _group_extreme(run_customer, run_ns, n, "min")
        run_ns[only_returns] = _NAT
        return first, _group_extreme(run_customer, run_ns, n, "max")
    # Line by line: a run may mix sales and returns at different times.
    sale_ns = ns
    if len(returns):
        sale_ns = ns.copy()
        sale_ns[returns] = _NO_EARLIEST
    first = _group_extreme(codes, sale_ns, n, "min")
    if len(returns):
        sale_ns[returns] = _NAT
    return first, _group_extreme(codes, sale_ns, n, "max")


def _distinct_per_customer(codes: np.ndarray, values: pd.Series, n: int) -> np.ndarray:
    value_codes = category_codes(values).astype(np.int64)
    known = value_codes >= 0
    width = len(values.cat.categories) + 1
    pairs = pd.unique(codes[known].astype(np.int64) * width + value_codes[known])
    return np.bincount(pairs // width, minlength=n).astype(np.int64)


def _category_features(
    codes: np.ndarray, category: pd.Series, amount: np.ndarray, n: int
) -> dict[str, Any]:
    cat_codes = category_codes(category).astype(np.int64)
    known = cat_codes >= 0
    width = len(category.cat.categories) + 1
    pair_codes, pairs = pd.factorize(codes[known].astype(np.int64) * width + cat_codes[known])
    spend = np.bincount(pair_codes, weights=amount[known], minlength=len(pairs))
    pair_customer = pairs // width
    pair_category = pairs % width
    n_categories = np.bincount(pair_customer, minlength=n)
    total = np.bincount(pair_customer, weights=spend, minlength=n)
    # Most spend first; on equal spend the alphabetically first category (codes of a
    # categorical follow its sorted categories only if sorted, so rank the names).
    names = np.asarray(category.cat.categories, dtype=object)
    name_rank = np.argsort(np.argsort(names.astype(str)))
    order = np.lexsort((name_rank[pair_category], -spend, pair_customer))
    first_of_customer = np.r_[True, pair_customer[order][1:] != pair_customer[order][:-1]]
    winners = order[first_of_customer] if len(order) else order
    top = np.full(n, None, dtype=object)
    top_spend = np.zeros(n)
    top[pair_customer[winners]] = names[pair_category[winners]]
    top_spend[pair_customer[winners]] = spend[winners]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, top_spend / total, np.nan)
    return {
        "n_categories": n_categories.astype(np.int64),
        "top_category": top,
        "top_category_share": share,
    }


def _order_times(tx: pd.DataFrame, codes: np.ndarray, ns: np.ndarray) -> pd.DataFrame:
    sale = ~tx["is_return"].to_numpy(dtype=bool)
    return pd.DataFrame({"customer": codes[sale], "ts": ns[sale]})


def _browsing_features(
    ev: pd.DataFrame,
    codes: np.ndarray,
    ns: np.ndarray,
    n: int,
    as_of_ns: int,
    *,
    windows: tuple[int, ...],
    purchases: pd.DataFrame,
    abandon_ns: int,
    gap_ns: int,
) -> dict[str, Any]:
    kind = ev["event_type"].astype(object).to_numpy()
    is_view = kind == "view"
    is_cart = kind == "add_to_cart"
    is_purchase = kind == "purchase"

    sessions = _sessions(ev, codes, ns, gap_ns)
    session_of = sessions["session_of_event"]
    n_sessions = sessions["n"]
    s_customer = np.zeros(n_sessions, dtype=np.int64)
    s_customer[session_of] = codes
    s_start = _group_extreme(session_of, ns, n_sessions, "min")
    s_end = _group_extreme(session_of, ns, n_sessions, "max")
    if "duration_s" in ev:
        seconds = np.nan_to_num(ev["duration_s"].to_numpy(dtype=float))
        s_seconds = np.bincount(session_of, weights=seconds, minlength=n_sessions)
    else:
        s_seconds = (s_end - s_start) / 1e9
    s_cart = _group_extreme(session_of[is_cart], ns[is_cart], n_sessions, "max")
    has_cart = s_cart != _NAT

    all_purchases = pd.concat(
        [purchases, pd.DataFrame({"customer": codes[is_purchase], "ts": ns[is_purchase]})],
        ignore_index=True,
    )
    abandoned = has_cart & _no_purchase_after(
        s_customer, s_cart, all_purchases, abandon_ns, as_of_ns
    )

    columns: dict[str, Any] = {}
    last_visit = _group_extreme(codes, ns, n, "max")
    with np.errstate(invalid="ignore"):
        columns["days_since_last_visit"] = np.where(
            last_visit != _NAT, _days(as_of_ns - last_visit), np.nan
        )
    for w in windows:
        start = as_of_ns - w * _DAY_NS
        recent = ns > start
        recent_session = s_start > start
        columns[f"views_{w}d"] = np.bincount(codes[recent & is_view], minlength=n)
        columns[f"add_to_carts_{w}d"] = np.bincount(codes[recent & is_cart], minlength=n)
        columns[f"sessions_{w}d"] = np.bincount(s_customer[recent_session], minlength=n)
        columns[f"time_on_site_{w}d"] = (
            np.bincount(s_customer[recent_session], weights=s_seconds[recent_session], minlength=n)
            / 60.0
        )
        recent_cart = abandoned & (s_cart > start)
        columns[f"abandoned_carts_{w}d"] = np.bincount(s_customer[recent_cart], minlength=n)
    return columns


def _sessions(ev: pd.DataFrame, codes: np.ndarray, ns: np.ndarray, gap_ns: int) -> dict[str, Any]:
    if "session_id" in ev:
        session_codes = category_codes(ev["session_id"]).astype(np.int64)
        width = len(ev["session_id"].cat.categories) + 1
        # Events without a session id form one visit per customer and day.
        fallback = width + ns // _DAY_NS
        key = np.where(session_codes >= 0, session_codes, fallback)
        labels, uniques = pd.factorize(pd.MultiIndex.from_arrays([codes, key]))
        return {"session_of_event": labels.astype(np.int64), "n": len(uniques)}
    order = np.lexsort((ns, codes))
    sorted_codes = codes[order]
    sorted_ns = ns[order]
    new = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        new[1:] = (sorted_codes[1:] != sorted_codes[:-1]) | (np.diff(sorted_ns) > gap_ns)
    sorted_labels = np.cumsum(new) - 1
    labels = np.empty(len(order), dtype=np.int64)
    labels[order] = sorted_labels
    return {"session_of_event": labels, "n": int(new.sum())}


def _no_purchase_after(
    customer: np.ndarray,
    cart_ns: np.ndarray,
    purchases: pd.DataFrame,
    abandon_ns: int,
    as_of_ns: int,
) -> np.ndarray:
    """For each session's last cart time: no purchase within the window, and decidable."""
    carts = pd.DataFrame({"customer": customer, "ts": cart_ns, "row": np.arange(len(customer))})
    carts = carts[carts["ts"] != _NAT].sort_values("ts", kind="stable")
    purchases = purchases.sort_values("ts", kind="stable").rename(columns={"ts": "bought"})
    purchases["bought_ts"] = purchases["bought"]
    matched = pd.merge_asof(
        carts,
        purchases[["customer", "bought", "bought_ts"]],
        left_on="ts",
        right_on="bought",
        by="customer",
        direction="forward",
        allow_exact_matches=True,
    )
    next_purchase = matched["bought_ts"].to_numpy(dtype=float)
    cart_time = matched["ts"].to_numpy()
    no_purchase = np.isnan(next_purchase) | (next_purchase - cart_time > abandon_ns)
    decidable = cart_time + abandon_ns <= as_of_ns
    out = np.zeros(len(customer), dtype=bool)
    out[matched["row"].to_numpy()] = no_purchase & decidable
    return out


def _profile_features(
    profiles: pd.DataFrame, codes: np.ndarray, n: int, as_of: pd.Timestamp
) -> dict[str, Any]:
    columns: dict[str, Any] = {}

    def spread(values: Any, fill: Any, dtype: Any = object) -> np.ndarray:
        out = np.full(n, fill, dtype=dtype)
        out[codes] = np.asarray(values, dtype=dtype)
        return out

    age = None
    if "birth_date" in profiles:
        born = profiles["birth_date"]
        years = as_of.year - born.dt.year
        before_birthday = (as_of.month < born.dt.month) | (
            (as_of.month == born.dt.month) & (as_of.day < born.dt.day)
        )
        age = (years - before_birthday.astype(float)).astype(float)
    if "age" in profiles:
        given = profiles["age"].astype(float)
        age = given if age is None else age.fillna(given)
    if age is not None:
        columns["age"] = spread(age.to_numpy(dtype=float), np.nan, float)
    for name in ("age_band", "gender", "city", "region", "country"):
        if name in profiles:
            columns[name] = spread(profiles[name].astype(object).to_numpy(), None)
    if "signup_date" in profiles:
        signup = to_ns(profiles["signup_date"])
        days = np.where(signup == _NAT, np.nan, _days(as_of.value - signup))
        columns["days_since_signup"] = spread(days, np.nan, float)
    for name in ("consent_email", "consent_sms", "consent_ads"):
        if name in profiles:
            flags = profiles[name].astype("boolean").to_numpy(dtype=object, na_value=None)
            columns[name] = pd.array(spread(flags, None), dtype="boolean")
    canonical = set(Customers.contract.names)
    for name in profiles.columns:
        if name not in canonical and name not in PII_COLUMNS:
            columns[name] = spread(profiles[name].to_numpy(dtype=object), None)
    return columns
