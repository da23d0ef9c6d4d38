"""Holdout and A/B groups: which customers get which treatment, reproducibly."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TypeGuard

import numpy as np
import pandas as pd

from segmentkit._common._csv import restore_frame, write_csv
from segmentkit._common._files import PathLike, write_atomic
from segmentkit._common._params import NONE, PATH, InstanceOf, Satisfies, validated
from segmentkit.errors import InvalidParameterError, UnknownSegmentError
from segmentkit.results._segmentation import Segmentation

__all__ = ["GroupAssignment", "assign_groups"]

DEFAULT_ARMS: Mapping[str, float] = {"control": 0.1, "offer_a": 0.45, "offer_b": 0.45}
#: Stratum label when customers are not stratified.
ALL_CUSTOMERS = "All customers"
# Unit separator: no customer id or salt a store uses contains it, so "ab" + "c" and
# "a" + "bc" never hash alike.
_SEPARATOR = "\x1f"
_COLUMNS = ["customer_id", "segment_id", "segment", "stratum", "arm", "bucket"]
_FILE_COLUMNS = [*_COLUMNS, "salt", "arms", "stratify_by"]
_SEGMENT = [InstanceOf((str, int, np.integer), "a segment name (str) or id (int)"), NONE]


def _is_salt(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value)


class GroupAssignment:
    """Which arm (control, offer A, ...) every customer of a segmentation is in.

    Made by :func:`assign_groups`; read back from a file with :meth:`read`.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``customer_id, segment_id, segment, stratum, arm, bucket``.
    arms : mapping of str to float
        Share of each arm, in order.
    salt : str
        The salt the buckets were hashed with.
    stratify_by : str or None
        What the strata are: ``'segment'``, ``None`` (one stratum) or a column name.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per customer: ``customer_id`` (text), ``segment_id``, ``segment``,
        ``stratum`` (text), ``arm`` and ``bucket``, the customer's hash as a number in
        [0, 1) that decides the arm.
    arms : dict of str to float
        Share of each arm.
    salt : str
        The salt.
    stratify_by : str or None
        The stratification.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> customers = pd.DataFrame({"customer_id": [f"c{i}" for i in range(10)]})
    >>> groups = sk.assign_groups(customers, arms={"control": 0.2, "offer": 0.8},
    ...                           salt="spring", stratify_by=None)
    >>> groups.table["arm"].value_counts().to_dict()
    {'offer': 8, 'control': 2}
    """

    def __init__(
        self,
        table: pd.DataFrame,
        arms: Mapping[str, float],
        salt: str,
        stratify_by: str | None,
    ) -> None:
        self.table = table
        self.arms = dict(arms)
        self.salt = salt
        self.stratify_by = stratify_by

    def __len__(self) -> int:
        return len(self.table)

    def summary(self) -> pd.DataFrame:
        """Customers per stratum and arm, target against actual.

        Returns
        -------
        pandas.DataFrame
            One row per stratum × arm (arms with no customer included), indexed by
            ``(stratum, arm)``: ``customers``, ``target`` (share × stratum size, not
            rounded), ``difference`` (customers − target, within ±1 for a fresh
            assignment), ``share`` (of the stratum) and ``target_share``.

        Examples
        --------
        >>> import pandas as pd
        >>> import segmentkit as sk
        >>> customers = pd.DataFrame({"customer_id": [str(i) for i in range(7)]})
        >>> groups = sk.assign_groups(customers, arms={"control": 0.5, "offer": 0.5},
        ...                           salt="s", stratify_by=None)
        >>> groups.summary()[["customers", "target"]]
                               customers  target
        stratum       arm
        All customers control          4     3.5
                      offer            3     3.5
        """
        strata = self._strata_order()
        arms = list(self.arms)
        counts = (
            self.table.groupby(["stratum", "arm"], sort=False)
            .size()
            .reindex(pd.MultiIndex.from_product([strata, arms], names=["stratum", "arm"]))
            .fillna(0)
            .astype(np.int64)
        )
        sizes = counts.groupby(level="stratum", sort=False).transform("sum")
        shares = np.array([self.arms[a] for a in arms] * len(strata), dtype=float)
        target = sizes.to_numpy() * shares
        with np.errstate(divide="ignore", invalid="ignore"):
            share = counts.to_numpy() / sizes.to_numpy()
        return pd.DataFrame(
            {
                "customers": counts.to_numpy(),
                "target": target,
                "difference": counts.to_numpy() - target,
                "share": share,
                "target_share": shares,
            },
            index=counts.index,
        )

    def _strata_order(self) -> list[str]:
        table = self.table
        if self.stratify_by == "segment" and table["segment_id"].notna().all():
            # Segments in id order: the engine's own order (groups carry no revenue).
            pairs = table[["segment_id", "stratum"]].drop_duplicates("stratum")
            return pairs.sort_values("segment_id", kind="stable")["stratum"].tolist()
        return sorted(pd.unique(table["stratum"]))

    @validated(arm=[InstanceOf((str,), "an arm name (str)")], segment=_SEGMENT)
    def members(self, arm: str, segment: str | int | None = None) -> pd.Index:
        """Ids of the customers in one arm, optionally of one segment only.

        Parameters
        ----------
        arm : str
            Arm name.
        segment : str or int, optional
            Segment name or id; all segments by default.

        Returns
        -------
        pandas.Index
            Customer ids, in table order.

        Raises
        ------
        segmentkit.errors.InvalidParameterError
            If there is no arm of that name.
        segmentkit.errors.UnknownSegmentError
            If no customer is in a segment of that name or id (a ``KeyError``).

        Examples
        --------
        >>> import pandas as pd
        >>> import segmentkit as sk
        >>> customers = pd.DataFrame({"customer_id": ["a", "b", "c", "d"],
        ...                           "segment_id": [0, 0, 1, 1],
        ...                           "segment": ["VIP", "VIP", "New", "New"]})
        >>> groups = sk.assign_groups(customers, arms={"control": 0.5, "offer": 0.5},
        ...                           salt="s")
        >>> list(groups.members("control", segment="VIP"))
        ['a']
        """
        if arm not in self.arms:
            msg = f"No arm named {arm!r}. Arms: {list(self.arms)}."
            raise InvalidParameterError(msg)
        chosen = self.table["arm"].to_numpy() == arm
        if segment is not None:
            column = "segment" if isinstance(segment, str) else "segment_id"
            values = self.table[column]
            if not (values == segment).any():
                known = pd.unique(values.dropna()).tolist()
                msg = f"No customer is in segment {segment!r}. Segments: {known}."
                raise UnknownSegmentError(msg)
            chosen &= (values == segment).to_numpy()
        return pd.Index(self.table["customer_id"].to_numpy()[chosen], name="customer_id")

    def to_frame(self) -> pd.DataFrame:
        """The table with the design on every row, as the files hold it.

        Returns
        -------
        pandas.DataFrame
            :attr:`table` plus ``salt``, ``arms`` (the shares as a JSON object, in arm
            order) and ``stratify_by`` (empty when there was one stratum).

        Examples
        --------
        >>> import pandas as pd
        >>> import segmentkit as sk
        >>> customers = pd.DataFrame({"customer_id": ["a", "b"]})
        >>> groups = sk.assign_groups(customers, arms={"control": 0.5, "offer": 0.5},
        ...                           salt="s", stratify_by=None)
        >>> groups.to_frame()[["customer_id", "arm", "salt", "arms"]]
          customer_id      arm salt                            arms
        0           a  control    s  {"control": 0.5, "offer": 0.5}
        1           b    offer    s  {"control": 0.5, "offer": 0.5}
        """
        return self.table.assign(
            salt=self.salt,
            arms=json.dumps(self.arms),
            stratify_by="" if self.stratify_by is None else self.stratify_by,
        )

    @validated(path=[PATH])
    def to_csv(self, path: PathLike) -> Path:
        """Write the assignment to a CSV file, atomically.

        Every row carries the design (``salt``, ``arms``, ``stratify_by``) so the file
        alone can be read back with :meth:`read`.

        Parameters
        ----------
        path : str or os.PathLike
            Destination; its folder must exist. Replaced only once fully written.

        Returns
        -------
        pathlib.Path
            The path written.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> import pandas as pd
        >>> import segmentkit as sk
        >>> customers = pd.DataFrame({"customer_id": ["a", "b", "c"]})
        >>> groups = sk.assign_groups(customers, arms={"control": 0.5, "offer": 0.5},
        ...                           salt="s", stratify_by=None)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = groups.to_csv(pathlib.Path(folder) / "groups.csv")
        ...     back = sk.GroupAssignment.read(path)
        >>> back.table.equals(groups.table), back.arms, back.salt
        (True, {'control': 0.5, 'offer': 0.5}, 's')
        """
        frame = self.to_frame()
        # Default float formatting writes the shortest text that reads back to the same
        # bucket, so a reread file compares equal.
        return write_csv(path, frame, index=False)

    @validated(path=[PATH])
    def to_parquet(self, path: PathLike) -> Path:
        """Write the assignment to a Parquet file, atomically.

        Needs ``pyarrow`` (``pip install "segmentkit[parquet]"``).

        Parameters
        ----------
        path : str or os.PathLike
            Destination; its folder must exist.

        Returns
        -------
        pathlib.Path
            The path written.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> import pandas as pd
        >>> import segmentkit as sk
        >>> groups = sk.assign_groups(pd.DataFrame({"customer_id": ["a", "b"]}),
        ...                           arms={"control": 0.5, "offer": 0.5}, salt="s",
        ...                           stratify_by=None)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = groups.to_parquet(pathlib.Path(folder) / "groups.parquet")
        ...     sk.GroupAssignment.read(path).table.equals(groups.table)
        True
        """
        from segmentkit.contracts._table import require_pyarrow

        require_pyarrow()
        frame = self.to_frame()
        return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))

    @validated(path=[PATH])
    def to_json(self, path: PathLike) -> Path:
        """Write the assignment to a JSON document, atomically.

        The document holds ``salt``, ``arms``, ``stratify_by`` once and
        ``assignments``, a list of records with the :attr:`table` columns.

        Parameters
        ----------
        path : str or os.PathLike
            Destination; its folder must exist.

        Returns
        -------
        pathlib.Path
            The path written.

        Examples
        --------
        >>> import json, tempfile, pathlib
        >>> import pandas as pd
        >>> import segmentkit as sk
        >>> groups = sk.assign_groups(pd.DataFrame({"customer_id": ["a", "b"]}),
        ...                           arms={"control": 0.5, "offer": 0.5}, salt="s",
        ...                           stratify_by=None)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = groups.to_json(pathlib.Path(folder) / "groups.json")
        ...     document = json.loads(path.read_text())
        >>> sorted(document), document["assignments"][0]["arm"]
        (['arms', 'assignments', 'salt', 'stratify_by'], 'control')
        """
        document = {
            "salt": self.salt,
            "arms": self.arms,
            "stratify_by": self.stratify_by,
            # Not pandas' to_json: it keeps 10 significant digits, and the bucket needs
            # all 17 to read back equal.
            "assignments": self.table.astype(object)
            .where(self.table.notna(), None)
            .to_dict(orient="records"),
        }
        text = json.dumps(document, indent=1, allow_nan=False, default=str)
        return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    @classmethod
    @validated(source=[PATH, InstanceOf((pd.DataFrame,), "a pandas DataFrame")])
    def read(cls, source: PathLike | pd.DataFrame) -> GroupAssignment:
        """Read an assignment written by :meth:`to_csv`, :meth:`to_parquet` or :meth:`to_json`.

        Parameters
        ----------
        source : str, os.PathLike or pandas.DataFrame
            A ``.csv``, ``.parquet`` or ``.json`` file (by suffix; anything else is
            read as CSV), or a frame as :meth:`to_frame` returns.

        Returns
        -------
        GroupAssignment
            Equal to the one written.

        Raises
        ------
        ValueError
            If a column is missing, the file holds more than one design, an arm is not
            in the design, or a bucket does not match the customer id and salt (the
            file was edited or mixes assignments).

        Examples
        --------
        >>> import pandas as pd
        >>> import segmentkit as sk
        >>> customers = pd.DataFrame({"customer_id": ["a", "b", "c"]})
        >>> groups = sk.assign_groups(customers, arms={"control": 0.5, "offer": 0.5},
        ...                           salt="s", stratify_by=None)
        >>> sk.GroupAssignment.read(groups.to_frame()).arms
        {'control': 0.5, 'offer': 0.5}
        """
        frame = _read_frame(source)
        missing = [c for c in _FILE_COLUMNS if c not in frame.columns]
        if missing:
            msg = (
                f"A group assignment file needs the columns {_FILE_COLUMNS}; {missing} "
                "missing. Use a file written by GroupAssignment.to_csv."
            )
            raise ValueError(msg)
        designs = frame[["salt", "arms", "stratify_by"]].drop_duplicates()
        if len(designs) > 1:
            msg = (
                f"The file holds {len(designs)} different designs (salt, arms, "
                "stratify_by); it must hold one assignment only."
            )
            raise ValueError(msg)
        if len(frame):
            salt, arms_text, stratify_by = designs.iloc[0].tolist()
        else:
            msg = "The group assignment file has no rows; its design cannot be read back."
            raise ValueError(msg)
        try:
            design = json.loads(arms_text)
        except (TypeError, json.JSONDecodeError):
            msg = (
                f"The 'arms' column must hold the shares as a JSON object, e.g. "
                f"{json.dumps(dict(DEFAULT_ARMS))}. Got {arms_text!r}."
            )
            raise ValueError(msg) from None
        arms = _check_arms(design)
        salt = _check_salt(str(salt))
        stratify = None if pd.isna(stratify_by) or stratify_by == "" else str(stratify_by)
        table = _canonical_table(frame[_COLUMNS])
        unknown = sorted(set(table["arm"]) - set(arms))
        if unknown:
            msg = f"The file assigns customers to arms {unknown} that its design {arms} lacks."
            raise ValueError(msg)
        expected = _buckets(table["customer_id"].tolist(), salt)
        # CSV text round trips floats exactly, so any difference means an edited file.
        wrong = ~np.isclose(table["bucket"].to_numpy(dtype=float), expected, rtol=0, atol=1e-12)
        if wrong.any():
            examples = table["customer_id"][wrong].head(3).tolist()
            msg = (
                f"{int(wrong.sum())} bucket(s) do not match the customer id and salt "
                f"{salt!r}, e.g. customers {examples}; the file was edited or mixes "
                "assignments. Assign the groups again instead of editing the file."
            )
            raise ValueError(msg)
        return cls(table, arms, salt, stratify)

    def __repr__(self) -> str:
        counts = self.table["arm"].value_counts()
        parts = ", ".join(
            f"{name} {int(counts.get(name, 0))} ({share:.0%})" for name, share in self.arms.items()
        )
        strata = self.table["stratum"].nunique()
        return (
            f"<GroupAssignment: {len(self)} customers in {strata} "
            f"strat{'um' if strata == 1 else 'a'}, salt={self.salt!r}: {parts}>"
        )


@validated(
    segmentation=[
        InstanceOf(
            (Segmentation, pd.DataFrame),
            "a Segmentation or a pandas DataFrame with a 'customer_id' column",
        )
    ],
    arms=[InstanceOf((Mapping,), f"a mapping of arm name to share, e.g. {dict(DEFAULT_ARMS)}")],
    salt=[Satisfies(_is_salt, "a non-empty str naming the campaign, e.g. 'campaign-2026-11'")],
    stratify_by=[InstanceOf((str,), "'segment', a column name (str)"), NONE],
)
def assign_groups(
    segmentation: Segmentation | pd.DataFrame,
    arms: Mapping[str, float] = DEFAULT_ARMS,
    *,
    salt: str,
    stratify_by: str | None = "segment",
) -> GroupAssignment:
    """Split customers into a control (holdout) group and treatment arms, reproducibly.

    Each customer gets a *bucket*: the first 53 bits of SHA-256 of
    ``salt + "\\x1f" + customer_id`` as a number in [0, 1). Within each stratum,
    customers are sorted by bucket and the sorted order is cut at the boundaries
    ``round(n × cumulative share)``: the first cut goes to the first arm, and so on.

    Guarantees, for a given salt:

    * **Deterministic**: the same customers give the same arms on any machine, in any
      input order.
    * **Exact proportions**: in every stratum of ``n`` customers, each arm has
      ``share × n`` customers within ±1.
    * **Stable**: adding (or removing) one customer to a stratum moves at most
      ``len(arms) - 1`` of the customers already there to another arm (only those
      next to a cut), so adding ``m`` moves at most ``m × (len(arms) - 1)``. Other
      strata are not touched. A customer who changes stratum (segment) counts as one
      removal and one addition.
    * **Salt-specific**: another salt gives an unrelated split; use a new salt per
      campaign so the same customers are not always the holdout.

    Parameters
    ----------
    segmentation : Segmentation or pandas.DataFrame
        The customers: a segmentation, or a frame with a ``customer_id`` column (and,
        optionally, ``segment_id``, ``segment`` and the column named by
        ``stratify_by``). Each customer once.
    arms : mapping of str to float, default={'control': 0.1, 'offer_a': 0.45, 'offer_b': 0.45}
        Arm names and their shares: at least two arms, non-empty names, positive
        shares that sum to 1.
    salt : str
        Any non-empty text naming the campaign. Required: a salt shared by every
        campaign would make the same customers the holdout every time.
    stratify_by : {'segment', None} or str, default='segment'
        ``'segment'`` gives each segment its exact proportions, ``None`` treats all
        customers as one stratum, any other value names a column of the
        segmentation's assignments (or of the frame) to stratify by, e.g. a country.

    Returns
    -------
    GroupAssignment
        The arm of every customer, in input order.

    Raises
    ------
    segmentkit.errors.InvalidParameterError
        If ``arms``, ``salt`` or ``stratify_by`` is invalid, or ``segmentation`` is
        neither a Segmentation nor a DataFrame.
    ValueError
        If customer ids are missing or repeated, or the stratification column has
        missing values.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> seg = sk.RFMSegmenter().fit_predict(sk.extract_features(tx))
    >>> groups = sk.assign_groups(seg, salt="campaign-2026-11")
    >>> groups
    <GroupAssignment: 800 customers in 11 strata, salt='campaign-2026-11': control 80 (10%),
     offer_a 360 (45%), offer_b 360 (45%)>
    >>> groups.summary().loc["Champions"]
             customers  target  difference     share  target_share
    arm
    control         18   18.30       -0.30  0.098361          0.10
    offer_a         83   82.35        0.65  0.453552          0.45
    offer_b         82   82.35       -0.35  0.448087          0.45
    """
    arms = _check_arms(arms)
    salt = _check_salt(salt)
    frame = _customers(segmentation)
    ids = frame["customer_id"]
    if ids.isna().any():
        msg = f"{int(ids.isna().sum())} customer id(s) are missing; every customer needs an id."
        raise ValueError(msg)
    ids = ids.astype(str)
    repeated = ids[ids.duplicated()]
    if len(repeated):
        msg = (
            f"{len(repeated)} customer id(s) appear more than once, e.g. "
            f"{pd.unique(repeated)[:3].tolist()}; each customer can be in one arm only. "
            "Drop the duplicates first."
        )
        raise ValueError(msg)
    strata = _strata(frame, stratify_by)
    keys = _hash_keys(ids.tolist(), salt)
    arm_of = _cut(keys, ids.to_numpy(dtype=object), strata, arms)
    names = np.array(list(arms), dtype=object)
    table = _canonical_table(
        pd.DataFrame(
            {
                "customer_id": ids.to_numpy(),
                "segment_id": frame["segment_id"].to_numpy() if "segment_id" in frame else np.nan,
                "segment": frame["segment"].to_numpy() if "segment" in frame else None,
                "stratum": strata,
                "arm": names[arm_of],
                "bucket": keys.astype(np.float64) * 2.0**-53,
            }
        )
    )
    return GroupAssignment(table, arms, salt, stratify_by)


def _check_arms(arms: object) -> dict[str, float]:
    if not isinstance(arms, Mapping):
        msg = (
            "The 'arms' parameter must be a mapping of arm name to share, e.g. "
            f"{dict(DEFAULT_ARMS)}. Got {type(arms).__name__} instead."
        )
        raise InvalidParameterError(msg)
    if len(arms) < 2:
        msg = (
            f"The 'arms' parameter needs at least two arms (e.g. a control and an offer). "
            f"Got {dict(arms)!r}."
        )
        raise InvalidParameterError(msg)
    checked = {}
    for name, share in arms.items():
        if not isinstance(name, str) or not name.strip():
            msg = f"Every arm needs a non-empty text name. Got {name!r} in {dict(arms)!r}."
            raise InvalidParameterError(msg)
        if isinstance(share, bool) or not isinstance(share, (int, float, np.number)):
            msg = f"The share of arm {name!r} must be a number. Got {share!r}."
            raise InvalidParameterError(msg)
        if not math.isfinite(share) or share <= 0:
            msg = f"The share of arm {name!r} must be positive. Got {share!r}."
            raise InvalidParameterError(msg)
        checked[name] = float(share)
    total = math.fsum(checked.values())
    if abs(total - 1) > 1e-9:
        msg = (
            f"The shares of the arms must sum to 1; {checked} sum to {total!r}. "
            "Give each arm its fraction of the customers."
        )
        raise InvalidParameterError(msg)
    return checked


def _check_salt(salt: object) -> str:
    if not _is_salt(salt):
        msg = (
            "The 'salt' parameter must be a non-empty text naming the campaign, e.g. "
            f"'campaign-2026-11'. Got {salt!r}."
        )
        raise InvalidParameterError(msg)
    return salt


def _customers(segmentation: Segmentation | pd.DataFrame) -> pd.DataFrame:
    if isinstance(segmentation, Segmentation):
        return segmentation.assignments
    if "customer_id" not in segmentation.columns:
        msg = (
            "A frame of customers needs a 'customer_id' column. Columns: "
            f"{list(segmentation.columns)}."
        )
        raise InvalidParameterError(msg)
    return segmentation.reset_index(drop=True)


def _strata(frame: pd.DataFrame, stratify_by: str | None) -> np.ndarray:
    if stratify_by is None:
        return np.full(len(frame), ALL_CUSTOMERS, dtype=object)
    if stratify_by not in frame.columns:
        msg = (
            f"Cannot stratify by {stratify_by!r}: no such column. Columns: "
            f"{list(frame.columns)}. Use stratify_by=None for one stratum."
        )
        raise InvalidParameterError(msg)
    values = frame[stratify_by]
    if values.isna().any():
        msg = (
            f"{int(values.isna().sum())} customer(s) have no {stratify_by!r}; every "
            "customer needs a stratum. Fill the missing values (e.g. 'unknown') first."
        )
        raise ValueError(msg)
    return values.astype(str).to_numpy(dtype=object)


def _hash_keys(ids: list[str], salt: str) -> np.ndarray:
    """The first 53 bits of SHA-256(salt, 0x1f, id) per id, as unsigned integers."""
    prefix = (salt + _SEPARATOR).encode("utf-8")
    sha256 = hashlib.sha256
    # Whole digests joined into one bytes object and read as big-endian integers, every
    # fourth one the first 8 bytes of a digest: ~0.5 s per million ids, mostly hashlib.
    raw = np.frombuffer(
        b"".join([sha256(prefix + c.encode("utf-8")).digest() for c in ids]), dtype=">u8"
    )[::4]
    return (raw >> np.uint64(11)).astype(np.uint64)


def _buckets(ids: list[str], salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per id (53 bits: every float in it is exact)."""
    return _hash_keys(ids, salt).astype(np.float64) * 2.0**-53


