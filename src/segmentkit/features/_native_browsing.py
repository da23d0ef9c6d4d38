"""Visits (sessions) and abandoned carts in the caller's engine: the table of visits that
the browsing definitions aggregate (the narwhals twin of ``_numpy._visits``).

Visits without a ``session_id`` need each event's previous event of
the same customer: polars, DuckDB and Spark get it from an ordered window
(``shift().over(customer, order_by=time)``); pyarrow tables are in memory and sorted
once; Dask, which has no ordered windows, shuffles events by customer so that each
partition holds whole customers, and numbers visits there with pandas.
Abandoned carts need no order at all: a visit's last cart is joined to the same
customer's purchases, and a purchase within the window marks it bought.
"""

from __future__ import annotations

from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from segmentkit._frame._detect import Backend, distinct_rows
from segmentkit._frame._time import DAY_US, EPOCH_US

__all__ = ["SESSION", "visits", "visits_and_events"]

_ID = "customer_id"
_SESSION = "_session"
#: The column of ``visits_and_events``' events holding their visit key.
SESSION = _SESSION
_ORDERED = ("polars", "duckdb", "pyspark")


def visits(
    events: nw.LazyFrame[Any],
    purchases: nw.LazyFrame[Any],
    backend: Backend,
    as_of_us: int,
    *,
    abandon_us: float,
    gap_us: float,
) -> nw.LazyFrame[Any]:
    """One row per visit: ``customer_id``, ``start``, ``seconds``, ``last_cart``, ``abandoned``.

    The visits of :func:`visits_and_events`; its parameters and visits.
    """
    return visits_and_events(
        events, purchases, backend, as_of_us, abandon_us=abandon_us, gap_us=gap_us
    )[0]


def visits_and_events(
    events: nw.LazyFrame[Any],
    purchases: nw.LazyFrame[Any],
    backend: Backend,
    as_of_us: int,
    *,
    abandon_us: float,
    gap_us: float,
) -> tuple[nw.LazyFrame[Any], nw.LazyFrame[Any]]:
    """The visits, and the events with the key of their visit (column :data:`SESSION`).

    Parameters
    ----------
    events : narwhals.LazyFrame
        Validated events up to ``as_of`` (canonical columns plus the epoch column).
    purchases : narwhals.LazyFrame
        ``customer_id`` and ``_ts_us`` of purchase lines up to ``as_of``.
    backend : Backend
        Engine of both frames.
    as_of_us : int
        End of observation, UTC microseconds since the epoch.
    abandon_us : float
        Microseconds after a visit's last add-to-cart within which a purchase counts.
    gap_us : float
        Without a ``session_id``, a pause longer than this starts a new visit.

    Returns
    -------
    visits : narwhals.LazyFrame
        Times in UTC microseconds (``last_cart`` null without a cart), ``seconds`` on
        site (durations, else the visit's span) and whether its cart was abandoned.
    events : narwhals.LazyFrame
        The events, with their visit's key: with ``customer_id``, it joins the visits.
    """
    names = events.collect_schema().names()
    ts = nw.col(EPOCH_US)
    events = _with_sessions(events, backend, "session_id" in names, gap_us)
    # Row-wise inputs first: pyarrow and Dask group-bys only sum, count, min and max
    # plain columns.
    events = events.with_columns(
        _cart_ts=nw.when((nw.col("event_type") == "add_to_cart").fill_null(False)).then(ts)
    )
    visit = [ts.min().alias("start"), ts.max().alias("_end")]
    visit.append(nw.col("_cart_ts").max().alias("last_cart"))
    if "duration_s" in names:
        events = events.with_columns(_dur=nw.col("duration_s").cast(nw.Float64).fill_null(0.0))
        visit.append(nw.col("_dur").sum().alias("seconds"))
    sessions = events.group_by(_ID, _SESSION).agg(*visit)
    if "duration_s" not in names:
        sessions = sessions.with_columns(seconds=(nw.col("_end") - nw.col("start")) / 1e6)
    return _with_abandoned(sessions, events, purchases, as_of_us, abandon_us), events


