"""Segmentation: catalog figures, summary, members, and atomic exports."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import segmentkit as sk
from segmentkit._common import _files as _io


@pytest.fixture(scope="module")
def segmentation(sample_features) -> sk.Segmentation:
    return sk.RFMSegmenter().fit_predict(sample_features)


def test_catalog_figures_add_up(segmentation, sample_features):
    catalog = segmentation.catalog
    assert catalog["customers"].sum() == len(sample_features)
    assert catalog["share"].sum() == pytest.approx(1.0)
    assert catalog["revenue"].sum() == pytest.approx(sample_features.frame["monetary"].sum())
    assert catalog["revenue_share"].sum() == pytest.approx(1.0)
    champions = segmentation.members("Champions")
    expected = sample_features.frame.loc[champions, "monetary"].median()
    assert catalog.set_index("segment").loc["Champions", "median_monetary"] == expected


def test_every_customer_in_exactly_one_segment(segmentation, sample_features):
    assignments = segmentation.assignments
    assert assignments["customer_id"].is_unique
    assert set(assignments["customer_id"]) == set(sample_features.customer_ids)
    assert assignments["segment"].notna().all()


def test_summary_is_in_value_order_numbers_first_indexed_by_name(segmentation):
    summary = segmentation.summary()
    assert summary["revenue"].is_monotonic_decreasing
    assert summary.index.name == "segment"
    assert list(summary.columns[:4]) == ["customers", "share", "revenue", "revenue_share"]
    assert summary.columns[-1] == "description"
    # Money to the cent; the catalog keeps the same order, with ids.
    assert (summary["revenue"] == summary["revenue"].round(2)).all()
    assert list(segmentation.catalog["segment"]) == list(summary.index)
    by_size = segmentation.summary(order_by="customers")
    assert by_size["customers"].is_monotonic_decreasing
    by_id = segmentation.summary(order_by="id")
    ids = {s.name: s.id for s in segmentation.segments}
    assert [ids[name] for name in by_id.index] == sorted(ids.values())
    with pytest.raises(ValueError, match="order_by"):
        segmentation.summary(order_by="size")


def test_segments_without_revenue_figures_go_by_size(sample_features):
    frame = sample_features.frame.drop(columns=["monetary"])
    features = sk.CustomerFeatures.from_frame(frame, as_of=sample_features.as_of)
    rules = {"Frequent": "frequency >= 20", "Recent": "recency_days <= 30"}
    summary = sk.RuleSegmenter(rules=rules, default="Other").fit_predict(features).summary()
    assert summary["revenue"].isna().all()
    assert summary["customers"].is_monotonic_decreasing


def test_catalog_csv_rounds_money_to_the_cent(segmentation, tmp_path):
    written = pd.read_csv(segmentation.to_csv(tmp_path / "c.csv", table="catalog"), dtype=str)
    for column in ("revenue", "median_monetary"):
        decimals = written[column].str.partition(".")[2].str.len()
        assert decimals.max() <= 2, written[column]
    assert not (segmentation.catalog["revenue"] == segmentation.catalog["revenue"].round(2)).all()


def test_members_by_name_or_id_and_unknown_names(segmentation):
    by_name = segmentation.members("Champions")
    champions_id = next(s.id for s in segmentation.segments if s.name == "Champions")
    assert list(by_name) == list(segmentation.members(champions_id))
    with pytest.raises(KeyError, match="No segment named 'Champs'"):
        segmentation.members("Champs")


def test_repr_and_html(segmentation):
    text = repr(segmentation)
    assert text.startswith("<Segmentation by rfm: 800 customers in")
    assert "Champions" in text
    html = segmentation._repr_html_()
    assert "<table" in html
    assert "&lt;Segmentation" in html


@pytest.mark.parametrize("table", ["assignments", "catalog"])
def test_csv_round_trip(segmentation, tmp_path, table):
    path = segmentation.to_csv(tmp_path / "out.csv", table=table)
    back = pd.read_csv(path, dtype={"customer_id": str, "rfm_score": str})
    expected = segmentation.assignments if table == "assignments" else segmentation.catalog
    assert back.shape == (expected.shape[0], expected.shape[1] + 1)
    assert list(back.columns) == [*expected.columns, "as_of"]
    assert (back["as_of"] == segmentation.as_of.isoformat()).all()


def test_parquet_and_json(segmentation, tmp_path):
    back = pd.read_parquet(segmentation.to_parquet(tmp_path / "a.parquet"))
    pd.testing.assert_frame_equal(
        back.drop(columns="as_of"), segmentation.assignments, check_dtype=False
    )
    document = json.loads(segmentation.to_json(tmp_path / "a.json").read_text())
    assert document["engine"] == "rfm"
    assert len(document["assignments"]) == len(segmentation)
    assert {s["segment"] for s in document["segments"]} >= {"Champions", "Lost"}
    records = json.loads(segmentation.to_json(tmp_path / "c.json", table="catalog").read_text())
    assert len(records) == len(segmentation.segments)


def test_interrupted_write_leaves_the_old_file_and_no_temporary(
    segmentation, tmp_path, monkeypatch
):
    target = tmp_path / "segments.csv"
    target.write_text("previous content\n")

    def half_then_crash(self, path, **kwargs):
        with open(path, "w") as stream:
            stream.write("customer_id,seg")  # half a file...
        raise KeyboardInterrupt  # ...then the process is interrupted

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        segmentation.to_csv(target)
    assert target.read_text() == "previous content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["segments.csv"]


def test_write_into_a_missing_folder_is_a_clear_error(segmentation, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the folder .* does not exist"):
        segmentation.to_csv(tmp_path / "nope" / "out.csv")


def test_write_atomic_replaces_only_when_complete(tmp_path):
    target = tmp_path / "f.txt"
    _io.write_atomic(target, lambda p: p.write_text("new"))
    assert target.read_text() == "new"


def test_unknown_table_name(segmentation, tmp_path):
    with pytest.raises(
        ValueError,
        match=r"'table' parameter of Segmentation\.to_csv\(\) must be one of "
        r"\['assignments', 'catalog'\]",
    ):
        segmentation.to_csv(tmp_path / "x.csv", table="segments")


def test_files_get_the_usual_permissions(segmentation, tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = segmentation.to_csv(tmp_path / "out.csv")
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_csv_sums_are_printed_without_float_noise(segmentation, tmp_path):
    text = segmentation.to_csv(tmp_path / "c.csv", table="catalog").read_text()
    assert "99999" not in text
    assert "00000001" not in text


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_segmentation_reads_back_from_an_assignments_file(segmentation, tmp_path, suffix):
    path = tmp_path / f"segments{suffix}"
    {
        ".csv": segmentation.to_csv,
        ".parquet": segmentation.to_parquet,
        ".json": segmentation.to_json,
    }[suffix](path)
    back = sk.Segmentation.from_assignments(path)
    assert back.as_of == segmentation.as_of
    assert list(back.members("Champions")) == list(segmentation.members("Champions"))
    present = segmentation.catalog[segmentation.catalog["customers"] > 0]
    assert back.catalog.set_index("segment")["customers"].to_dict() == dict(
        zip(present["segment"], present["customers"], strict=True)
    )


def test_from_assignments_names_missing_columns():
    with pytest.raises(ValueError, match=r"\['segment_id'\] missing"):
        sk.Segmentation.from_assignments(pd.DataFrame({"customer_id": ["a"], "segment": ["x"]}))