def _cut(
    keys: np.ndarray, ids: np.ndarray, strata: np.ndarray, arms: Mapping[str, float]
) -> np.ndarray:
    """Index of each customer's arm: rank by hash within the stratum, cut at the shares."""
    n = len(keys)
    result = np.empty(n, dtype=np.int64)
    if n == 0:
        return result
    codes, _ = pd.factorize(strata)
    order = np.lexsort((keys, codes))
    sorted_codes, sorted_keys = codes[order], keys[order]
    tied = (sorted_codes[1:] == sorted_codes[:-1]) & (sorted_keys[1:] == sorted_keys[:-1])
    if tied.any():
        # Two ids with the same 53-bit hash: astronomically rare, but the id decides
        # between them so the order never depends on the input order.
        order = np.lexsort((ids.astype(str), keys, codes))
        sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes)
    size = np.repeat(sizes, sizes)
    cumulative = np.cumsum(list(arms.values()))
    # Rounding the cumulative boundaries, not each arm, keeps every arm within ±1 of
    # its target and the counts summing to n; floor(x + 0.5) is round-half-up, chosen
    # explicitly so the rule is easy to restate.
    arm = np.zeros(n, dtype=np.int64)
    for edge in cumulative[:-1]:
        boundary = np.floor(size * edge + 0.5)
        arm += rank >= boundary
    result[order] = arm
    return result


