"""Reading an A/B test: conversion and revenue of each arm against the control, per segment."""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Literal, TypeGuard

import numpy as np
import pandas as pd
from scipy import stats

from segmentkit._common._files import PathLike
from segmentkit._common._params import NONE, PATH, InstanceOf, Interval, OneOf, validated
from segmentkit.errors import InvalidParameterError, SegmentkitWarning
from segmentkit.timeline._groups import GroupAssignment

__all__ = ["ExperimentAnalysis", "analyze_test"]

#: Segment label of the rows about every customer of the test.
ALL_CUSTOMERS = "All customers"
COLUMNS = [
    "segment",
    "arm",
    "customers",
    "conversions",
    "conversion_rate",
    "conversion_ci_low",
    "conversion_ci_high",
    "revenue_per_customer",
    "revenue_ci_low",
    "revenue_ci_high",
    "conversion_lift",
    "conversion_p_value",
    "revenue_lift",
    "revenue_p_value",
    "conclusive",
    "note",
]
# Bootstrap draws are made in blocks of about this many numbers, so memory stays small
# whatever the number of customers.
_BLOCK = 2_000_000


class ExperimentAnalysis:
    """Conversion and revenue of every arm against the control, overall and per segment.

    Made by :func:`analyze_test`.

    Parameters
    ----------
    table : pandas.DataFrame
        The result table (see Attributes).
    control : str
        Name of the control arm.
    confidence : float
        Confidence level of the intervals.
    revenue_test : {'welch', 'bootstrap'}
        How revenue was compared.
    missing_outcomes : int
        Assigned customers without a row in the outcomes.
    unknown_customers : pandas.Index
        Outcome customers that are in no arm.
    min_customers, min_conversions : int
        The rule an arm must meet for a comparison to be conclusive.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per segment × arm, the ``'All customers'`` rows first, then the segments
        in id order, arms in their order. Columns:

        * ``segment``, ``arm``, ``customers``, ``conversions``;
        * ``conversion_rate`` and its Wilson score interval ``conversion_ci_low``,
          ``conversion_ci_high``;
        * ``revenue_per_customer`` (mean revenue, non-buyers counted as 0) and its
          interval ``revenue_ci_low``, ``revenue_ci_high`` (t-based, or bootstrap
          percentiles);
        * ``conversion_lift`` and ``revenue_lift``: (arm − control) / control; NaN on
          control rows and where the control's figure is 0;
        * ``conversion_p_value`` (two-proportion z-test, pooled) and
          ``revenue_p_value`` (Welch's t-test or bootstrap), two-sided, against the
          control of the same segment; NaN on control rows;
        * ``conclusive``: whether the arm *and* the control of that segment each have
          at least ``min_customers`` customers and ``min_conversions`` conversions
          (on control rows, whether the control does). Not the same as significant:
          a conclusive comparison can show no difference;
        * ``note``: why a row is not conclusive, or what its p-values say.
    control : str
        The control arm.
    confidence : float
        The confidence level; p-values below ``1 - confidence`` are called
        significant in the notes.
    revenue_test : str
        ``'welch'`` or ``'bootstrap'``.
    missing_outcomes : int
        Assigned customers with no outcome row, counted as not converted with revenue 0.
    unknown_customers : pandas.Index
        Customers of the outcomes that are in no arm, left out of the analysis.
    min_customers, min_conversions : int
        The sample-size rule of ``conclusive``.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> customers = pd.DataFrame({"customer_id": [str(i) for i in range(2000)]})
    >>> groups = sk.assign_groups(customers, arms={"control": 0.5, "offer": 0.5},
    ...                           salt="demo", stratify_by=None)
    >>> offer = set(groups.members("offer"))
    >>> outcomes = pd.DataFrame({
    ...     "customer_id": customers["customer_id"],
    ...     "converted": [int(c) % (8 if c in offer else 10) == 0
    ...                   for c in customers["customer_id"]],
    ... })
    >>> result = sk.analyze_test(groups, outcomes, revenue=None)
    >>> result.table[["arm", "customers", "conversion_rate", "conversion_lift"]].round(3)
           arm  customers  conversion_rate  conversion_lift
    0  control       1000            0.091              NaN
    1    offer       1000            0.120            0.319
    """

    def __init__(
        self,
        table: pd.DataFrame,
        *,
        control: str,
        confidence: float,
        revenue_test: str,
        missing_outcomes: int,
        unknown_customers: pd.Index,
        min_customers: int,
        min_conversions: int,
    ) -> None:
        self.table = table
        self.control = control
        self.confidence = confidence
        self.revenue_test = revenue_test
        self.missing_outcomes = missing_outcomes
        self.unknown_customers = unknown_customers
        self.min_customers = min_customers
        self.min_conversions = min_conversions

    @validated(segment=[InstanceOf((str,), "a segment name (str)")])
    def summary(self, segment: str = ALL_CUSTOMERS) -> pd.DataFrame:
        """The key figures of one segment, one row per arm.

        Parameters
        ----------
        segment : str, default='All customers'
            A segment of :attr:`table`.

        Returns
        -------
        pandas.DataFrame
            Indexed by arm: ``customers``, ``conversion_rate``, ``conversion_lift``,
            ``conversion_p_value``, ``revenue_per_customer``, ``revenue_lift``,
            ``revenue_p_value``, ``conclusive``, ``note``.

        Raises
        ------
        segmentkit.errors.UnknownSegmentError
            If the table has no such segment.

        Examples
        --------
        >>> import pandas as pd
        >>> import segmentkit as sk
        >>> customers = pd.DataFrame({"customer_id": [str(i) for i in range(400)]})
        >>> groups = sk.assign_groups(customers, arms={"control": 0.5, "offer": 0.5},
        ...                           salt="demo", stratify_by=None)
        >>> outcomes = pd.DataFrame({"customer_id": ["1", "2"], "revenue": [10.0, 30.0]})
        >>> result = sk.analyze_test(groups, outcomes, converted=None, min_conversions=0)
        >>> result.summary()[["customers", "conversion_rate", "revenue_per_customer"]]
                 customers  conversion_rate  revenue_per_customer
        arm
        control        200            0.005                  0.05
        offer          200            0.005                  0.15
        """
        from segmentkit.errors import UnknownSegmentError

        rows = self.table[self.table["segment"] == segment]
        if rows.empty:
            known = pd.unique(self.table["segment"]).tolist()
            msg = f"No segment {segment!r} in the analysis. Segments: {known}."
            raise UnknownSegmentError(msg)
        columns = [
            "customers",
            "conversion_rate",
            "conversion_lift",
            "conversion_p_value",
            "revenue_per_customer",
            "revenue_lift",
            "revenue_p_value",
            "conclusive",
            "note",
        ]
        return rows.set_index("arm")[columns]

    @validated(method=[OneOf("holm", "bonferroni")])
    def adjusted_p_values(self, method: Literal["holm", "bonferroni"] = "holm") -> pd.DataFrame:
        """P-values corrected for testing many segments and arms at once.

        Every comparison of the table (each non-control arm of each segment and of all
        customers) is one test of the family, separately for conversion and revenue.
        Holm's step-down method keeps the chance of *any* false positive in the family
        below the level, under any dependence between the tests, and rejects at least
        what Bonferroni rejects.

        Parameters
        ----------
        method : {'holm', 'bonferroni'}, default='holm'
            The correction, as ``statsmodels``' ``multipletests``.

        Returns
        -------
        pandas.DataFrame
            One row per comparison: ``segment``, ``arm``, ``conversion_p_value``,
            ``conversion_p_value_adjusted``, ``revenue_p_value``,
            ``revenue_p_value_adjusted``. Missing p-values stay missing and do not
            count in the family.

        Raises
        ------
        segmentkit.errors.InvalidParameterError
            If ``method`` is not one of the above.

        Examples
        --------
        >>> import pandas as pd
        >>> import segmentkit as sk
        >>> customers = pd.DataFrame({"customer_id": [str(i) for i in range(2000)],
        ...                           "segment": ["a", "b"] * 1000,
        ...                           "segment_id": [0, 1] * 1000})
        >>> groups = sk.assign_groups(customers, arms={"control": 0.5, "offer": 0.5},
        ...                           salt="demo")
        >>> ids = customers["customer_id"]
        >>> outcomes = pd.DataFrame({"customer_id": ids,
        ...                          "converted": [int(c) % 9 == 0 for c in ids]})
        >>> result = sk.analyze_test(groups, outcomes, revenue=None)
        >>> result.adjusted_p_values()[["segment", "conversion_p_value",
        ...                             "conversion_p_value_adjusted"]].round(3)
                 segment  conversion_p_value  conversion_p_value_adjusted
        0  All customers               0.102                        0.307
        1              a               0.316                        0.381
        2              b               0.191                        0.381
        """
        rows = self.table[self.table["arm"] != self.control].reset_index(drop=True)
        result = rows[["segment", "arm"]].copy()
        for metric in ("conversion", "revenue"):
            p_values = rows[f"{metric}_p_value"].to_numpy(dtype=float)
            result[f"{metric}_p_value"] = p_values
            result[f"{metric}_p_value_adjusted"] = _adjust(p_values, method)
        return result

    def __repr__(self) -> str:
        overall = self.table[self.table["segment"] == ALL_CUSTOMERS]
        comparisons = self.table[self.table["arm"] != self.control]
        lines = [
            f"<ExperimentAnalysis: {int(overall['customers'].sum())} customers, control "
            f"{self.control!r}, {self.confidence:.0%} confidence, revenue by "
            f"{self.revenue_test}; {int(comparisons['conclusive'].sum())} of "
            f"{len(comparisons)} comparisons conclusive>"
        ]
        for row in overall.itertuples():
            lift = "" if row.arm == self.control else _lift_text(row)
            lines.append(
                f"  {row.arm:<16} {row.customers:>8} customers  "
                f"conversion {row.conversion_rate:7.2%}  revenue/customer "
                f"{row.revenue_per_customer:10.2f}{lift}"
            )
        return "\n".join(lines)


