"""Snapshots at successive dates, migration between them, and the changes to push."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit.errors import InvalidParameterError, UnknownSegmentError
from segmentkit.timeline._migration import GONE, NEW

MONTHS = pd.date_range("1997-07-01", "1998-07-01", freq="MS")


@pytest.fixture(scope="module")
def sample_tx() -> sk.Transactions:
    raw, mapping = sk.datasets.load_sample()
    return sk.Transactions.from_frame(raw, **mapping)


@pytest.fixture(scope="module")
def cdnow_monthly(cdnow_tx) -> sk.Snapshots:
    return sk.snapshots(cdnow_tx, sk.RFMSegmenter(), MONTHS)


def _segmentation(ids, labels, names=("A", "B", "C", "D"), as_of="2024-01-01"):
    table = pd.DataFrame(
        {
            "customer_id": [str(i) for i in ids],
            "segment_id": list(labels),
            "segment": [names[label] for label in labels],
            "as_of": as_of,
        }
    )
    return sk.Segmentation.from_assignments(table)


# --- snapshots -------------------------------------------------------------------------


def test_monthly_snapshots_over_the_last_year_of_cdnow(cdnow_tx, cdnow_monthly):
    assert len(cdnow_monthly) == 13
    assert [s.as_of for s in cdnow_monthly] == list(MONTHS.tz_localize("UTC"))
    # Customers only accumulate: everyone who bought before a date is segmented at it.
    sizes = cdnow_monthly.sizes().sum(axis=1)
    assert sizes.is_monotonic_increasing
    assert sizes.iloc[-1] == cdnow_tx.n_customers == 23570
    for step in cdnow_monthly.migrations():
        matrix = step.matrix
        assert int(matrix.drop(index=NEW).to_numpy().sum()) == len(step.before)
        assert int(matrix.drop(columns=GONE).to_numpy().sum()) == len(step.after)
        # Nobody disappears from a cumulative customer base.
        assert int(matrix[GONE].sum()) == 0


def test_each_snapshot_uses_only_data_before_its_date(sample_tx):
    dates = ["2017-05-01", "2017-08-15"]
    model = sk.RFMSegmenter().fit(sk.extract_features(sample_tx, as_of=dates[0]))
    made = sk.snapshots(sample_tx, model, dates, refit="none")
    for date, snapshot in zip(dates, made, strict=True):
        direct = model.predict(sk.extract_features(sample_tx, as_of=date))
        pd.testing.assert_frame_equal(snapshot.assignments, direct.assignments)


def test_refit_first_scores_every_date_with_one_model(sample_tx):
    made = sk.snapshots(sample_tx, "rfm", ["2017-06-01", "2017-09-01", "2017-12-01"])
    assert made.refit == "first"
    assert made.engines[0] is made.engines[1] is made.engines[2]
    first_cuts = made.engines[0].thresholds_
    refitted = sk.snapshots(sample_tx, "rfm", ["2017-06-01", "2017-12-01"], refit="each")
    assert refitted.engines[0] is not refitted.engines[1]
    assert any(
        not np.array_equal(first_cuts[k], refitted.engines[1].thresholds_[k]) for k in first_cuts
    )


def test_the_callers_engine_is_never_fitted_in_place(sample_tx):
    engine = sk.RFMSegmenter()
    sk.snapshots(sample_tx, engine, ["2017-06-01", "2017-09-01"], refit="each")
    assert not hasattr(engine, "thresholds_")


def test_dates_are_sorted_and_written_out(sample_tx, tmp_path):
    made = sk.snapshots(sample_tx, "rfm", ["2017-09-01", "2017-06-01"])
    assert made.as_of == sorted(made.as_of)
    folder = made.to_dir(tmp_path / "snaps")
    written = sorted(p.name for p in folder.iterdir())
    assert written == ["segments-2017-06-01.csv", "segments-2017-09-01.csv", "sizes.csv"]
    back = sk.Segmentation.from_assignments(folder / "segments-2017-09-01.csv")
    assert set(back.assignments["customer_id"]) == set(made[-1].assignments["customer_id"])
    assert "Snapshots(2 × RFMSegmenter" in repr(made) or "Snapshots(2 × rfm" in repr(made)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"as_of": []}, r"'as_of' parameter of snapshots\(\) must be a non-empty sequence"),
        ({"as_of": "2017-06-01"}, "sequence of dates"),
        ({"as_of": ["2017-06-01", "2017-06-01"]}, "date twice"),
        ({"as_of": ["2017-06-01"], "refit": "sometimes"}, "'refit' parameter"),
        ({"as_of": ["2017-06-01"], "refit": "none"}, "not fitted"),
        ({"as_of": ["2017-06-01"], "feature_params": {"as_of": "x"}}, "not inside"),
    ],
)
def test_bad_snapshot_parameters_are_named(sample_tx, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        sk.snapshots(sample_tx, sk.RFMSegmenter(), **kwargs)


def test_a_date_before_any_order_is_named(sample_tx):
    with pytest.raises(ValueError, match=r"Snapshot at 2000-01-01.*No transaction"):
        sk.snapshots(sample_tx, "rfm", ["2000-01-01", "2017-06-01"])


def test_snapshots_need_transactions_and_an_engine(sample_tx):
    with pytest.raises(InvalidParameterError, match="validated Transactions"):
        sk.snapshots(pd.DataFrame(), "rfm", ["2017-06-01"])
    with pytest.raises(InvalidParameterError, match="Segmenter or a registered engine"):
        sk.snapshots(sample_tx, object(), ["2017-06-01"])


# --- migration -------------------------------------------------------------------------


def test_matrix_counts_moves_and_drift_by_hand():
    before = _segmentation(["a", "b", "c", "d"], [0, 0, 1, 2])
    after = _segmentation(["a", "b", "c", "e"], [0, 1, 1, 1])
    moved = sk.migration(before, after)
    assert moved.match == "name"
    assert moved.matrix.loc["A", "A"] == 1
    assert moved.matrix.loc["A", "B"] == 1
    assert moved.matrix.loc["B", "B"] == 1
    assert moved.matrix.loc["C", GONE] == 1
    assert moved.matrix.loc[NEW, "B"] == 1
    assert moved.shares.loc["A"].tolist() == [0.5, 0.5, 0.0]
    assert moved.counts() == {"stayed": 2, "moved": 1, "new": 1, "gone": 1}
    assert sorted(map(tuple, moved.moves.to_numpy().tolist())) == [
        ("b", "A", "B"),
        ("d", "C", GONE),
        ("e", NEW, "B"),
    ]
    drift = moved.drift.set_index("segment")
    assert drift.loc["B", "customers_before"] == 1
    assert drift.loc["B", "customers_after"] == 3
    assert drift.loc["B", "size_change"] == 2
    assert drift.loc["C", "customers_after"] == 0
    assert "1 moved, 1 new, 1 gone" in repr(moved)


def test_drift_reports_revenue_and_profile_shift(sample_tx):
    model = sk.RFMSegmenter().fit(sk.extract_features(sample_tx, as_of="2017-09-01"))
    june = model.predict(sk.extract_features(sample_tx, as_of="2017-06-01"))
    september = model.predict(sk.extract_features(sample_tx, as_of="2017-09-01"))
    moved = sk.migration(june, september)
    drift = moved.drift.set_index("segment")
    catalog = september.catalog.set_index("segment")
    assert drift.loc["Champions", "revenue_after"] == pytest.approx(
        catalog.loc["Champions", "revenue"]
    )
    assert drift["customers_after"].sum() == len(september)
    shift = moved.profile_shift
    assert {"recency_days", "frequency", "monetary"} <= set(shift["feature"])
    champions = shift[(shift["segment"] == "Champions") & (shift["feature"] == "monetary")]
    assert champions["median_after"].iloc[0] == pytest.approx(
        catalog.loc["Champions", "median_monetary"]
    )
    assert drift["largest_shift"].notna().any()
    # Every customer's recency and tenure grow with the date: that is no segment drift.
    clock = shift[shift["clock_driven"]]
    assert set(clock["feature"]) == {"recency_days", "tenure_days"}
    assert not drift["largest_shift"].isin(["recency_days", "tenure_days"]).any()


def test_clusters_are_matched_by_overlap_when_refitted():
    ids = [f"c{i}" for i in range(30)]
    labels = [i % 3 for i in range(30)]
    before = _segmentation(ids, labels, names=("Low", "Mid", "High"))
    # The refit numbered and named the same clusters otherwise; two customers moved.
    relabel = {0: 2, 1: 0, 2: 1}
    after_labels = [relabel[label] for label in labels]
    after_labels[0] = 1
    after_labels[1] = 1
    after = _segmentation(ids, after_labels, names=("X", "Y", "Z"))
    moved = sk.migration(before, after, match="overlap")
    assert moved.pairs == {"Low": "Z", "Mid": "X", "High": "Y"}
    matching = moved.matching.set_index("before")
    assert matching.loc["Low", "overlap"] == 9
    assert matching.loc["Mid", "jaccard"] == pytest.approx(9 / 10)
    assert sorted(moved.moves["customer_id"]) == ["c0", "c1"]


def test_auto_matching_follows_the_engines_tags(sample_tx):
    features = sk.extract_features(sample_tx)
    clusters = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit_predict(features)
    assert sk.migration(clusters, clusters).match == "overlap"
    rfm = sk.RFMSegmenter().fit_predict(features)
    assert sk.migration(rfm, rfm).match == "name"
    assert sk.migration(clusters, clusters).moves.empty


def test_centroid_matching_pairs_refitted_kmeans_clusters(sample_tx):
    made = sk.snapshots(
        sample_tx,
        sk.KMeansSegmenter(n_clusters=3, random_state=0),
        ["2017-10-01", "2017-12-31"],
        refit="each",
    )
    by_centroid = made.migration(match="centroid")
    by_overlap = made.migration()
    assert by_overlap.match == "overlap"
    assert len(by_centroid.matching) == 3
    assert (by_centroid.matching["distance"] >= 0).all()
    # Both matchings find the same clusters when the refit barely changed them.
    assert by_centroid.pairs == by_overlap.pairs


def test_centroid_matching_needs_features():
    before = _segmentation(["a"], [0])
    with pytest.raises(InvalidParameterError, match="match='overlap'"):
        sk.migration(before, before, match="centroid")


def test_migration_arguments_are_checked():
    before = _segmentation(["a"], [0])
    with pytest.raises(InvalidParameterError, match="'match' parameter"):
        sk.migration(before, before, match="closest")
    with pytest.raises(
        InvalidParameterError,
        match=r"'after' parameter of migration\(\) must be a Segmentation .*Got DataFrame object",
    ):
        sk.migration(before, pd.DataFrame())


def test_migration_tables_are_written(tmp_path):
    before = _segmentation(["a", "b"], [0, 1])
    after = _segmentation(["a", "c"], [1, 1])
    written = sk.migration(before, after).to_csv(tmp_path / "m")
    assert sorted(written) == ["changes", "drift", "matrix", "moves", "shares"]
    matrix = pd.read_csv(written["matrix"], index_col=0)
    assert matrix.loc["A", "B"] == 1
    changes = pd.read_csv(written["changes"], dtype=str)
    assert set(map(tuple, changes.to_numpy().tolist())) == {
        ("a", "B", "add"),
        ("c", "B", "add"),
        ("a", "A", "remove"),
        ("b", "B", "remove"),
    }


# --- changes to push ------------------------------------------------------------------

_ids = st.lists(st.sampled_from([f"u{i}" for i in range(40)]), unique=True, max_size=40)


def _labels(n):
    return st.lists(st.integers(0, 3), min_size=n, max_size=n)


@st.composite
def _two_runs(draw):
    before_ids = draw(_ids)
    after_ids = draw(_ids)
    before_labels = draw(
        st.lists(st.integers(0, 3), min_size=len(before_ids), max_size=len(before_ids))
    )
    after_labels = draw(
        st.lists(st.integers(0, 3), min_size=len(after_ids), max_size=len(after_ids))
    )
    return before_ids, before_labels, after_ids, after_labels


@settings(max_examples=150, deadline=None)
@given(_two_runs(), st.sampled_from(["name", "overlap"]), st.booleans())
def test_changes_applied_to_the_earlier_membership_give_the_later_one(runs, match, rename):
    before_ids, before_labels, after_ids, after_labels = runs
    before = _segmentation(before_ids, before_labels)
    after_names = ("W", "X", "Y", "Z") if rename else ("A", "B", "C", "D")
    after = _segmentation(after_ids, after_labels, names=after_names)
    moved = sk.migration(before, after, match=match)
    # Rows sum to the earlier snapshot, columns to the later one.
    assert int(moved.matrix.drop(index=NEW).to_numpy().sum()) == len(before_ids)
    assert int(moved.matrix.drop(columns=GONE).to_numpy().sum()) == len(after_ids)
    counts = moved.counts()
    assert counts["stayed"] + counts["moved"] + counts["gone"] == len(before_ids)
    assert counts["stayed"] + counts["moved"] + counts["new"] == len(after_ids)

    changes = moved.changes()
    updated = changes.apply(before)
    for segment in after.segments:
        assert set(updated[segment.name]) == set(after.members(segment.name))
    for key in set(changes.segments) - {s.name for s in after.segments}:
        assert len(updated[key]) == 0
    # Adds and removes never overlap, and each is what the difference says.
    for key in changes.segments:
        assert not set(changes.to_add(key)) & set(changes.to_remove(key))


def test_changes_feed_an_exporter(sample_tx):
    model = sk.RFMSegmenter().fit(sk.extract_features(sample_tx, as_of="2017-09-01"))
    june = model.predict(sk.extract_features(sample_tx, as_of="2017-06-01"))
    september = model.predict(sk.extract_features(sample_tx, as_of="2017-09-01"))
    changes = sk.migration(june, september).changes()
    joined = changes.to_add("Champions")
    left = changes.to_remove("Champions")
    assert len(joined) > 0
    assert len(left) > 0
    ids = september.assignments["customer_id"].astype(str)
    profiles = pd.DataFrame(
        {"id": ids, "email": [f"user{i}@example.com" for i in range(len(ids))], "ok": True}
    )
    customers = sk.Customers.from_frame(
        profiles, customer_id="id", email="email", consent_ads="ok"
    )
    adds = sk.exporters.build_meta(
        changes.additions("Champions"), "Champions", customers, audience_id=1
    )
    removes = sk.exporters.build_meta(
        changes.removals("Champions"), "Champions", customers, audience_id=1, operation="remove"
    )
    assert adds.report.members == adds.report.exported == len(joined)
    assert removes.report.members == removes.report.exported == len(left)
    summary = changes.summary()
    assert summary.loc["Champions"].tolist() == [len(joined), len(left)]
    with pytest.raises(UnknownSegmentError, match="No segment named 'VIP'"):
        changes.to_add("VIP")
