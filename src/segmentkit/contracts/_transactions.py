"""The ``Transactions`` contract: order lines, with explicit policies for messy rows."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit._common._runs import constant_within_runs, keys_used, one_run_each, run_starts
from segmentkit._frame import is_pandas
from segmentkit.contracts._attributes import (
    Attributes,
    blank_is_missing,
    blanks_missing,
    product_attributes,
    with_attributes,
)
from segmentkit.contracts._dates import check_date_options
from segmentkit.contracts._policies import (
    FUTURE_REASON,
    INVALID_REASONS,
    PRODUCT_REASON,
    TRANSACTION_OPTIONS,
    OrdersFrom,
    boolean_failure,
    check_rates,
    duplicate_lines,
    future_cutoff,
    future_message,
    invalid_value_failure,
    is_boolean_column,
    product_patterns,
    products_matching,
)
from segmentkit.contracts._schema import (
    ColumnSpec,
    Contract,
    category_codes,
    examples,
    raise_if,
    to_ns,
    used_by_name,
)
from segmentkit.contracts._table import _Table, exclude_rows, missing_ids
from segmentkit.contracts._validation import ValidationReport
from segmentkit.errors import ContractFailure, InvalidParameterError, Reason, SegmentkitWarning

if TYPE_CHECKING:
    # polars, pyarrow, DuckDB, PySpark or Dask: validated there, returned as the same
    # contract class (its narwhals subclass, whose rows stay in that library).
    from narwhals.typing import IntoFrame

__all__ = ["Transactions", "TransactionsContract"]

TransactionsContract = Contract(
    table="transactions",
    columns=(
        ColumnSpec("customer_id", "id", True, "Who bought."),
        ColumnSpec("timestamp", "datetime", True, "When; normalised to UTC."),
        ColumnSpec("amount", "float", False, "Line value paid (after discounts)."),
        ColumnSpec("quantity", "float", False, "Units on the line."),
        ColumnSpec("unit_price", "float", False, "Price per unit; amount = quantity × price."),
        ColumnSpec("order_id", "id", False, "Order (basket, invoice) the line belongs to."),
        ColumnSpec("product_id", "id", False, "Product bought."),
        ColumnSpec("category", "category", False, "Product category."),
        ColumnSpec("brand", "category", False, "Brand of the product."),
        ColumnSpec("discount", "float", False, "Discount granted on the line (>= 0)."),
        ColumnSpec("promo_code", "category", False, "Promotion or coupon code used, if any."),
        ColumnSpec("currency", "category", False, "ISO 4217 currency of amount."),
        ColumnSpec("channel", "category", False, "Sales channel (web, app, store...)."),
    ),
)

ReturnsPolicy = Literal["net", "exclude", "separate"]

_POLICY_KEYS = [
    "returns",
    "cancellation_prefix",
    "missing_customer",
    "zero_amount",
    "duplicates",
    "orders_from",
    "timezone",
    "rates",
    "base_currency",
    "date_format",
    "dayfirst",
    "exclude_products",
    "future",
    "max_timestamp",
    "invalid_values",
    "attributes",
]


class Transactions(_Table):
    """Validated order lines: one row per product line (or per order), in canonical columns.

    Build it with :meth:`from_frame`, :meth:`from_csv` or :meth:`from_parquet`.

    Canonical columns: ``customer_id``, ``timestamp`` (UTC), ``amount`` (derived from
    ``quantity × unit_price`` when not given), ``order_key`` (the order each line
    belongs to, see ``orders_from``), ``is_return``, and whichever optional columns
    were mapped: ``order_id``, ``quantity``, ``unit_price``, ``product_id``,
    ``category``, ``brand``, ``discount``, ``promo_code``, ``currency``, ``channel``.

    Parameters
    ----------
    data : pandas.DataFrame
        Already validated rows in canonical columns (use :meth:`from_frame` to build one).
    report : ValidationReport
        The account of the input rows.
    returns : pandas.DataFrame
        Return lines set aside.

    Attributes
    ----------
    data : pandas.DataFrame
        The kept rows.
    report : ValidationReport
        Rows read, kept and excluded by reason.
    returns : pandas.DataFrame
        Return and cancellation lines set aside by ``returns='separate'`` (empty otherwise).

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> raw = pd.DataFrame({
    ...     "CustomerID": ["a", "a", "b", None],
    ...     "InvoiceDate": ["2024-01-05", "2024-02-01", "2024-02-03", "2024-02-04"],
    ...     "Total": [20.0, 35.5, 12.0, 9.9],
    ... })
    >>> tx = sk.Transactions.from_frame(
    ...     raw, customer_id="CustomerID", timestamp="InvoiceDate", amount="Total"
    ... )
    >>> print(tx.report)
    transactions: 4 rows read, 3 kept (75.0%), 1 excluded
      - missing_customer_id: 1
    >>> float(tx.data["amount"].sum())
    67.5
    """

    contract = TransactionsContract
    _options = TRANSACTION_OPTIONS

    def __init__(
        self, data: pd.DataFrame, report: ValidationReport, returns: pd.DataFrame
    ) -> None:
        super().__init__(data, report)
        self._returns = returns

    @property
    def product_attributes(self) -> tuple[str, ...]:
        """The product attribute columns present: ``category``, ``brand``, then the
        ``attributes=`` mapped, in that order."""
        return product_attributes(self.contract, self.columns)

    @property
    def returns(self) -> pd.DataFrame:
        """Return and cancellation lines kept aside by ``returns='separate'``."""
        return self._returns

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame | IntoFrame,
        /,
        *,
        returns: ReturnsPolicy = "net",
        cancellation_prefix: str | None = None,
        missing_customer: Literal["exclude", "raise"] = "exclude",
        zero_amount: Literal["keep", "exclude"] = "keep",
        duplicates: Literal["keep", "drop"] = "keep",
        orders_from: OrdersFrom = "timestamp",
        timezone: str = "UTC",
        rates: Mapping[str, float] | None = None,
        base_currency: str | None = None,
        date_format: str | None = None,
        dayfirst: bool | None = None,
        exclude_products: str | Sequence[str] | None = None,
        future: Literal["exclude", "keep", "raise"] = "exclude",
        max_timestamp: Any = None,
        invalid_values: Literal["raise", "exclude"] = "raise",
        attributes: Attributes = None,
        **columns: str,
    ) -> Self:
        """Validate a frame of order lines against the transactions contract.

        Parameters
        ----------
        frame : pandas.DataFrame or a polars, pyarrow, DuckDB, PySpark or Dask frame
            Raw order lines with the user's column names. A polars, pyarrow, DuckDB,
            PySpark or Dask frame is validated in its own engine and stays there (see
            the Scaling page of the docs).
        returns : {'net', 'exclude', 'separate'}, default='net'
            What to do with return and cancellation lines (negative amounts, or order ids
            starting with ``cancellation_prefix``). ``'net'`` keeps them, so spend is net of
            returns and ``return_rate`` can be computed; ``'exclude'`` drops them (counted);
            ``'separate'`` moves them to :attr:`returns` (counted).
        cancellation_prefix : str, optional
            Order ids starting with this text are cancellations (e.g. ``'C'`` in the UCI
            Online Retail data); their amounts are made negative.
        missing_customer : {'exclude', 'raise'}, default='exclude'
            Lines without a customer id cannot be attributed to anyone: exclude them
            (counted) or raise.
        zero_amount : {'keep', 'exclude'}, default='keep'
            Whether lines worth exactly 0 (free items, samples) count as purchases.
        duplicates : {'keep', 'drop'}, default='keep'
            Lines that repeat an earlier line in every mapped column. Some sources hold
            genuine repeats (two identical orders on one day), so they are kept and
            counted in the report (``report.flagged['duplicate_line']``); drop them when
            your export is known to duplicate rows.
        orders_from : {'timestamp', 'day', 'row'}, default='timestamp'
            How lines form orders when no ``order_id`` is mapped: one order per customer
            and timestamp, per customer and UTC calendar day, or one order per line.
        timezone : str, default='UTC'
            Time zone of timestamps that carry none; every timestamp is converted to UTC.
        rates : dict of str to float, optional
            Exchange rates to ``base_currency`` (units of base currency per unit of each
            currency). Required when the data mixes currencies.
        base_currency : str, optional
            Currency that amounts are converted to; required with ``rates``.
        date_format : str, optional
            How text dates are written, as a ``strftime`` pattern such as
            ``'%d.%m.%Y %H:%M'``; or ``'epoch'`` / ``'epoch_ms'`` for numbers of seconds /
            milliseconds since 1970-01-01 UTC. Without it, ISO 8601 is read as such and
            numeric day/month dates use ``dayfirst`` or the order the data settles.
        dayfirst : bool, optional
            For numeric dates such as ``01.02.2024``: ``True`` reads day first, ``False``
            month first. Left out, the data must settle it (a value like ``13.02.2024``
            fits only day first; the report notes the choice), else it is refused.
        exclude_products : str or list of str, optional
            Product ids or glob patterns (``'POST'``, ``'BANK CHARGES'``, ``'gift_*'``) of
            lines that are not sales of products: postage, fees, gift cards. They are
            left out of spend and counts, and reported as ``excluded_product`` with
            their value. A string is split on commas. Needs ``product_id`` mapped.
        future : {'exclude', 'keep', 'raise'}, default='exclude'
            Lines dated after ``max_timestamp``: left out with a
            :class:`~segmentkit.errors.SegmentkitWarning` (counted as
            ``future_timestamp``), kept, or refused.
        max_timestamp : str or datetime-like, optional
            The latest possible line time; by default the time of the run. Pass it
            for a reproducible run. A time without zone is UTC.
        invalid_values : {'raise', 'exclude'}, default='raise'
            Lines with a value that cannot be right: a negative ``unit_price`` on a line
            that is not a return, an amount too large for a number (``quantity ×
            unit_price`` or a currency conversion overflowing), a negative
            ``discount``. Refused with a :class:`~segmentkit.errors.ContractError`
            listing them, or left out and counted (``negative_unit_price``,
            ``non_finite_amount``, ``negative_discount``).
        attributes : dict of str to str, or list of str, optional
            Extra product attributes to keep beside ``category`` and ``brand``, e.g.
            ``{'department': 'DEPARTMENT', 'product_type': 'TYPE'}`` (attribute name to
            your column), or a list of your column names kept under their own names.
            They are read like ``category`` (text, trimmed; blank is missing) and
            listed by :attr:`product_attributes`. A name may not be a canonical column.
        **columns : str
            Column mapping from canonical names to the frame's names, e.g.
            ``customer_id='CustomerID'``. Canonical names: ``customer_id``, ``timestamp``,
            ``amount``, ``quantity``, ``unit_price``, ``order_id``, ``product_id``,
            ``category``, ``brand``, ``discount``, ``promo_code``, ``currency``, ``channel``.

        Returns
        -------
        Transactions
            The validated lines and the report of what was kept.
            For a frame of another library, a Transactions whose rows stay there (``.native``,
            ``.to_pandas()``); ``.data`` then refuses to collect them.

        Raises
        ------
        segmentkit.errors.ContractError
            If columns are missing or unmappable, the input is empty, values cannot be
            parsed, hold impossible values (see ``invalid_values``), or currencies are
            mixed without rates. Every failure is listed.
        """
        cls._check_options(
            returns=returns, missing_customer=missing_customer, zero_amount=zero_amount,
            duplicates=duplicates, orders_from=orders_from, future=future,
            invalid_values=invalid_values,
        )  # fmt: skip
        contract, columns = with_attributes(cls.contract, attributes, columns)
        if not is_pandas(frame):  # polars, DuckDB, Spark...: validated and kept there
            return cls._from_native(
                contract, frame, returns=returns, cancellation_prefix=cancellation_prefix,
                missing_customer=missing_customer, zero_amount=zero_amount, duplicates=duplicates,
                orders_from=orders_from, timezone=timezone, rates=rates,
                base_currency=base_currency, exclude_products=exclude_products,
                future=future, max_timestamp=max_timestamp, invalid_values=invalid_values,
                policy_keys=_POLICY_KEYS, columns=columns,
                dates=check_date_options(date_format, dayfirst),
            )  # fmt: skip
        table = cls.contract.table
        if (rates is None) != (base_currency is None):
            msg = "Pass 'rates' and 'base_currency' together (or neither)."
            raise InvalidParameterError(msg)
        if rates is not None:
            check_rates(rates)
        patterns = product_patterns(exclude_products)
        cutoff, cutoff_name = future_cutoff(max_timestamp)
        _refuse_boolean_numbers(frame, columns, table)

        dates = check_date_options(date_format, dayfirst)
        read_notes: list[str] = []
        data = cls._canonical(
            frame, columns, timezone=timezone, extra_keys=_POLICY_KEYS, dates=dates,
            notes=read_notes, contract=contract,
        )  # fmt: skip
        for name in blank_is_missing(contract):
            if name in data:
                data[name] = blanks_missing(data[name])
        if patterns and "product_id" not in data:
            msg = (
                "'exclude_products' needs a product_id column: map product_id='<column>' "
                "(on the command line: --map product_id=<column>)."
            )
            raise InvalidParameterError(msg)
        # Duplicates are judged on what the mapping reads, before derived columns.
        mapped = list(data.columns)
        read_notes += used_by_name(mapped, columns)
        rows_read = len(data)
        failures: list[ContractFailure] = []
        data = _with_amount(data, failures)
        if rates is not None and base_currency is not None:
            data = _convert_currency(data, rates, base_currency, failures)
        else:
            _refuse_mixed_currencies(data, failures)
        raise_if(failures, table)

        excluded: dict[str, int] = {}
        amounts: dict[str, float] = {}
        flagged: dict[str, int] = {}
        notes: list[str] = list(read_notes)
        keep = np.ones(rows_read, dtype=bool)

        missing_id = missing_ids(data, missing_customer, table)
        exclude_rows(keep, missing_id, "missing_customer_id", excluded)
        exclude_rows(keep, data["timestamp"].isna().to_numpy(), "missing_timestamp", excluded)
        exclude_rows(keep, data["amount"].isna().to_numpy(), "missing_amount", excluded)
        cancelled = None
        if cancellation_prefix is not None:
            if "order_id" not in data:
                msg = "'cancellation_prefix' needs an order_id column: map order_id='...'."
                raise InvalidParameterError(msg)
            cancelled = _starts_with(data["order_id"], cancellation_prefix)
        if patterns:
            product = products_matching(data["product_id"], patterns) & keep
            if product.any():
                # Valued as booked: a cancelled line counts negative, as it would if kept.
                value = data["amount"].to_numpy()[product]
                if cancelled is not None:
                    value = np.where(cancelled[product], -np.abs(value), value)
                amounts[PRODUCT_REASON] = float(value.sum())
            exclude_rows(keep, product, PRODUCT_REASON, excluded)
        if future != "keep":
            late = (to_ns(data["timestamp"]) > cutoff.value) & keep
            if late.any():
                message = future_message(int(late.sum()), cutoff_name, future)
                if future == "raise":
                    raise_if([_future_failure(message, late, data["timestamp"])], table)
                warnings.warn(message, SegmentkitWarning, stacklevel=2)
            exclude_rows(keep, late, FUTURE_REASON, excluded)

        _invalid_values(data, keep, cancelled, "amount" in mapped, invalid_values, excluded)

        is_return = data["amount"].to_numpy() < 0
        if cancelled is not None:
            data["amount"] = np.where(cancelled, -data["amount"].abs(), data["amount"])
            is_return |= cancelled
        data["is_return"] = is_return

        if zero_amount == "exclude":
            exclude_rows(keep, data["amount"].to_numpy() == 0, "zero_amount", excluded)
        returns_frame = data.iloc[0:0]
        if returns == "exclude":
            exclude_rows(keep, is_return, "return_or_cancellation", excluded)
        elif returns == "separate":
            returns_frame = data[keep & is_return]
            exclude_rows(keep, is_return, "return_kept_separately", excluded)
        repeated = duplicate_lines(data, mapped) & keep
        if duplicates == "drop":
            exclude_rows(keep, repeated, "duplicate_line", excluded)
        elif repeated.any():
            flagged["duplicate_line"] = int(repeated.sum())
        if rates is not None:
            notes.append(f"amounts converted to {base_currency} with the given rates")

        all_kept = bool(keep.all())
        # Nothing excluded (the usual case): no copy of every column.
        kept = data if all_kept else data[keep]
        del data
        kept = kept.assign(order_key=_order_keys(kept, orders_from))
        coded = ("customer_id", "order_id", "product_id", "promo_code")
        for name in (*coded, *product_attributes(contract, list(kept.columns))):
            if name in kept and not all_kept:
                kept[name] = kept[name].cat.remove_unused_categories()
        report = ValidationReport(table, rows_read, len(kept), excluded, notes, amounts, flagged)
        return cls(kept.reset_index(drop=True), report, returns_frame.reset_index(drop=True))


def _refuse_boolean_numbers(frame: pd.DataFrame, columns: Mapping[str, str], table: str) -> None:
    """A true/false column mapped to a number would be read as 1.0 and 0.0: refuse it."""
    failures = []
    for key in ("amount", "quantity", "unit_price", "discount"):
        source = columns.get(key, key)
        # A repeated column name selects a frame: the mapping check reports that.
        values = frame[source] if source in frame.columns else None
        if isinstance(values, pd.Series) and is_boolean_column(values):
            failures.append(boolean_failure(key, source, table))
    raise_if(failures, table)


def _future_failure(message: str, late: np.ndarray, timestamps: pd.Series) -> ContractFailure:
    return ContractFailure(
        column="timestamp",
        check=FUTURE_REASON,
        reason=Reason.OUT_OF_RANGE,
        message=message,
        failure_cases=examples(late, timestamps.astype(str)),
        n_failed=int(late.sum()),
    )


def _invalid_values(
    data: pd.DataFrame,
    keep: np.ndarray,
    cancelled: np.ndarray | None,
    amount_given: bool,
    policy: str,
    excluded: dict[str, int],
) -> None:
    """Refuse (or exclude, counted) values that cannot be right, among lines still kept."""
    masks: dict[str, np.ndarray] = {}
    amount = data["amount"].to_numpy()
    masks["amount"] = np.isinf(amount)
    if "unit_price" in data:
        negative = data["unit_price"].to_numpy() < 0
        # A return line may carry a negative price when its amount says it is one; a
        # derived amount (quantity × price) would flip sign, so it never may.
        returning = amount < 0 if amount_given else np.zeros(len(amount), dtype=bool)
        if cancelled is not None:
            returning = returning | cancelled
        masks["unit_price"] = negative & ~returning
    if "discount" in data:
        masks["discount"] = data["discount"].to_numpy() < 0
    if policy == "exclude":
        for column, mask in masks.items():
            exclude_rows(keep, mask, INVALID_REASONS[column], excluded)
        return
    failures = []
    for column, mask in masks.items():
        bad = mask & keep
        if bad.any():
            cases = examples(bad, data[column])
            failures.append(invalid_value_failure(column, int(bad.sum()), cases, "transactions"))
    raise_if(failures, "transactions")


def _with_amount(data: pd.DataFrame, failures: list[ContractFailure]) -> pd.DataFrame:
    if "amount" in data:
        return data
    if "quantity" in data and "unit_price" in data:
        with np.errstate(over="ignore"):  # overflow is refused as an infinite amount
            return data.assign(amount=data["quantity"] * data["unit_price"])
    failures.append(
        ContractFailure(
            column="amount",
            check="required_column",
            reason=Reason.MISSING_COLUMN,
            message=(
                "The transactions need a value per line: map amount='<column>', or both "
                "quantity='<column>' and unit_price='<column>'."
            ),
        )
    )
    return data


def _refuse_mixed_currencies(data: pd.DataFrame, failures: list[ContractFailure]) -> None:
    if "currency" not in data:
        return
    counts = data["currency"].value_counts()
    counts = counts[counts > 0]
    if len(counts) > 1:
        listed = ", ".join(f"{c} ({n} rows)" for c, n in counts.items())
        failures.append(
            ContractFailure(
                column="currency",
                check="single_currency",
                reason=Reason.MIXED_CURRENCIES,
                message=(
                    f"Column 'currency' mixes {len(counts)} currencies: {listed}. Amounts in "
                    "different currencies cannot be added up. Pass rates={'EUR': 1.08, ...} "
                    "and base_currency='USD' to convert them, or filter to one currency."
                ),
                n_failed=int(counts.iloc[1:].sum()),
            )
        )


def _convert_currency(
    data: pd.DataFrame,
    rates: Mapping[str, float],
    base_currency: str,
    failures: list[ContractFailure],
) -> pd.DataFrame:
    if "currency" not in data:
        msg = "'rates' were given but no currency column is mapped: map currency='<column>'."
        raise InvalidParameterError(msg)
    full_rates = {base_currency: 1.0, **{str(k): float(v) for k, v in rates.items()}}
    currency = data["currency"].astype(object)
    rate = currency.map(full_rates).astype("float64")
    unknown = rate.isna().to_numpy()
    if unknown.any():
        missing = sorted({str(c) for c in currency[unknown]})
        failures.append(
            ContractFailure(
                column="currency",
                check="known_rate",
                reason=Reason.MIXED_CURRENCIES,
                message=(
                    f"No exchange rate for currencies {missing} (or the currency is missing). "
                    f"Add them to 'rates' (units of {base_currency} per unit)."
                ),
                failure_cases=examples(unknown, data["currency"]),
                n_failed=int(unknown.sum()),
            )
        )
        return data
    with np.errstate(over="ignore"):  # overflow is refused as an infinite amount
        converted = data.assign(amount=data["amount"] * rate)
    for name in ("discount", "unit_price"):
        if name in converted:
            converted[name] = converted[name] * rate
    converted["currency"] = pd.Categorical([base_currency] * len(converted))
    return converted


def _starts_with(order_id: pd.Series, prefix: str) -> np.ndarray:
    categories = order_id.cat.categories.astype(str)
    flagged = np.asarray(categories.str.startswith(prefix), dtype=bool)
    codes = category_codes(order_id)
    return (codes >= 0) & flagged[np.maximum(codes, 0)]


def _order_keys(data: pd.DataFrame, orders_from: OrdersFrom) -> np.ndarray:
    """An integer per (customer, order), in first-seen order."""
    customer = category_codes(data["customer_id"])
    if "order_id" in data:
        second = category_codes(data["order_id"])
        single = _orders_of_one_customer(customer, second, len(data["order_id"].cat.categories))
        if single is not None:
            return single
    elif orders_from == "row":
        return np.arange(len(data), dtype=np.int64)
    else:
        ns = to_ns(data["timestamp"])
        if orders_from == "day":
            ns = ns // (86_400 * 10**9)
        second = ns
    # Two int codes fold into one int64 key (customers × distinct seconds stays far below
    # 2**63), which factorises several times faster than a MultiIndex of pairs.
    second_codes, second_uniques = pd.factorize(second)
    customer = customer.astype(np.int64)
    codes, _ = pd.factorize(customer * max(len(second_uniques), 1) + second_codes)
    return codes.astype(np.int64)


def _orders_of_one_customer(
    customer: np.ndarray, order: np.ndarray, n_order_ids: int
) -> np.ndarray | None:
    """Order keys straight from the order codes when every order id has one customer.

    That is the normal case, and then (customer, order) pairs and order ids are one to
    one: the order codes are the keys, with no hashing of pairs. ``None`` when an order
    id is shared by customers or missing.
    """
    if len(order) == 0 or order.min() < 0:
        return None
    # Checked run by run (an order's lines are usually adjacent): the customer may
    # not change inside a run, and each run's order must belong to its customer.
    if not constant_within_runs(customer, order):
        return None
    starts = run_starts(order)
    run_order, run_customer = order[starts], customer[starts]
    del starts
    used = keys_used(run_order, n_order_ids)
    if not one_run_each(used, len(run_order)):
        # Some order id spans several runs: all of them must have the same customer.
        owner = np.full(n_order_ids, -1, dtype=customer.dtype)
        owner[run_order] = run_customer
        if not np.array_equal(owner[run_order], run_customer):
            return None
    if used.all():
        return order
    # Excluded rows left codes unused: number the used ones densely (no hashing).
    renumbered = np.cumsum(used) - 1
    return renumbered[order]