def _canonical_table(frame: pd.DataFrame) -> pd.DataFrame:
    table = frame[_COLUMNS].reset_index(drop=True)
    segment_id = table["segment_id"]
    if segment_id.notna().all() and len(segment_id):
        segment_id = segment_id.astype(np.int64)
    else:
        segment_id = segment_id.astype("Int64")
    return table.assign(
        customer_id=table["customer_id"].astype(str),
        segment_id=segment_id,
        segment=table["segment"].astype(object).where(table["segment"].notna(), None),
        stratum=table["stratum"].astype(str),
        arm=table["arm"].astype(str),
        bucket=table["bucket"].astype(float),
    )


def _read_frame(source: object) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)  # type: ignore[arg-type]
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".json":
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or "assignments" not in document:
            msg = f"{str(path)!r} is not a group assignment written by GroupAssignment.to_json."
            raise ValueError(msg)
        frame = pd.DataFrame(document["assignments"], columns=_COLUMNS)
        return frame.assign(
            salt=document.get("salt"),
            arms=json.dumps(document.get("arms")),
            stratify_by=document.get("stratify_by") or "",
        )
    text = {c: str for c in ("customer_id", "segment", "stratum", "arm", "salt", "arms")}
    frame = pd.read_csv(
        path,
        dtype={**text, "stratify_by": str},
        keep_default_na=False,
        na_values={"segment_id": [""], "segment": [""]},
    )
    # Text cells were prefixed against spreadsheet formulas when written (see _csv).
    return restore_frame(frame, [*text, "stratify_by"])
