"""Purchase models on features kept in polars, pyarrow, DuckDB, Spark or Dask.

``sk.extract_features`` on such transactions returns a frame of that library. The models
need five numbers per customer: the first and last purchase times, ``purchase_days``,
``tenure_days`` (which places ``as_of``: a native frame carries no ``as_of``) and
``monetary``. They are prepared in the engine as plain numbers (the two times as UTC
epoch microseconds, which no engine's time zone setting can shift) and only they,
one row per customer, ever reach Python.

``transform`` answers in the caller's library, like a segmenter's ``predict``: an
eager frame (polars DataFrame, pyarrow Table) gets the predicted columns computed in
memory; a lazy one (polars LazyFrame, DuckDB, Spark, Dask) gets them from the model
run batch by batch where the data lives, joined back by ``customer_id``, not computed
until the caller collects.

Imported only when such a frame arrives (it imports narwhals).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from segmentkit._frame._batches import map_batches
from segmentkit._frame._detect import collect, detect, to_native
from segmentkit._frame._time import with_utc
from segmentkit.errors import ContractError, ContractFailure, Reason

__all__ = ["NativeInputs", "native_inputs", "transform_native"]

ID = "customer_id"
#: Names of the prepared columns: the purchase times as UTC epoch microseconds.
FIRST_US = "__segmentkit_first_us"
LAST_US = "__segmentkit_last_us"
FLAG = "__segmentkit_present_"
_NEEDED = ("first_purchase", "last_purchase", "purchase_days", "tenure_days")
_OPTIONAL = ("monetary",)
#: Engines whose feature frames are sorted by id (``extract_features`` sorts them).
_SORTED = ("polars", "pyarrow")


class NativeInputs:
    """The model inputs of native features, collected: one row per customer.

    ``frame`` is indexed by ``customer_id`` (sorted) with the columns ``FIRST_US``,
    ``LAST_US``, ``purchase_days``, ``tenure_days`` and, when present, ``monetary``.
    Built once by :func:`native_inputs`; the models read it like the features.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def __len__(self) -> int:
        return len(self.frame)


def _missing(columns: list[str], names: list[str]) -> ContractError:
    failures = [
        ContractFailure(
            column=column,
            check="btyd_summary",
            reason=Reason.MISSING_COLUMN,
            message=(
                f"The features frame has no {column!r} column, which the purchase models "
                "need. Pass the frame sk.extract_features returns (with customer_id, "
                f"{', '.join(_NEEDED)}); its columns are {names}."
            ),
        )
        for column in columns
    ]
    return ContractError(failures, table="features")


def _staged(data: Any) -> tuple[Any, Any, Any, list[str]]:
    """The wrapped frame, its backend, and a lazy frame of ``customer_id`` and the inputs."""
    wrapped, backend = detect(data, "The features")
    names = list(wrapped.collect_schema().names())
    missing = [c for c in (ID, *_NEEDED) if c not in names]
    if missing:
        raise _missing(missing, names)
    schema = wrapped.collect_schema()
    lazy = wrapped.lazy() if isinstance(wrapped, nw.DataFrame) else wrapped
    staged = lazy.select(ID, *_NEEDED, *(c for c in _OPTIONAL if c in names))
    for column, epoch in (("first_purchase", FIRST_US), ("last_purchase", LAST_US)):
        dtype = schema[column]
        if not isinstance(dtype, nw.Datetime):
            failure = ContractFailure(
                column=column,
                check="btyd_summary",
                reason=Reason.WRONG_DTYPE,
                message=(
                    f"{column!r} must be a datetime column for the purchase models; it is "
                    f"{dtype}. Pass the features sk.extract_features returns."
                ),
            )
            raise ContractError([failure], table="features")
        # Times without a zone are UTC, as the feature layer writes them.
        staged = with_utc(
            staged,
            column,
            naive=dtype.time_zone is None,
            timezone="UTC",
            backend=backend,
            epoch=epoch,
        )
    kept = [
        c for c in staged.collect_schema().names() if c not in ("first_purchase", "last_purchase")
    ]
    return wrapped, backend, staged.select(*kept), names