_COLUMN = InstanceOf((str,), "a column name (str)")


@validated(
    groups=[
        InstanceOf(
            (GroupAssignment, pd.DataFrame),
            "a GroupAssignment, a pandas DataFrame as GroupAssignment.to_frame() returns",
        ),
        PATH,
    ],
    outcomes=[InstanceOf((pd.DataFrame,), "a pandas DataFrame with one row per customer")],
    control=[InstanceOf((str,), "an arm name (str)")],
    customer=[_COLUMN],
    converted=[_COLUMN, NONE],
    revenue=[_COLUMN, NONE],
    confidence=[Interval(float, 0, 1, closed="neither")],
    revenue_test=[OneOf("welch", "bootstrap")],
    n_bootstrap=[Interval(int, 100, None)],
    random_state=[Interval(int, 0, None)],
    min_customers=[Interval(int, 2, None)],
    min_conversions=[Interval(int, 0, None)],
)
def analyze_test(
    groups: GroupAssignment | PathLike | pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    control: str = "control",
    customer: str = "customer_id",
    converted: str | None = "converted",
    revenue: str | None = "revenue",
    confidence: float = 0.95,
    revenue_test: Literal["welch", "bootstrap"] = "welch",
    n_bootstrap: int = 2000,
    random_state: int = 0,
    min_customers: int = 100,
    min_conversions: int = 5,
) -> ExperimentAnalysis:
    """Compare every arm of a test with its control: conversion and revenue per customer.

    Each arm is compared with the control of the same segment, and over all customers
    (segment ``'All customers'``).

    * **Conversion**: rate with a Wilson score interval; two-sided two-proportion
      z-test with the pooled rate (as ``statsmodels``' ``proportions_ztest``).
    * **Revenue per customer** (non-buyers count as 0): mean with a t-based interval;
      two-sided Welch t-test (as ``scipy.stats.ttest_ind(equal_var=False)``). With
      ``revenue_test='bootstrap'``: percentile interval of ``n_bootstrap`` resampled
      means, and p-value ``2 × min(P(d ≤ 0), P(d ≥ 0))`` (at most 1) over the
      resampled differences ``d`` of means, seeded by ``random_state``.
    * **Sample-size rule**: a comparison is *conclusive* when both the arm and the
      control have at least ``min_customers`` customers and ``min_conversions``
      conversions. Otherwise ``conclusive`` is False, the note says why, and one
      :class:`~segmentkit.errors.SegmentkitWarning` counts such comparisons.

    No correction for multiple comparisons is made: with many segments and arms, some
    p-values fall below 0.05 by chance.

    Parameters
    ----------
    groups : GroupAssignment, path or pandas.DataFrame
        The arms, from :func:`assign_groups` or a file it wrote (read with
        :meth:`GroupAssignment.read`).
    outcomes : pandas.DataFrame
        One row per customer (aggregate order lines first, e.g. with
        ``groupby(customer).agg(...)``). Assigned customers without a row count as not
        converted with revenue 0 (counted in ``missing_outcomes``); customers in no
        arm are left out and listed in ``unknown_customers``, with a warning.
    control : str, default='control'
        The control arm.
    customer : str, default='customer_id'
        Column of the customer id (compared as text with the assignment's ids).
    converted : str or None, default='converted'
        Column saying whether the customer converted (booleans or 0/1). ``None``: a
        customer converted when their revenue is above 0.
    revenue : str or None, default='revenue'
        Column of the customer's revenue during the test. ``None``: conversion only;
        the revenue columns are NaN.
    confidence : float, default=0.95
        Confidence level of the intervals, between 0 and 1.
    revenue_test : {'welch', 'bootstrap'}, default='welch'
        How revenue is compared. The bootstrap makes no normality assumption, which
        matters for small arms with a few large orders; it takes longer.
    n_bootstrap : int, default=2000
        Resamples of the bootstrap (at least 100).
    random_state : int, default=0
        Seed of the bootstrap; the same seed gives the same result.
    min_customers : int, default=100
        Customers an arm needs for a conclusive comparison (at least 2).
    min_conversions : int, default=5
        Conversions an arm needs for a conclusive comparison.

    Returns
    -------
    ExperimentAnalysis
        With the result :attr:`~ExperimentAnalysis.table`.

    Raises
    ------
    segmentkit.errors.InvalidParameterError
        If a parameter is invalid, a column is missing, or ``control`` is not an arm.
    ValueError
        If a customer appears twice in the outcomes, or conversions or revenue are
        missing or not numbers.

    Warns
    -----
    segmentkit.errors.SegmentkitWarning
        If some comparisons are not conclusive, or outcome customers are in no arm.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> customers = pd.DataFrame({"customer_id": [f"c{i}" for i in range(1000)]})
    >>> groups = sk.assign_groups(customers, arms={"control": 0.5, "offer": 0.5},
    ...                           salt="demo", stratify_by=None)
    >>> buyers = [f"c{i}" for i in range(0, 1000, 7)]
    >>> outcomes = pd.DataFrame({"customer_id": buyers, "revenue": 20.0})
    >>> result = sk.analyze_test(groups, outcomes, converted=None)
    >>> result.missing_outcomes
    857
    >>> offer = result.table.set_index("arm").loc["offer"]
    >>> print(f"{offer.conversion_rate:.3f} (p={offer.conversion_p_value:.2f})")
    0.146 (p=0.79)
    """
    if not isinstance(groups, GroupAssignment):
        groups = GroupAssignment.read(groups)
    _check_control(groups, control)
    converted_by, revenue_by, missing, unknown = _outcomes(
        groups, outcomes, customer=customer, converted=converted, revenue=revenue
    )
    if len(unknown):
        warnings.warn(
            f"{len(unknown)} customer(s) of the outcomes are in no arm of the test, e.g. "
            f"{unknown[:3].tolist()}; they are left out (see .unknown_customers).",
            SegmentkitWarning,
            stacklevel=3,  # past the validating wrapper of @validated
        )
    settings = _Settings(
        control=control,
        alpha=1 - confidence,
        revenue_test=revenue_test,
        has_revenue=revenue is not None,
        n_bootstrap=n_bootstrap,
        random_state=random_state,
        min_customers=min_customers,
        min_conversions=min_conversions,
    )
    rows: list[dict] = []
    table = groups.table
    # Integer codes: comparing a million text values per segment and arm is slow.
    arm_code = pd.Index(list(groups.arms)).get_indexer(table["arm"])
    for index, (segment, chosen) in enumerate(_segments(table)):
        cells = {}
        for code, arm in enumerate(groups.arms):
            mask = chosen & (arm_code == code)
            cells[arm] = (converted_by[mask], revenue_by[mask])
        rows.extend(_compare(segment, index, cells, settings))
    result = pd.DataFrame(rows, columns=COLUMNS)
    result["conclusive"] = result["conclusive"].astype(bool)
    for column in ("customers", "conversions"):
        result[column] = result[column].astype(np.int64)
    treated = result[result["arm"] != control]
    weak = int((~treated["conclusive"]).sum())
    if weak:
        warnings.warn(
            f"{weak} of {len(treated)} comparisons with the control have too few customers "
            f"or conversions to conclude (each arm needs {min_customers} customers and "
            f"{min_conversions} conversions); their 'conclusive' is False. See the "
            "'note' column.",
            SegmentkitWarning,
            stacklevel=3,  # past the validating wrapper of @validated
        )
    return ExperimentAnalysis(
        result,
        control=control,
        confidence=confidence,
        revenue_test=revenue_test,
        missing_outcomes=missing,
        unknown_customers=unknown,
        min_customers=min_customers,
        min_conversions=min_conversions,
    )


