"""The same segmentation at successive observation dates: a store's regular refresh."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import pandas as pd

from segmentkit._common._files import PathLike
from segmentkit._common._params import (
    NONE,
    PATH,
    InstanceOf,
    Interval,
    ListLike,
    OneOf,
    Satisfies,
    validated,
)
from segmentkit.contracts._customers import Customers
from segmentkit.contracts._events import Events
from segmentkit.contracts._transactions import Transactions
from segmentkit.errors import InvalidParameterError
from segmentkit.features._extract import _as_utc_timestamp, extract_features
from segmentkit.results._segmentation import Segmentation

__all__ = ["Snapshots", "snapshots"]

Refit = Literal["first", "each", "none"]
_REFITS = ("first", "each", "none")
_POSITION = [Interval(int, None, None)]


def _is_engine(value: object) -> bool:
    # Imported on use: the engines load scikit-learn, which `import segmentkit` must not.
    from segmentkit.engines._base import Segmenter

    return isinstance(value, Segmenter | str)


@validated(
    transactions=[
        InstanceOf((Transactions,), "validated Transactions (sk.Transactions.from_frame(...))")
    ],
    engine=[Satisfies(_is_engine, "a Segmenter or a registered engine name ('rfm'...)")],
    as_of=[
        ListLike(
            "a non-empty sequence of dates, e.g. pd.date_range('2024-01-01', '2024-12-01', "
            "freq='MS')",
            min_length=1,
        )
    ],
    events=[InstanceOf((Events,), "validated Events"), NONE],
    customers=[InstanceOf((Customers,), "validated Customers"), NONE],
    refit=[OneOf(*_REFITS)],
    feature_params=[InstanceOf((Mapping,), "a mapping of extract_features arguments"), NONE],
)
def snapshots(
    transactions: Transactions,
    engine: Any,
    as_of: Sequence[Any] | pd.DatetimeIndex,
    *,
    events: Events | None = None,
    customers: Customers | None = None,
    refit: Refit = "first",
    feature_params: Mapping[str, Any] | None = None,
) -> Snapshots:
    """Segment the customers at each of several observation dates.

    Features for each date use only data on or before it, as
    :func:`~segmentkit.extract_features` does with ``as_of``.

    Parameters
    ----------
    transactions : Transactions
        Validated order lines covering every date.
    engine : Segmenter or str
        The engine, fitted or not, or a registered engine name (``'rfm'``...).
    as_of : sequence of datetime-like
        Observation dates, e.g. ``pd.date_range("1997-07-01", "1998-07-01", freq="MS")``.
        Sorted; a date given twice is refused.
    events, customers : Events, Customers, optional
        Browsing events and profiles, as for ``extract_features``.
    refit : {'first', 'each', 'none'}, default='first'
        ``'first'`` fits a copy of the engine at the first date and scores every date
        with it: segment definitions (RFM cut points, clusters) stay fixed, so a move
        is a change in the customer. ``'each'`` fits a fresh copy at every date (the
        usual monthly refit; cluster identities then need matching, which
        :func:`~segmentkit.migration` does). ``'none'`` scores every date with
        ``engine`` as it is (it must be fitted).
    feature_params : mapping, optional
        Extra keyword arguments for ``extract_features`` (``windows``...).

    Returns
    -------
    Snapshots
        One :class:`~segmentkit.Segmentation` per date, in date order.

    Raises
    ------
    InvalidParameterError
        If a parameter is invalid, ``refit='none'`` with an unfitted engine, or
        ``refit='first'``/``'none'`` with an engine that cannot score new customers.
    ValueError
        If a date has no transaction on or before it (the message names the date).

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> monthly = sk.snapshots(tx, sk.RFMSegmenter(), pd.date_range("2017-07-01", periods=3,
    ...                        freq="MS"))
    >>> [f"{d:%Y-%m-%d}" for d in monthly.as_of]
    ['2017-07-01', '2017-08-01', '2017-09-01']
    >>> monthly.sizes().sum(axis=1).is_monotonic_increasing
    True
    """
    dates = _dates(as_of)
    model = _engine(engine, refit)
    options = dict(feature_params or {})
    if "as_of" in options:
        msg = "Give the dates as as_of=, not inside feature_params."
        raise InvalidParameterError(msg)

    results: list[Segmentation] = []
    engines: list[Any] = []
    for date in dates:
        try:
            features = extract_features(transactions, events, customers, as_of=date, **options)
        except ValueError as error:
            msg = f"Snapshot at {date.isoformat()}: {error}"
            raise ValueError(msg) from error
        if refit == "each" or (refit == "first" and not engines):
            fitted = _fresh(model).fit(features)
        else:
            fitted = engines[-1] if engines else model
        results.append(fitted.predict(features))
        engines.append(fitted)
    return Snapshots(results, engines, refit)


class Snapshots(Sequence[Segmentation]):
    """Segmentations of the same customers at successive dates (see :func:`snapshots`).

    Behaves as a read-only list of :class:`~segmentkit.Segmentation`, oldest first.

    Parameters
    ----------
    segmentations : sequence of Segmentation
        One per date, oldest first.
    engines : sequence of Segmenter
        The fitted engine behind each.
    refit : {'first', 'each', 'none'}
        How they were made.

    Attributes
    ----------
    as_of : list of pandas.Timestamp
        The observation dates.
    engines : list of Segmenter
        The fitted engine behind each snapshot (one shared object unless
        ``refit='each'``).
    refit : str
        How the snapshots were made.
    """

    def __init__(
        self, segmentations: Sequence[Segmentation], engines: Sequence[Any], refit: str
    ) -> None:
        self._items = list(segmentations)
        self.engines = list(engines)
        self.refit = refit
        self.as_of = [s.as_of for s in self._items]

    @overload
    def __getitem__(self, index: int) -> Segmentation: ...

    @overload
    def __getitem__(self, index: slice) -> list[Segmentation]: ...

    def __getitem__(self, index: int | slice) -> Segmentation | list[Segmentation]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Segmentation]:
        return iter(self._items)

    @validated(value=[OneOf("customers", "share", "revenue")])
    def sizes(
        self, *, value: Literal["customers", "share", "revenue"] = "customers"
    ) -> pd.DataFrame:
        """Each segment's size at each date.

        Parameters
        ----------
        value : {'customers', 'share', 'revenue'}, default='customers'
            The catalog column to tabulate.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``as_of``, one column per segment name (first seen order).
        """
        rows = [s.catalog.set_index("segment")[value] for s in self._items]
        table = pd.DataFrame(rows, index=pd.Index(self.as_of, name="as_of"))
        return table.fillna(0)

    @validated(before=_POSITION, after=_POSITION)
    def migration(self, before: int = -2, after: int = -1, **kwargs: Any) -> Any:
        """Compare two snapshots (default: the last two) with :func:`~segmentkit.migration`.

        Snapshots scored by one fitted model are compared by segment name; refitted
        ones with ``match='auto'`` (clusters are matched).

        Parameters
        ----------
        before, after : int, default=-2, -1
            Positions of the two snapshots.
        **kwargs : dict
            ``match=`` to override the matching.

        Returns
        -------
        Migration
        """
        from segmentkit.timeline._migration import migration

        if self.refit != "each":
            kwargs.setdefault("match", "name")
        return migration(self._items[before], self._items[after], **kwargs)

    def migrations(self, **kwargs: Any) -> list[Any]:
        """The migration between each pair of consecutive snapshots.

        Parameters
        ----------
        **kwargs : dict
            Passed to :meth:`migration` (``match=``).

        Returns
        -------
        list of Migration
            ``len(self) - 1`` comparisons, oldest first.
        """
        return [self.migration(i, i + 1, **kwargs) for i in range(len(self) - 1)]

    @validated(folder=[PATH], fmt=[OneOf("csv", "parquet", "json")])
    def to_dir(self, folder: PathLike, *, fmt: Literal["csv", "parquet", "json"] = "csv") -> Path:
        """Write every snapshot's assignments as ``segments-YYYY-MM-DD.<fmt>`` plus ``sizes.csv``.

        Parameters
        ----------
        folder : str or os.PathLike
            Created if missing.
        fmt : {'csv', 'parquet', 'json'}, default='csv'
            File format of the assignments.

        Returns
        -------
        pathlib.Path
            The folder.
        """
        from segmentkit._common._csv import write_csv

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        writers = {"csv": "to_csv", "parquet": "to_parquet", "json": "to_json"}
        for item in self._items:
            path = out / f"segments-{item.as_of:%Y-%m-%d}.{fmt}"
            if fmt == "json":
                item.to_json(path, table="assignments")
            else:
                getattr(item, writers[fmt])(path)
        sizes = self.sizes()
        write_csv(out / "sizes.csv", sizes)
        return out

    def __repr__(self) -> str:
        if not self._items:
            return "Snapshots([])"
        return (
            f"Snapshots({len(self)} × {self._items[0].engine}, "
            f"{self.as_of[0]:%Y-%m-%d} .. {self.as_of[-1]:%Y-%m-%d}, refit={self.refit!r})"
        )


def _dates(as_of: Any) -> list[pd.Timestamp]:
    dates = [_as_utc_timestamp(value) for value in as_of]
    if not dates:
        msg = "as_of is empty: give at least one observation date."
        raise InvalidParameterError(msg)
    ordered = sorted(dates)
    repeated = sorted({d for d in ordered if ordered.count(d) > 1})
    if repeated:
        msg = f"as_of holds a date twice: {[d.isoformat() for d in repeated]}."
        raise InvalidParameterError(msg)
    return ordered


def _engine(engine: Any, refit: str) -> Any:
    from segmentkit.engines._registry import get_engine
    from segmentkit.errors import NotFittedError, check_is_fitted

    model = get_engine(engine) if isinstance(engine, str) else engine
    if refit != "each" and not model.tags.supports_predict:
        msg = (
            f"{type(model).__name__} cannot score customers it was not fitted on "
            f"(tags.supports_predict is False); use refit='each'."
        )
        raise InvalidParameterError(msg)
    if refit == "none":
        try:
            check_is_fitted(model)
        except NotFittedError as error:
            msg = f"refit='none' scores with the engine as given, but {error}"
            raise InvalidParameterError(msg) from error
    return model


def _fresh(model: Any) -> Any:
    from sklearn.base import clone

    return clone(model)