def _as_inputs(local: pd.DataFrame) -> pd.DataFrame:
    """A collected batch as numbers (NaN for missing), indexed by ``customer_id``."""
    columns = {
        name: pd.to_numeric(local[name]).to_numpy(dtype=float, na_value=np.nan)
        for name in local.columns
        if name != ID
    }
    frame = pd.DataFrame(columns)
    frame.index = pd.Index(local[ID].astype(str).to_numpy(dtype=object), dtype=str, name=ID)
    return frame


def native_inputs(data: Any) -> NativeInputs:
    """Collect the model inputs of a native features frame, one row per customer.

    Parameters
    ----------
    data : polars, pyarrow, DuckDB, PySpark or Dask frame
        Features from :func:`~segmentkit.extract_features` (``customer_id`` and the
        features).

    Returns
    -------
    NativeInputs
        Sorted by customer id, as the pandas features are.
    """
    _, _, staged, _ = _staged(data)
    frame = _as_inputs(collect(staged).to_pandas()).sort_index()
    if frame.index.has_duplicates:
        repeated = frame.index[frame.index.duplicated()].unique()[:5].tolist()
        failure = ContractFailure(
            column=ID,
            check="btyd_summary",
            reason=Reason.DUPLICATES,
            message=(f"The features must be one row per customer; ids repeat, e.g. {repeated}."),
        )
        raise ContractError([failure], table="features")
    return NativeInputs(frame)


def transform_native(
    data: Any,
    predict: Callable[[NativeInputs], dict[str, np.ndarray]],
    outputs: list[str],
    owner: str,
) -> Any:
    """``data`` with the columns ``predict`` computes, as a frame of ``data``'s library.

    Parameters
    ----------
    data : polars, pyarrow, DuckDB, PySpark or Dask frame
        Features from :func:`~segmentkit.extract_features`.
    predict : callable
        Model inputs to the predicted columns (float arrays in the inputs' row order,
        NaN for customers the model cannot score).
    outputs : list of str
        The names of those columns (they replace columns of the same name).
    owner : str
        The model, for messages.

    Returns
    -------
    native frame
        Every column of ``data`` plus ``outputs`` (missing: null, as in the features);
        eager for an eager input, lazy (nothing computed) for a lazy one.
    """
    wrapped, backend, staged, names = _staged(data)
    kept = wrapped.drop(*(c for c in outputs if c in names))
    if backend.eager:
        # In memory already: the inputs keep the frame's row order.
        values = predict(NativeInputs(_as_inputs(collect(staged).to_pandas())))
        impl = wrapped.implementation
        added = kept.with_columns(
            *(nw.new_series(name, values[name], nw.Float64, backend=impl) for name in outputs)
        )
        # NaN (no purchase) becomes null, the native features' missing value.
        result = added.with_columns(
            *(nw.when(~nw.col(name).is_nan()).then(nw.col(name)).alias(name) for name in outputs)
        )
        return to_native(result, backend)
    # Batch outputs are declared never null, and Arrow (Spark's way to and from pandas)
    # reads NaN as null: each column travels as a number and a 0/1 flag of presence.
    flags = {name: f"{FLAG}{i}" for i, name in enumerate(outputs)}

    def batch(local: pd.DataFrame) -> pd.DataFrame:
        values = predict(NativeInputs(_as_inputs(local)))
        columns = {name: np.asarray(values[name], dtype=float) for name in outputs}
        present = {flags[name]: ~np.isnan(column) for name, column in columns.items()}
        # In the declared order: the outputs, then their flags (DuckDB checks positions).
        out = pd.DataFrame({ID: local[ID].to_numpy()})
        for name, column in columns.items():
            out[name] = np.where(np.isnan(column), 0.0, column)
        for flag, mask in present.items():
            out[flag] = mask.astype(np.int64)
        return out

    types = {**dict.fromkeys(outputs, "float64"), **dict.fromkeys(flags.values(), "int64")}
    scored = map_batches(staged, batch, ID, types, owner)
    scored = scored.select(
        ID, *(nw.when(nw.col(flags[n]) == 1).then(nw.col(n)).alias(n) for n in outputs)
    )
    added = kept.join(scored, on=ID, how="left")
    if backend.name in _SORTED:  # the join may reorder; the features were sorted
        added = added.sort(ID)
    return to_native(added, backend)