@dataclass(frozen=True)
class _Settings:
    control: str
    alpha: float
    revenue_test: str
    has_revenue: bool
    n_bootstrap: int
    random_state: int
    min_customers: int
    min_conversions: int


def _is_int(value: object) -> TypeGuard[numbers.Integral]:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_control(groups: GroupAssignment, control: str) -> None:
    if control not in groups.arms:
        msg = (
            f"The control {control!r} is not an arm of the test. Arms: {list(groups.arms)}. "
            "Pass control='<name of the holdout arm>'."
        )
        raise InvalidParameterError(msg)


def _outcomes(
    groups: GroupAssignment,
    outcomes: pd.DataFrame,
    *,
    customer: str,
    converted: str | None,
    revenue: str | None,
) -> tuple[np.ndarray, np.ndarray, int, pd.Index]:
    """Conversion and revenue aligned with the assignment, missing outcomes, unknown ids."""
    if converted is None and revenue is None:
        msg = "Give at least one of 'converted' and 'revenue': there is nothing to compare."
        raise InvalidParameterError(msg)
    if customer not in outcomes.columns and outcomes.index.name == customer:
        # groupby(customer).agg(...) leaves the id in the index.
        outcomes = outcomes.reset_index()
    wanted = [c for c in (customer, converted, revenue) if c is not None]
    absent = [c for c in wanted if c not in outcomes.columns]
    if absent:
        msg = (
            f"The outcomes have no column {absent}. Columns: {list(outcomes.columns)}. "
            "Name the columns with customer=, converted= and revenue= (None for one "
            "you do not have)."
        )
        raise InvalidParameterError(msg)
    ids = outcomes[customer]
    if ids.isna().any():
        msg = f"{int(ids.isna().sum())} outcome row(s) have no customer id."
        raise ValueError(msg)
    if pd.api.types.is_float_dtype(ids.dtype) and (ids == np.floor(ids)).all():
        # Ids read as floats (a CSV column with a gap) would become "1001.0" as text
        # and match no assigned "1001".
        ids = ids.astype(np.int64)
    ids = ids.astype(str)
    repeated = ids[ids.duplicated()]
    if len(repeated):
        msg = (
            f"{len(repeated)} customer(s) have more than one outcome row, e.g. "
            f"{pd.unique(repeated)[:3].tolist()}; give one row per customer (aggregate "
            f"order lines with outcomes.groupby({customer!r}).agg(...))."
        )
        raise ValueError(msg)
    money = None
    if revenue is not None:
        money = _numbers(outcomes[revenue], revenue)
    if converted is not None:
        flags = _flags(outcomes[converted], converted)
    else:
        assert money is not None  # checked above: revenue is given when converted is not
        flags = (money > 0).astype(float)
    position = pd.Index(ids).get_indexer(groups.table["customer_id"])
    found = position >= 0
    converted_by = np.zeros(len(position))
    converted_by[found] = flags[position[found]]
    revenue_by = np.zeros(len(position))
    if money is not None:
        revenue_by[found] = money[position[found]]
    matched = np.zeros(len(ids), dtype=bool)
    matched[position[found]] = True
    unknown = pd.Index(ids.to_numpy()[~matched], name="customer_id")
    return converted_by, revenue_by, int((~found).sum()), unknown