def _with_sessions(
    events: nw.LazyFrame[Any], backend: Backend, has_session_id: bool, gap_us: float
) -> nw.LazyFrame[Any]:
    """Add ``_session``: a visit key, unique within each customer."""
    if has_session_id:
        # As on the pandas path: events without a session id form one visit per
        # customer and UTC day. The prefixes keep the two kinds of keys apart.
        day = (nw.col(EPOCH_US) // DAY_US).cast(nw.String)
        key = (
            nw.when(nw.col("session_id").is_null())
            .then(nw.concat_str(nw.lit("d"), day))
            .otherwise(nw.concat_str(nw.lit("s"), nw.col("session_id")))
        )
        return events.with_columns(key.alias(_SESSION))
    if backend.name in _ORDERED:
        previous = nw.col(EPOCH_US).shift(1).over(_ID, order_by=EPOCH_US)
        events = events.with_columns(_previous=previous)
        new = _is_new(nw.col("_previous"), gap_us)
        events = events.with_columns(_new=new.cast(nw.Int64))
        # Tied times get the same number whichever the window puts first: the second
        # of a tie is 0 apart from the first, so it never starts a visit.
        number = nw.col("_new").cum_sum().over(_ID, order_by=EPOCH_US)
        return events.with_columns(number.alias(_SESSION)).drop("_previous", "_new")
    if backend.name == "pyarrow":
        return _pyarrow_sessions(events, gap_us)
    if backend.name == "dask":
        return _dask_sessions(events, gap_us)
    msg = f"visits without a session_id are not implemented on {backend}"
    raise NotImplementedError(msg)


def _is_new(previous: nw.Expr, gap_us: float) -> nw.Expr:
    return previous.is_null() | ((nw.col(EPOCH_US) - previous) > gap_us)


def _pyarrow_sessions(events: nw.LazyFrame[Any], gap_us: float) -> nw.LazyFrame[Any]:
    # pyarrow has no ordered windows per group, but the table is in memory: one sort by
    # customer and time, then each row is compared with the row before it.
    table = events.collect().sort(_ID, EPOCH_US)
    same = nw.col(_ID) == nw.col(_ID).shift(1)
    new = ~same.fill_null(False) | _is_new(nw.col(EPOCH_US).shift(1), gap_us)
    table = table.with_columns(_new=new.cast(nw.Int64))
    return table.with_columns(nw.col("_new").cum_sum().alias(_SESSION)).drop("_new").lazy()


def _dask_sessions(events: nw.LazyFrame[Any], gap_us: float) -> nw.LazyFrame[Any]:
    df = nw.to_native(events)
    # After the shuffle every customer's events are in one partition, so numbering
    # visits there is exact; numbers restart per customer, which the key allows.
    shuffled = df.shuffle(on=_ID)

    def number(part: pd.DataFrame) -> pd.DataFrame:
        ordered = part.sort_values([_ID, EPOCH_US], kind="stable")
        ids = ordered[_ID].to_numpy(dtype=object)
        times = ordered[EPOCH_US].to_numpy(dtype=np.int64)
        new = np.ones(len(ordered), dtype=bool)
        if len(ordered) > 1:
            new[1:] = (ids[1:] != ids[:-1]) | (np.diff(times) > gap_us)
        return ordered.assign(**{_SESSION: np.cumsum(new).astype(np.int64)})

    meta = df._meta.assign(**{_SESSION: np.zeros(0, dtype=np.int64)})
    return nw.from_native(shuffled.map_partitions(number, meta=meta))


def _with_abandoned(
    sessions: nw.LazyFrame[Any],
    events: nw.LazyFrame[Any],
    purchases: nw.LazyFrame[Any],
    as_of_us: int,
    abandon_us: float,
) -> nw.LazyFrame[Any]:
    """Flag visits whose last cart saw no purchase within the window, once decidable."""
    bought_events = events.filter(nw.col("event_type") == "purchase").select(_ID, EPOCH_US)
    every_purchase = nw.concat(
        [purchases.select(_ID, EPOCH_US), bought_events], how="vertical"
    ).rename({EPOCH_US: "_bought_us"})
    carts = sessions.filter(~nw.col("last_cart").is_null()).select(_ID, _SESSION, "last_cart")
    delay = nw.col("_bought_us") - nw.col("last_cart")
    bought = (
        carts.join(every_purchase, on=_ID, how="inner")
        .filter((delay >= 0) & (delay <= abandon_us))
        .select(_ID, _SESSION)
        .pipe(distinct_rows, [_ID, _SESSION])
        .with_columns(_bought=nw.lit(True))
    )
    decidable = (nw.col("last_cart") + abandon_us) <= as_of_us
    flagged = sessions.join(bought, on=[_ID, _SESSION], how="left")
    abandoned = (
        ~nw.col("last_cart").is_null() & nw.col("_bought").is_null() & decidable.fill_null(False)
    )
    return flagged.with_columns(abandoned=abandoned).drop("_bought")
