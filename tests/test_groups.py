"""assign_groups and GroupAssignment: determinism, exact shares, stability, files, errors."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit.errors import InvalidParameterError, UnknownSegmentError
from segmentkit.timeline._groups import ALL_CUSTOMERS, _buckets

ARMS = {"control": 0.1, "offer_a": 0.45, "offer_b": 0.45}


@pytest.fixture(scope="module")
def seg(sample_features: sk.CustomerFeatures) -> sk.Segmentation:
    return sk.RFMSegmenter().fit_predict(sample_features)


@pytest.fixture(scope="module")
def groups(seg: sk.Segmentation) -> sk.GroupAssignment:
    return sk.assign_groups(seg, arms=ARMS, salt="campaign-2026-11")


def _frame(ids, strata=None) -> pd.DataFrame:
    frame = pd.DataFrame({"customer_id": list(ids)})
    if strata is not None:
        frame["segment"] = list(strata)
        frame["segment_id"] = pd.factorize(frame["segment"])[0]
    return frame


def _arm_of(groups: sk.GroupAssignment) -> pd.Series:
    return groups.table.set_index("customer_id")["arm"]


# --- the sample -------------------------------------------------------------------------


def test_sample_assignment_covers_every_customer_once(seg, groups):
    table = groups.table
    assert list(table.columns) == [
        "customer_id",
        "segment_id",
        "segment",
        "stratum",
        "arm",
        "bucket",
    ]
    assert table["customer_id"].tolist() == seg.assignments["customer_id"].tolist()
    assert table["segment"].tolist() == seg.assignments["segment"].tolist()
    assert (table["stratum"] == table["segment"]).all()
    assert set(table["arm"]) == set(ARMS)
    assert table["bucket"].between(0, 1, inclusive="left").all()
    assert groups.arms == ARMS
    assert groups.salt == "campaign-2026-11"
    assert groups.stratify_by == "segment"
    assert len(groups) == len(seg)


def test_summary_is_within_one_customer_of_target(groups):
    summary = groups.summary()
    assert summary.index.names == ["stratum", "arm"]
    assert (summary["difference"].abs() <= 1).all()
    assert summary["customers"].sum() == len(groups)
    per_stratum = summary["customers"].groupby(level="stratum").sum()
    np.testing.assert_allclose(
        summary["target"].groupby(level="stratum").sum(), per_stratum, rtol=1e-12
    )
    assert summary.loc[("Champions", "control"), "target_share"] == 0.1


def test_summary_lists_arms_without_customers():
    groups = sk.assign_groups(
        _frame(["a"]), arms={"x": 0.5, "y": 0.5}, stratify_by=None, salt="test"
    )
    summary = groups.summary()
    assert summary["customers"].tolist() == [1, 0] or summary["customers"].tolist() == [0, 1]
    assert len(summary) == 2


def test_bucket_is_documented_sha256_prefix():
    customer, salt = "1001", "campaign-2026-11"
    digest = hashlib.sha256(f"{salt}\x1f{customer}".encode()).digest()
    expected = (int.from_bytes(digest[:8], "big") >> 11) / 2**53
    assert _buckets([customer], salt)[0] == expected


def test_repeated_calls_are_identical(seg, groups):
    again = sk.assign_groups(seg, arms=ARMS, salt="campaign-2026-11")
    pd.testing.assert_frame_equal(again.table, groups.table)


def test_input_order_does_not_matter(seg, groups):
    shuffled = seg.assignments.sample(frac=1, random_state=1)
    other = sk.assign_groups(shuffled, arms=ARMS, salt="campaign-2026-11")
    pd.testing.assert_series_equal(
        _arm_of(other).sort_index(), _arm_of(groups).sort_index(), check_exact=True
    )


def test_another_salt_gives_an_unrelated_split(seg, groups):
    other = sk.assign_groups(seg, arms=ARMS, salt="campaign-2026-12")
    agree = (_arm_of(other) == _arm_of(groups)).mean()
    # Independent splits agree on 0.1² + 2 × 0.45² = 41.5% of customers on average.
    assert 0.3 < agree < 0.55
    assert abs(np.corrcoef(other.table["bucket"], groups.table["bucket"])[0, 1]) < 0.1


def test_no_stratification_is_one_stratum(seg):
    groups = sk.assign_groups(seg, arms=ARMS, stratify_by=None, salt="test")
    assert set(groups.table["stratum"]) == {ALL_CUSTOMERS}
    counts = groups.table["arm"].value_counts()
    assert counts.to_dict() == {"offer_a": 360, "offer_b": 360, "control": 80}


def test_stratify_by_a_column(seg):
    groups = sk.assign_groups(seg, arms=ARMS, stratify_by="r_score", salt="test")
    assert set(groups.table["stratum"]) == set(seg.assignments["r_score"].astype(str))
    assert (groups.summary()["difference"].abs() <= 1).all()


def test_frame_without_segments(seg):
    groups = sk.assign_groups(_frame(["a", "b", "c"]), stratify_by=None, salt="test")
    assert groups.table["segment"].isna().all()
    assert groups.table["segment_id"].isna().all()


def test_integer_ids_become_text():
    groups = sk.assign_groups(_frame([1, 2, 3]), stratify_by=None, salt="test")
    assert groups.table["customer_id"].tolist() == ["1", "2", "3"]
    assert groups.table["bucket"].tolist() == _buckets(["1", "2", "3"], groups.salt).tolist()


def test_no_customers():
    groups = sk.assign_groups(_frame([]), stratify_by=None, salt="test")
    assert len(groups) == 0
    assert groups.summary().empty


def test_repr(groups):
    text = repr(groups)
    assert text.startswith("<GroupAssignment: 800 customers in 11 strata")
    assert "control 80 (10%)" in text


# --- properties -------------------------------------------------------------------------

_ids = st.lists(st.text(min_size=1, max_size=6), min_size=0, max_size=80, unique=True)
_weights = st.lists(st.integers(1, 9), min_size=2, max_size=4)


def _arms(weights: list[int]) -> dict[str, float]:
    total = sum(weights)
    return {f"arm{i}": w / total for i, w in enumerate(weights)}


@st.composite
def _population(draw):
    ids = draw(_ids)
    strata = draw(st.lists(st.sampled_from("xyz"), min_size=len(ids), max_size=len(ids)))
    return ids, strata


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(population=_population(), weights=_weights, salt=st.text(min_size=1, max_size=5))
def test_every_stratum_is_within_one_of_target(population, weights, salt):
    ids, strata = population
    arms = _arms(weights)
    groups = sk.assign_groups(_frame(ids, strata), arms=arms, salt=salt)
    for stratum, block in groups.table.groupby("stratum"):
        counts = block["arm"].value_counts()
        for arm, share in arms.items():
            assert abs(counts.get(arm, 0) - share * len(block)) <= 1 + 1e-9, stratum


@settings(max_examples=60, deadline=None)
@given(population=_population(), weights=_weights, seed=st.integers(0, 2**32 - 1))
def test_arms_do_not_depend_on_input_order(population, weights, seed):
    ids, strata = population
    frame = _frame(ids, strata)
    shuffled = frame.sample(frac=1, random_state=seed)
    one = sk.assign_groups(frame, arms=_arms(weights), salt="s")
    two = sk.assign_groups(shuffled, arms=_arms(weights), salt="s")
    assert _arm_of(one).sort_index().equals(_arm_of(two).sort_index())


@settings(max_examples=80, deadline=None)
@given(
    population=_population(),
    added=st.lists(st.text(min_size=7, max_size=9), max_size=10, unique=True),
    stratum=st.sampled_from("xyz"),
    weights=_weights,
)
def test_adding_customers_moves_at_most_arms_minus_one_each(population, added, stratum, weights):
    ids, strata = population
    arms = _arms(weights)
    before = sk.assign_groups(_frame(ids, strata), arms=arms, salt="s")
    # Added ids are longer than every existing one, so they are new customers.
    after = sk.assign_groups(
        _frame([*ids, *added], [*strata, *[stratum] * len(added)]), arms=arms, salt="s"
    )
    old, new = _arm_of(before), _arm_of(after)
    moved = int((new.loc[old.index] != old).sum())
    assert moved <= len(added) * (len(arms) - 1)
    # Other strata are untouched.
    elsewhere = before.table["stratum"].to_numpy() != stratum
    assert (new.loc[old.index[elsewhere]] == old[elsewhere]).all()


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=80, unique=True))
def test_removing_one_customer_moves_at_most_arms_minus_one(ids):
    before = sk.assign_groups(_frame(ids), arms=ARMS, salt="s", stratify_by=None)
    after = sk.assign_groups(_frame(ids[1:]), arms=ARMS, salt="s", stratify_by=None)
    old, new = _arm_of(before).loc[ids[1:]], _arm_of(after)
    assert int((new.loc[old.index] != old).sum()) <= len(ARMS) - 1


def test_adding_many_customers_moves_few(seg, groups):
    extra = _frame([f"new-{i}" for i in range(80)], ["Champions"] * 80)
    bigger = pd.concat([seg.assignments[["customer_id", "segment", "segment_id"]], extra])
    after = sk.assign_groups(bigger, arms=ARMS, salt="campaign-2026-11")
    old, new = _arm_of(groups), _arm_of(after)
    moved = int((new.loc[old.index] != old).sum())
    # The bound is 80 × 2; in practice a cut moves by about the share of new
    # customers ranked before it.
    assert moved <= 160
    assert moved < 40


@settings(max_examples=30, deadline=None)
@given(ids=st.lists(st.text(min_size=1, max_size=6), min_size=20, max_size=60, unique=True))
def test_same_customer_same_arm_and_salts_differ(ids):
    one = sk.assign_groups(_frame(ids), arms=ARMS, salt="a", stratify_by=None)
    two = sk.assign_groups(_frame(ids), arms=ARMS, salt="a", stratify_by=None)
    three = sk.assign_groups(_frame(ids), arms=ARMS, salt="b", stratify_by=None)
    assert one.table.equals(two.table)
    assert not np.array_equal(one.table["bucket"], three.table["bucket"])


# --- members ----------------------------------------------------------------------------


def test_members_partition_the_customers(groups):
    parts = [groups.members(arm) for arm in ARMS]
    assert sum(len(p) for p in parts) == len(groups)
    assert set().union(*map(set, parts)) == set(groups.table["customer_id"])
    assert parts[0].name == "customer_id"


def test_members_of_a_segment_by_name_and_id(seg, groups):
    champions = groups.members("control", segment="Champions")
    segment_id = int(seg.catalog.set_index("segment").loc["Champions", "segment_id"])
    assert list(groups.members("control", segment=segment_id)) == list(champions)
    assert len(champions) == 18
    assert set(champions) <= set(seg.members("Champions"))


def test_members_errors(groups):
    with pytest.raises(InvalidParameterError, match=r"No arm named 'treatment'\. Arms: "):
        groups.members("treatment")
    with pytest.raises(UnknownSegmentError, match="No customer is in segment 'VIPs'"):
        groups.members("control", segment="VIPs")
    with pytest.raises(UnknownSegmentError, match="segment 99"):
        groups.members("control", segment=99)


# --- files ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "parquet", "json"])
def test_files_round_trip(tmp_path, groups, suffix):
    path = getattr(groups, f"to_{suffix}")(tmp_path / f"groups.{suffix}")
    back = sk.GroupAssignment.read(path)
    pd.testing.assert_frame_equal(back.table, groups.table, check_exact=True)
    assert back.arms == groups.arms
    assert list(back.arms) == list(groups.arms)
    assert back.salt == groups.salt
    assert back.stratify_by == groups.stratify_by
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("suffix", ["csv", "parquet", "json"])
def test_awkward_ids_and_design_round_trip(tmp_path, suffix):
    ids = ["007", "NA", "", "1e3", "a,b", 'quote"d', "é"]
    groups = sk.assign_groups(
        _frame(ids), arms={"hold, out": 0.3, "go": 0.7}, salt="0123", stratify_by=None
    )
    path = getattr(groups, f"to_{suffix}")(tmp_path / f"groups.{suffix}")
    back = sk.GroupAssignment.read(path)
    assert back.table["customer_id"].tolist() == ids
    pd.testing.assert_frame_equal(back.table, groups.table, check_exact=True)
    assert (back.salt, back.arms, back.stratify_by) == ("0123", groups.arms, None)


def test_file_rows_carry_the_design(tmp_path, groups):
    frame = pd.read_csv(groups.to_csv(tmp_path / "g.csv"), dtype=str)
    assert set(frame["salt"]) == {"campaign-2026-11"}
    assert json.loads(frame["arms"].iloc[0]) == ARMS
    assert set(frame["stratify_by"]) == {"segment"}


def test_write_into_missing_folder(tmp_path, groups):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        groups.to_csv(tmp_path / "absent" / "g.csv")


def test_read_refuses_missing_columns(groups):
    with pytest.raises(ValueError, match=r"\['salt'\] missing"):
        sk.GroupAssignment.read(groups.to_frame().drop(columns="salt"))


def test_read_refuses_two_designs(groups):
    frame = groups.to_frame()
    frame.loc[0, "salt"] = "other"
    with pytest.raises(ValueError, match="2 different designs"):
        sk.GroupAssignment.read(frame)


def test_read_refuses_empty_file(groups):
    with pytest.raises(ValueError, match="no rows"):
        sk.GroupAssignment.read(groups.to_frame().iloc[:0])


def test_read_refuses_unknown_arm(groups):
    frame = groups.to_frame()
    frame.loc[0, "arm"] = "offer_c"
    with pytest.raises(ValueError, match=r"arms \['offer_c'\] that its design"):
        sk.GroupAssignment.read(frame)


def test_read_refuses_edited_buckets(groups):
    frame = groups.to_frame()
    frame.loc[[0, 1], "customer_id"] = frame.loc[[1, 0], "customer_id"].to_numpy()
    with pytest.raises(ValueError, match="2 bucket"):
        sk.GroupAssignment.read(frame)


def test_read_refuses_invalid_design(groups):
    frame = groups.to_frame().assign(arms=json.dumps({"control": 1.0}))
    with pytest.raises(InvalidParameterError, match="at least two arms"):
        sk.GroupAssignment.read(frame)


def test_read_refuses_arms_that_are_not_json(groups):
    with pytest.raises(ValueError, match="must hold the shares as a JSON object"):
        sk.GroupAssignment.read(groups.to_frame().assign(arms="control=0.1"))


def test_read_refuses_foreign_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="is not a group assignment"):
        sk.GroupAssignment.read(path)


# --- parameter errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ([("a", 0.5), ("b", 0.5)], "must be a mapping of arm name to share"),
        ({"a": 1.0}, "at least two arms"),
        ({}, "at least two arms"),
        ({"": 0.5, "b": 0.5}, "non-empty text name"),
        ({" ": 0.5, "b": 0.5}, "non-empty text name"),
        ({1: 0.5, "b": 0.5}, "non-empty text name"),
        ({"a": "0.5", "b": 0.5}, "share of arm 'a' must be a number"),
        ({"a": True, "b": 0.5}, "share of arm 'a' must be a number"),
        ({"a": 0.0, "b": 1.0}, "share of arm 'a' must be positive"),
        ({"a": -0.5, "b": 1.5}, "share of arm 'a' must be positive"),
        ({"a": math.nan, "b": 1.0}, "share of arm 'a' must be positive"),
        ({"a": 0.5, "b": 0.6}, "must sum to 1"),
        ({"a": 0.1, "b": 0.1}, "must sum to 1"),
    ],
)
def test_invalid_arms(seg, arms, message):
    with pytest.raises(InvalidParameterError, match=message):
        sk.assign_groups(seg, arms=arms, salt="test")


def test_shares_summing_to_one_within_rounding_are_accepted(seg):
    groups = sk.assign_groups(seg, arms={"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, salt="test")
    assert (groups.summary()["difference"].abs() <= 1).all()


@pytest.mark.parametrize("salt", ["", None, 7, b"bytes"])
def test_invalid_salt(seg, salt):
    with pytest.raises(
        InvalidParameterError,
        match="'salt' parameter of assign_groups\\(\\) must be a non-empty str",
    ):
        sk.assign_groups(seg, salt=salt)


def test_invalid_stratify_by(seg):
    with pytest.raises(
        InvalidParameterError,
        match=r"'stratify_by' parameter .* must be 'segment', a column name \(str\) or "
        r"None\. Got 3 ",
    ):
        sk.assign_groups(seg, stratify_by=3, salt="test")
    with pytest.raises(InvalidParameterError, match="Cannot stratify by 'country'"):
        sk.assign_groups(seg, stratify_by="country", salt="test")
    with pytest.raises(InvalidParameterError, match="Cannot stratify by 'segment'"):
        sk.assign_groups(_frame(["a", "b"]), salt="test")


def test_missing_stratum_values():
    frame = _frame(["a", "b"]).assign(country=["DE", None])
    with pytest.raises(ValueError, match=r"1 customer\(s\) have no 'country'"):
        sk.assign_groups(frame, stratify_by="country", salt="test")


def test_invalid_input_type():
    with pytest.raises(
        InvalidParameterError, match=r"'segmentation' parameter .* Got \['a', 'b'\] instead"
    ):
        sk.assign_groups(["a", "b"], salt="test")
    with pytest.raises(InvalidParameterError, match="needs a 'customer_id' column"):
        sk.assign_groups(pd.DataFrame({"id": ["a"]}), salt="test")


def test_duplicate_and_missing_ids():
    with pytest.raises(ValueError, match=r"1 customer id\(s\) appear more than once.*\['a'\]"):
        sk.assign_groups(_frame(["a", "b", "a"]), stratify_by=None, salt="test")
    with pytest.raises(ValueError, match=r"1 customer id\(s\) are missing"):
        sk.assign_groups(_frame(["a", None]), stratify_by=None, salt="test")


def test_summary_lists_segments_in_id_order(seg, groups):
    strata = pd.unique(groups.summary().index.get_level_values("stratum")).tolist()
    present = seg.catalog[seg.catalog["customers"] > 0].sort_values("segment_id")
    assert strata == present["segment"].tolist()


def test_summary_of_a_column_sorts_strata(seg):
    groups = sk.assign_groups(seg, stratify_by="r_score", salt="test")
    strata = pd.unique(groups.summary().index.get_level_values("stratum")).tolist()
    assert strata == sorted(strata)


def test_hash_ties_are_broken_by_id(monkeypatch):
    from segmentkit.timeline import _groups

    monkeypatch.setattr(
        _groups, "_hash_keys", lambda ids, salt: np.zeros(len(ids), dtype=np.uint64)
    )
    ids = ["d", "b", "a", "c"]
    one = sk.assign_groups(_frame(ids), arms={"x": 0.5, "y": 0.5}, stratify_by=None, salt="test")
    two = sk.assign_groups(
        _frame(ids[::-1]), arms={"x": 0.5, "y": 0.5}, stratify_by=None, salt="test"
    )
    assert _arm_of(one).to_dict() == {"d": "y", "b": "x", "a": "x", "c": "y"}
    assert _arm_of(two).to_dict() == _arm_of(one).to_dict()