def _numbers(values: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        msg = f"The revenue column {name!r} must hold numbers. Got dtype {values.dtype}."
        raise ValueError(msg)
    array = values.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(array)
    if bad.any():
        msg = (
            f"{int(bad.sum())} value(s) of the revenue column {name!r} are missing or "
            "infinite; use 0 for customers who bought nothing."
        )
        raise ValueError(msg)
    return array


def _flags(values: pd.Series, name: str) -> np.ndarray:
    if values.isna().any():
        msg = (
            f"{int(values.isna().sum())} value(s) of the conversion column {name!r} are "
            "missing; use False for customers who did not convert."
        )
        raise ValueError(msg)
    # Booleans compare equal to 0 and 1, so this accepts bool, 0/1 and a mix in an
    # object column, but not the text "1".
    if values.isin([0, 1]).all():
        return values.to_numpy(dtype=float)
    msg = (
        f"The conversion column {name!r} must hold booleans or 0/1. Got values such as "
        f"{pd.unique(values)[:3].tolist()}."
    )
    raise ValueError(msg)


def _segments(table: pd.DataFrame):
    """(segment label, row mask) for all customers, then each segment in id order."""
    everyone = np.ones(len(table), dtype=bool)
    yield ALL_CUSTOMERS, everyone
    named = table[table["segment"].notna()]
    if named.empty:
        return
    order = named[["segment_id", "segment"]].drop_duplicates("segment")
    order = order.sort_values("segment_id", kind="stable", na_position="last")
    codes = pd.Index(order["segment"]).get_indexer(table["segment"])
    for code, name in enumerate(order["segment"]):
        yield str(name), codes == code


def _compare(
    segment: str,
    index: int,
    arms: dict[str, tuple[np.ndarray, np.ndarray]],
    settings: _Settings,
) -> list[dict]:
    control_converted, control_revenue = arms[settings.control]
    control_means = None
    rows = []
    positions = {arm: position for position, arm in enumerate(arms)}
    # The control first: every other arm's bootstrap p-value needs its resampled means.
    order = [settings.control, *(arm for arm in arms if arm != settings.control)]
    for arm in order:
        converted, revenue = arms[arm]
        rng = np.random.default_rng([settings.random_state, index, positions[arm]])
        n = len(converted)
        conversions = int(converted.sum())
        rate = conversions / n if n else math.nan
        low, high = _wilson(conversions, n, settings.alpha)
        row: dict = {
            "segment": segment,
            "arm": arm,
            "customers": n,
            "conversions": conversions,
            "conversion_rate": rate,
            "conversion_ci_low": low,
            "conversion_ci_high": high,
            "revenue_per_customer": math.nan,
            "revenue_ci_low": math.nan,
            "revenue_ci_high": math.nan,
            "conversion_lift": math.nan,
            "conversion_p_value": math.nan,
            "revenue_lift": math.nan,
            "revenue_p_value": math.nan,
        }
        means = None
        if settings.has_revenue:
            row["revenue_per_customer"] = revenue.mean() if n else math.nan
            if settings.revenue_test == "bootstrap":
                means = _bootstrap_means(revenue, settings.n_bootstrap, rng)
                if means is not None:
                    low_q, high_q = np.quantile(
                        means, [settings.alpha / 2, 1 - settings.alpha / 2]
                    )
                    row["revenue_ci_low"], row["revenue_ci_high"] = float(low_q), float(high_q)
            else:
                row["revenue_ci_low"], row["revenue_ci_high"] = _t_interval(
                    revenue, settings.alpha
                )
        if arm == settings.control:
            control_means = means
        shortfalls = _too_small(arm, n, conversions, settings)
        if arm == settings.control:
            row["conclusive"] = not shortfalls
            row["note"] = "; ".join(["control", *_too_few(shortfalls, settings)])
            rows.append(row)
            continue
        shortfalls += _too_small(
            settings.control, len(control_converted), int(control_converted.sum()), settings
        )
        control_rate = control_converted.mean() if len(control_converted) else math.nan
        row["conversion_lift"] = _lift(rate, control_rate)
        row["conversion_p_value"] = _ztest(
            conversions, n, int(control_converted.sum()), len(control_converted)
        )
        if settings.has_revenue:
            control_mean = control_revenue.mean() if len(control_revenue) else math.nan
            row["revenue_lift"] = _lift(row["revenue_per_customer"], control_mean)
            if settings.revenue_test == "bootstrap":
                row["revenue_p_value"] = _bootstrap_p(means, control_means)
            else:
                row["revenue_p_value"] = _welch(revenue, control_revenue)
        row["conclusive"] = not shortfalls
        row["note"] = "; ".join(_too_few(shortfalls, settings)) or _verdict(row, settings)
        rows.append(row)
    return sorted(rows, key=lambda row: positions[row["arm"]])


def _too_small(arm: str, n: int, conversions: int, settings: _Settings) -> list[str]:
    shortfalls = []
    if n < settings.min_customers:
        shortfalls.append(f"{arm} has {n} customers")
    if conversions < settings.min_conversions:
        shortfalls.append(f"{arm} has {conversions} conversions")
    return shortfalls


def _too_few(shortfalls: list[str], settings: _Settings) -> list[str]:
    if not shortfalls:
        return []
    return [
        f"too few to conclude: {', '.join(shortfalls)} (each arm needs "
        f"{settings.min_customers} customers and {settings.min_conversions} conversions)"
    ]


def _verdict(row: dict, settings: _Settings) -> str:
    level = f"{1 - settings.alpha:.0%}"
    parts = []
    for name, column in (("conversion", "conversion_p_value"), ("revenue", "revenue_p_value")):
        p = row[column]
        if name == "revenue" and not settings.has_revenue:
            continue
        if math.isnan(p):
            parts.append(f"{name}: no test (no variation)")
        elif p < settings.alpha:
            lift = row[f"{name}_lift"]
            direction = "higher" if not lift < 0 else "lower"
            parts.append(f"{name} {direction} than control, significant at {level}")
        else:
            parts.append(f"{name}: no significant difference at {level}")
    return "; ".join(parts)


def _adjust(p_values: np.ndarray, method: str) -> np.ndarray:
    """Family-wise corrected p-values, as statsmodels' ``multipletests``; NaN left out."""
    result = np.full(len(p_values), np.nan)
    present = np.flatnonzero(~np.isnan(p_values))
    m = len(present)
    if m == 0:
        return result
    if method == "bonferroni":
        result[present] = np.minimum(1.0, p_values[present] * m)
        return result
    order = present[np.argsort(p_values[present], kind="stable")]
    # Holm: the i-th smallest p-value times (m - i), made non-decreasing along the order.
    steps = np.minimum(1.0, p_values[order] * (m - np.arange(m)))
    result[order] = np.maximum.accumulate(steps)
    return result


def _lift(value: float, control: float) -> float:
    if math.isnan(value) or math.isnan(control) or control == 0:
        return math.nan
    return (value - control) / control


def _wilson(conversions: int, n: int, alpha: float) -> tuple[float, float]:
    """Wilson score interval, as statsmodels' ``proportion_confint(method='wilson')``."""
    if n == 0:
        return math.nan, math.nan
    z = stats.norm.isf(alpha / 2)
    z2 = z * z
    rate = conversions / n
    denominator = 1 + z2 / n
    center = (rate + z2 / (2 * n)) / denominator
    spread = z * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / denominator
    # Rounding can put an end a hair outside [0, 1] when the rate is 0 or 1.
    return max(center - spread, 0.0), min(center + spread, 1.0)


def _ztest(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided pooled two-proportion z-test, as statsmodels' ``proportions_ztest``."""
    if n1 == 0 or n2 == 0:
        return math.nan
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        # Everyone or no one converted in both arms: no difference can be measured.
        return math.nan
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return float(2 * stats.norm.sf(abs(z)))


def _t_interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean = float(values.mean())
    spread = stats.t.isf(alpha / 2, n - 1) * float(values.std(ddof=1)) / math.sqrt(n)
    return mean - spread, mean + spread


def _welch(values: np.ndarray, control: np.ndarray) -> float:
    """Two-sided Welch t-test, as ``scipy.stats.ttest_ind(equal_var=False)``."""
    if len(values) < 2 or len(control) < 2:
        return math.nan
    if values.var() == 0 and control.var() == 0:
        return math.nan
    with warnings.catch_warnings():
        # Nearly constant samples make scipy warn about precision; the p-value stands.
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(values, control, equal_var=False).pvalue)


def _bootstrap_means(
    values: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> np.ndarray | None:
    """Means of ``n_bootstrap`` resamples with replacement, drawing only the non-zeros.

    A resample of ``n`` values from data with ``k`` non-zeros holds a Binomial(n, k/n)
    number of them, each a uniform draw among the non-zeros; the zeros add nothing to
    the sum. Same distribution as resampling all ``n`` values, at a cost of about
    ``k`` draws per resample instead of ``n`` (most customers buy nothing).
    """
    n = len(values)
    if n == 0:
        return None
    nonzero = values[values != 0]
    k = len(nonzero)
    if k == 0:
        return np.zeros(n_bootstrap)
    counts = rng.binomial(n, k / n, size=n_bootstrap)
    sums = np.empty(n_bootstrap)
    start = 0
    while start < n_bootstrap:
        # Blocks of resamples keep the drawn numbers under _BLOCK at a time.
        stop = start + 1
        total = counts[start]
        while stop < n_bootstrap and total + counts[stop] <= _BLOCK:
            total += counts[stop]
            stop += 1
        block = counts[start:stop]
        draws = nonzero[rng.integers(0, k, size=int(block.sum()))]
        owner = np.repeat(np.arange(len(block)), block)
        sums[start:stop] = np.bincount(owner, weights=draws, minlength=len(block))
        start = stop
    return sums / n


def _bootstrap_p(means: np.ndarray | None, control: np.ndarray | None) -> float:
    if means is None or control is None:
        return math.nan
    difference = means - control
    below = float(np.mean(difference <= 0))
    above = float(np.mean(difference >= 0))
    return min(1.0, 2 * min(below, above))


def _lift_text(row) -> str:
    conversion = row.conversion_lift
    text = "" if math.isnan(conversion) else f"  conversion lift {conversion:+.1%}"
    revenue = row.revenue_lift
    if not math.isnan(revenue):
        text += f"  revenue lift {revenue:+.1%}"
    if not row.conclusive:
        text += "  (not conclusive)"
    return text
