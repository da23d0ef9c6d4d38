"""RFM: recency, frequency and monetary scores from quantiles, and the classic named grid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from segmentkit._common._params import InstanceOf, Interval, Satisfies
from segmentkit.engines._base import Segmenter, require_columns, text_column
from segmentkit.engines._plan import TIE_TOLERANCE, FitInput, NonBuyers, ThresholdPlan, cut_reach
from segmentkit.errors import RuleSyntaxError
from segmentkit.features._extract import CustomerFeatures
from segmentkit.results._segmentation import Segment, sorted_at

__all__ = ["CLASSIC_GRID", "RFMSegmenter"]

# Rows: R score 5 (most recent) down to 1; columns: FM score 1..5, where
# FM = round-half-up of (F + M) / 2. Every cell is named, so every customer who has
# bought gets exactly one of the eleven classic segments.
CLASSIC_GRID: tuple[tuple[str, ...], ...] = (
    ("New customers", "Potential loyalists", "Potential loyalists", "Champions", "Champions"),
    ("Promising", "Potential loyalists", "Loyal customers", "Loyal customers", "Champions"),
    ("About to sleep", "Need attention", "Need attention", "Loyal customers", "Loyal customers"),
    ("Hibernating", "About to sleep", "At risk", "At risk", "Can't lose them"),
    ("Lost", "Hibernating", "At risk", "Can't lose them", "Can't lose them"),
)

_CLASSIC_DESCRIPTIONS = {
    "Champions": "Bought recently, buy often and spend the most.",
    "Loyal customers": "Buy regularly and spend well; responsive to promotions.",
    "Potential loyalists": "Recent customers with average frequency and spend.",
    "New customers": "Bought very recently, but only once or for little.",
    "Promising": "Fairly recent buyers who have not spent much yet.",
    "Need attention": "Average recency, frequency and spend; slipping.",
    "About to sleep": "Below-average recency and low value; will be lost without a nudge.",
    "At risk": "Spent well and often, but not for a long time.",
    "Can't lose them": "Used to be among the best customers; gone quiet.",
    "Hibernating": "Last purchase long ago, few orders, low spend.",
    "Lost": "Lowest recency, frequency and spend.",
}

NO_PURCHASES = "No purchases"
RETURNS_ONLY = "Returns only"
#: Descriptions of the two segments of customers without a purchase.
NON_BUYER_DESCRIPTIONS = {
    NO_PURCHASES: "Known customers without a purchase yet.",
    RETURNS_ONLY: "Customers whose only lines are returns or cancellations (net spend < 0).",
}
_SCORE_NAMES = ("r_score", "f_score", "m_score", "fm_score")


def _is_segment_map(value: Any) -> bool:
    return value == "classic" or (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    )


class RFMSegmenter(Segmenter):
    """Segment customers by recency, frequency and monetary quantile scores.

    Each of R, F and M gets a score from 1 to ``n_bins`` (most recent, most frequent,
    highest spend = ``n_bins``). The cut points are learned at ``fit`` and reused by
    ``predict``, so next month's customers are scored on the same scale.

    **Tie policy.** A customer's score is the quantile bin of the *first* position of
    its value in the sorted training values: ``score = floor(n_bins × (rank_min − 1) / n)
    + 1`` with ``rank_min`` the smallest rank shared by equal values. Equal values
    therefore always get equal scores, the lowest value always scores 1, and a value
    held by many customers occupies one score while the scores it would have spread
    over stay empty. With frequency, where most customers bought once, one-time
    buyers all score F = 1 and the next score used may be 3 or 4: the bins show
    how much the data can tell apart, not five equal slices.

    Customers without a purchase (``frequency == 0`` or no recency) go to the
    segment ``"Returns only"`` when their net spend (``monetary``) is below 0 (they
    only returned or cancelled), else to ``"No purchases"``.

    Parameters
    ----------
    n_bins : int, default=5
        Number of score levels.
    recency : str, default='recency_days'
        Feature with days since the last purchase (lower is better).
    frequency : str, default='frequency'
        Feature with the number of orders.
    monetary : str, default='monetary'
        Feature with spend.
    segment_map : 'classic' or dict of str to str, default='classic'
        ``'classic'`` names segments with :data:`CLASSIC_GRID` (needs ``n_bins=5``).
        A dict maps segment names, in priority order, to rules over ``r_score``,
        ``f_score``, ``m_score``, ``fm_score`` and any feature, e.g.
        ``{"VIP": "r_score >= 4 and m_score == 5"}``; customers matching none go to
        ``default_segment``.
    default_segment : str, default='Other'
        Segment for customers no custom rule matches.

    Attributes
    ----------
    thresholds_ : dict of str to numpy.ndarray
        For ``'recency'``, ``'frequency'`` and ``'monetary'``: the ``n_bins - 1`` cut
        points; score ``s`` starts at ``thresholds_[x][s - 2]`` (``inf`` when unused).
        Recency cut points are in days and count downwards.
    segments_ : list of Segment
        The segments, in id order.
    segment_names_ : dict of int to str
        Segment id to name.
    n_segments_ : int
        Number of segments.
    feature_names_in_ : numpy.ndarray
        Features seen in ``fit``.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    RuleSegmenter : Segments from named rules on any feature.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> features = pd.DataFrame({
    ...     "customer_id": list("abcdefghij"),
    ...     "recency_days": [1, 5, 10, 30, 60, 90, 120, 200, 300, 400],
    ...     "frequency": [12, 8, 6, 5, 1, 1, 1, 3, 1, 1],
    ...     "monetary": [900, 600, 400, 350, 40, 60, 20, 200, 15, 10],
    ... })
    >>> seg = sk.RFMSegmenter().fit_predict(features)
    >>> seg.assignments[["customer_id", "rfm_score", "segment"]].head(3)
      customer_id rfm_score          segment
    0           a       555        Champions
    1           b       555        Champions
    2           c       444  Loyal customers
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_bins": [Interval(int, 2, 10)],
        "recency": [InstanceOf((str,), "a str")],
        "frequency": [InstanceOf((str,), "a str")],
        "monetary": [InstanceOf((str,), "a str")],
        "segment_map": [
            Satisfies(_is_segment_map, "'classic' or a non-empty dict of str to rule text")
        ],
        "default_segment": [InstanceOf((str,), "a str")],
    }
    engine_name: ClassVar[str] = "rfm"
    _state_types: ClassVar[dict[str, Any]] = {"thresholds_": dict, "_rules": (dict, type(None))}

    def __init__(
        self,
        *,
        n_bins: int = 5,
        recency: str = "recency_days",
        frequency: str = "frequency",
        monetary: str = "monetary",
        segment_map: Literal["classic"] | Mapping[str, str] = "classic",
        default_segment: str = "Other",
    ) -> None:
        self.n_bins = n_bins
        self.recency = recency
        self.frequency = frequency
        self.monetary = monetary
        self.segment_map = segment_map
        self.default_segment = default_segment

    @staticmethod
    def classic_grid() -> pd.DataFrame:
        """The classic segment names as a table: R score by row, FM score by column.

        Returns
        -------
        pandas.DataFrame
            Index ``R`` (5 to 1), columns ``FM`` (1 to 5).

        Examples
        --------
        >>> from segmentkit import RFMSegmenter
        >>> RFMSegmenter.classic_grid().loc[5, 5]
        'Champions'
        """
        return pd.DataFrame(
            CLASSIC_GRID,
            index=pd.Index([5, 4, 3, 2, 1], name="R"),
            columns=pd.Index([1, 2, 3, 4, 5], name="FM"),
        )

    def _check_params_vs_input(self, features: CustomerFeatures) -> None:
        require_columns(features, [self.recency, self.frequency, self.monetary], "RFMSegmenter")
        if self.segment_map == "classic" and self.n_bins != 5:
            msg = (
                f"segment_map='classic' is defined for n_bins=5; got n_bins={self.n_bins}. "
                "Pass your own segment_map for other bin counts."
            )
            raise ValueError(msg)
        if not _buyers(features.frame, self.recency, self.frequency).any():
            msg = "RFMSegmenter needs at least one customer with a purchase; none has one."
            raise ValueError(msg)

    def _fit(self, features: CustomerFeatures) -> None:
        frame = features.frame
        buyers = _buyers(frame, self.recency, self.frequency)
        # Only the three columns are subset: filtering the whole frame copies every feature.
        self.thresholds_ = {
            name: _learn_cuts(column[buyers], self.n_bins)
            for name, column in self._oriented(frame).items()
        }
        # Recency was negated so that "higher is better"; store it in days again.
        self.thresholds_["recency"] = -self.thresholds_["recency"]
        if self.segment_map == "classic":
            names = list(dict.fromkeys(name for row in CLASSIC_GRID for name in row))
            order = list(_CLASSIC_DESCRIPTIONS)
            names.sort(key=order.index)
            self.segments_ = [
                Segment(i, name, _CLASSIC_DESCRIPTIONS[name], _grid_rule(name))
                for i, name in enumerate(names)
            ]
            self._rules = None
        else:
            from segmentkit.engines._expr import check_names, parse

            available = [*_SCORE_NAMES, *frame.columns]
            parsed = {}
            for name, text in self.segment_map.items():
                try:
                    expr = parse(text)
                    check_names(expr, available, text=text)
                except RuleSyntaxError as error:
                    message = f"segment_map entry {name!r}: {error.message}"
                    raise RuleSyntaxError(message, text=text, position=error.position) from None
                parsed[name] = expr
            self._rules = parsed
            self.segments_ = [
                Segment(i, name, "", text)
                for i, (name, text) in enumerate(self.segment_map.items())
            ]
            self.segments_.append(Segment(len(self.segments_), self.default_segment))
        for name in (NO_PURCHASES, RETURNS_ONLY):
            self.segments_.append(Segment(len(self.segments_), name, NON_BUYER_DESCRIPTIONS[name]))

    def _non_buyer_ids(self) -> tuple[int, int, int]:
        """Ids of the default segment of custom rules, "No purchases" and "Returns only".

        Looked up by name: a model saved before "Returns only" existed has none, and
        its returns-only customers stay in "No purchases".
        """
        by_name = {s.name: s.id for s in self.segments_}
        none = by_name[NO_PURCHASES]
        default = by_name.get(self.default_segment, none) if self._rules is not None else none
        return default, none, by_name.get(RETURNS_ONLY, none)

    def _oriented(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {
            "recency": -frame[self.recency].to_numpy(dtype=float),
            "frequency": frame[self.frequency].to_numpy(dtype=float),
            "monetary": frame[self.monetary].to_numpy(dtype=float),
        }

    def _fit_input(self, columns: list[str]) -> FitInput:
        # Only R, F and M (and features custom rules name) reach memory: small per customer.
        needed = [self.recency, self.frequency, self.monetary]
        extra: list[str] = []
        if self.segment_map != "classic":
            from segmentkit.engines._expr import parse

            for text in self.segment_map.values():
                try:
                    extra += sorted(parse(text).names)
                except RuleSyntaxError:
                    continue  # fit reports it, with the segment's name
        wanted = [*needed, *(name for name in extra if name in columns)]
        return FitInput(columns=list(dict.fromkeys(["customer_id", *wanted])))

    def _scoring_plan(self, columns: list[str]) -> ThresholdPlan:
        # The cut points become when/then scores, run by the frame's own engine.
        default_id, no_purchase, returns_only = self._non_buyer_ids()
        cells = None
        rules = None
        if self._rules is None:
            grid = [
                (segment.id, [
                    (5 - row, column + 1)
                    for row, names in enumerate(CLASSIC_GRID)
                    for column, name in enumerate(names)
                    if name == segment.name
                ])
                for segment in self.segments_
                if segment.id not in (no_purchase, returns_only)
            ]  # fmt: skip
            cells = [(segment, tuple(covered)) for segment, covered in grid]
        else:
            rules = [
                (segment.id, str(expr))
                for segment, expr in zip(self.segments_, self._rules.values(), strict=False)
            ]
        return ThresholdPlan(
            recency=self.recency,
            frequency=self.frequency,
            monetary=self.monetary,
            cuts={key: tuple(map(float, cuts)) for key, cuts in self.thresholds_.items()},
            cells=cells,
            rules=rules,
            default=default_id,
            non_buyers=NonBuyers(
                no_purchase,
                returns_only,
                frequency=self.frequency,
                recency=self.recency,
                monetary=self.monetary,
            ),
        )

    def _assign(self, features: CustomerFeatures) -> tuple[np.ndarray, dict[str, Any]]:
        frame = features.frame
        values = self._oriented(frame)
        buyers = np.isfinite(values["recency"]) & (values["frequency"] > 0)
        cuts = dict(self.thresholds_, recency=-self.thresholds_["recency"])
        r, f, m = (_apply_cuts(values[k], cuts[k]) for k in ("recency", "frequency", "monetary"))
        fm = (f + m + 1) >> 1
        default_id, no_purchase_id, returns_only_id = self._non_buyer_ids()
        if self._rules is None:
            grid_ids = {s.name: s.id for s in self.segments_}
            # Indexed by r * 6 + fm; scores are at least 1 and those above 5 take the
            # top cell, so one gather labels every customer.
            lookup = np.array(
                [
                    grid_ids[CLASSIC_GRID[5 - max(rr, 1)][max(ff, 1) - 1]]
                    for rr in range(6)
                    for ff in range(6)
                ],
                dtype=np.int64,
            )
            labels = lookup[np.minimum(r, 5) * 6 + np.minimum(fm, 5)]
        else:
            scores = pd.DataFrame(
                {
                    name: score.astype(np.int64)
                    for name, score in zip(_SCORE_NAMES, (r, f, m, fm), strict=True)
                },
                index=frame.index,
            )
            context = pd.concat([scores, frame], axis=1)
            labels = np.full(len(frame), default_id, dtype=np.int64)
            undecided = np.ones(len(frame), dtype=bool)
            for segment, expr in zip(self.segments_, self._rules.values(), strict=False):
                hit = expr.evaluate(context).to_numpy(dtype=bool) & undecided
                labels[hit] = segment.id
                undecided &= ~hit
        non_buyer = np.where(values["monetary"] < 0, returns_only_id, no_purchase_id)
        labels = np.where(buyers, labels, non_buyer).astype(np.int64)
        # Scores are 1..10, so "rfm_score" takes its text from a table of every (R, F, M)
        # combination plus "" for customers without a purchase: no string built per row.
        table = [f"{a}{b}{c}" for a in range(11) for b in range(11) for c in range(11)]
        wide = np.int16 if r.dtype == np.int8 else np.int64  # int8 scores are below 60
        combination = r.astype(wide) * 121 + f.astype(wide) * 11 + m
        codes = np.where(buyers, combination.clip(0, len(table) - 1), len(table))
        score_columns: dict[str, Any] = {
            "r_score": np.where(buyers, r, 0).astype(np.int64),
            "f_score": np.where(buyers, f, 0).astype(np.int64),
            "m_score": np.where(buyers, m, 0).astype(np.int64),
            "rfm_score": text_column([*table, ""], codes),
        }
        return labels, score_columns


def _buyers(frame: pd.DataFrame, recency: str, frequency: str) -> np.ndarray:
    recency_values = frame[recency].to_numpy(dtype=float)
    frequency_values = frame[frequency].to_numpy(dtype=float)
    # NaN and -inf orders are not > 0; +inf is.
    return np.isfinite(recency_values) & (frequency_values > 0)


def _learn_cuts(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Cut points under the min-rank tie policy (see the class docstring).

    Score ``level`` starts at the first sorted position ``p`` with
    ``p * n_bins // n >= level - 1``. The cut is the value ``v`` at ``p`` when ``v``
    first occurs there; when ``v`` also occurs before ``p`` it scores lower, and the
    cut is the next larger value. Only the sorted values at ``p - 1`` and ``p`` are
    needed, so no full sort is made.
    """
    finite = values[np.isfinite(values)]
    n = len(finite)
    cuts = np.full(n_bins - 1, np.inf)
    starts = [-(-(level - 1) * n // n_bins) for level in range(2, n_bins + 1)]
    # p >= 1 whenever n >= 1, so p - 1 is a position too.
    wanted = sorted({k for p in starts if p < n for k in (p - 1, p)})
    if not wanted:
        return cuts
    ordered = dict(zip(wanted, sorted_at(finite, wanted).tolist(), strict=True))
    # Values within the tie tolerance are equal: the same amounts summed in another
    # order (another backend) must not move a cut.
    tied = sorted(
        {ordered[p] for p in starts if p < n and ordered[p - 1] >= cut_reach(ordered[p])}
    )
    next_above = _next_above(finite, tied)
    for i, p in enumerate(starts):
        if p < n:
            value = ordered[p]
            cuts[i] = value if ordered[p - 1] < cut_reach(value) else next_above[value]
    return cuts


def _next_above(values: np.ndarray, wanted: list[float]) -> dict[float, float]:
    """The smallest of ``values`` above each of ``wanted`` and its ties (``inf`` when none is).

    The value after ``v`` and the values tied with it sits at position
    ``count(values <= v + tolerance)``: counts are cheap, and one partial sort finds every
    such position at once.
    """
    positions = {v: int(np.count_nonzero(values <= v + TIE_TOLERANCE * abs(v))) for v in wanted}
    inside = sorted({k for k in positions.values() if k < len(values)})
    found = dict(zip(inside, sorted_at(values, inside).tolist(), strict=True)) if inside else {}
    return {v: found.get(k, np.inf) for v, k in positions.items()}


def _apply_cuts(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Score: one plus the number of cuts at or below the value.

    Cuts ascend, so this equals ``searchsorted(cuts, value, side="right")`` plus one,
    but a few vectorised comparisons beat a binary search per customer. Values that
    are not finite count as ``-inf``.
    """
    cuts = np.asarray(cuts, dtype=float)
    if np.isneginf(cuts).any():
        values = np.where(np.isfinite(values), values, -np.inf)
    # Small integers are cheaper to count and combine; fm = (f + m + 1) >> 1 must fit.
    scores = np.ones(len(values), dtype=np.int8 if len(cuts) < 60 else np.int64)
    for cut in cuts:
        scores += values >= cut_reach(cut)
    # NaN and -inf already pass no cut; +inf passed them all but counts as -inf.
    infinite = values == np.inf
    if infinite.any():
        scores[infinite] = 1
    return scores


def _grid_rule(name: str) -> str:
    cells = [
        f"(r_score == {5 - row} and fm_score == {col + 1})"
        for row, names in enumerate(CLASSIC_GRID)
        for col, cell in enumerate(names)
        if cell == name
    ]
    return " or ".join(cells)
