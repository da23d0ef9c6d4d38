"""Every CSV file segmentkit writes is safe to open in a spreadsheet and reads back exactly."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit._common._csv import DANGEROUS, neutralise_frame, restore_text
from segmentkit.timeline._snapshots import Snapshots

# Formula starters, the apostrophe prefix itself, CSV syntax and a little unicode.
_ALPHABET = st.sampled_from(list("=+-@\t\r\n'\",; aZ0.é€ß😀"))
_HOSTILE = st.text(_ALPHABET, min_size=1, max_size=6)
# Arm names and salts must hold a visible character.
_NAMED = _HOSTILE.filter(lambda text: text.strip() != "")
_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _cells(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as stream:
        return [cell for row in csv.reader(stream) for cell in row]


# A number such as -2 or -1.5e-3 is data to a spreadsheet, not a formula.
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?")


def _assert_safe(path: Path) -> None:
    unsafe = [
        cell for cell in _cells(path) if cell.startswith(DANGEROUS) and not _NUMBER.fullmatch(cell)
    ]
    assert not unsafe, f"{path.name} has cells a spreadsheet would run: {unsafe[:5]}"


def _segmentation(ids: list[str], names: list[str], as_of: str = "2024-01-01") -> sk.Segmentation:
    segment_ids = np.arange(len(ids)) % len(names)
    table = pd.DataFrame(
        {
            "customer_id": ids,
            "segment_id": segment_ids,
            "segment": [names[i] for i in segment_ids],
            "as_of": as_of,
        }
    )
    return sk.Segmentation.from_assignments(table)


_IDS = st.lists(_HOSTILE, min_size=2, max_size=8, unique=True)
_NAMES = st.lists(_HOSTILE, min_size=1, max_size=3, unique=True)


@_SETTINGS
@given(ids=_IDS, names=_NAMES)
@example(ids=["=1+2", "-3", "@SUM(A1)", "+x", "\tx", "\rx", "'=x", "''"], names=["'", "-"])
@example(ids=["'abc", "NA", "nan", "a,b", 'a"b', "a\nb", "é€"], names=["=HYPERLINK()"])
def test_assignments_and_catalog_csv_are_safe_and_read_back(tmp_path, ids, names):
    segmentation = _segmentation(ids, names)
    path = segmentation.to_csv(tmp_path / "segments.csv")
    _assert_safe(path)
    back = sk.Segmentation.from_assignments(path)
    assert back.assignments["customer_id"].tolist() == ids
    assert back.assignments["segment"].tolist() == segmentation.assignments["segment"].tolist()
    assert [s.name for s in back.segments] == [s.name for s in segmentation.segments]

    catalog = segmentation.to_csv(tmp_path / "catalog.csv", table="catalog")
    _assert_safe(catalog)
    read = pd.read_csv(catalog, dtype={"segment": str}, keep_default_na=False)
    assert restore_text(read["segment"]).tolist() == segmentation.catalog["segment"].tolist()


@_SETTINGS
@given(ids=_IDS, names=_NAMES, salt=_NAMED, arm=_NAMED.filter(lambda a: a != "other"))
@example(ids=["=a", "-1"], names=["+b"], salt="-salt", arm="=arm")
def test_group_files_are_safe_and_read_back(tmp_path, ids, names, salt, arm):
    segmentation = _segmentation(ids, names)
    groups = sk.assign_groups(segmentation, arms={arm: 0.5, "other": 0.5}, salt=salt)
    path = groups.to_csv(tmp_path / "groups.csv")
    _assert_safe(path)
    back = sk.GroupAssignment.read(path)
    pd.testing.assert_frame_equal(back.table, groups.table)
    assert back.salt == salt
    assert back.arms == groups.arms


@_SETTINGS
@given(ids=_IDS, before=_NAMES, after=_NAMES)
@example(ids=["=a", "-b", "@c"], before=["=x", "'-y"], after=["+z"])
def test_migration_files_are_safe(tmp_path, ids, before, after):
    earlier = _segmentation(ids, before, "2024-01-01")
    later = _segmentation(ids[::-1], after, "2024-02-01")
    moved = sk.migration(earlier, later, match="name")
    written = moved.to_csv(tmp_path / "migration")
    for path in written.values():
        _assert_safe(Path(str(path)))
    changes = pd.read_csv(written["changes"], dtype=str, keep_default_na=False)
    for column in ("customer_id", "segment"):
        assert restore_text(changes[column]).tolist() == moved.changes().table[column].tolist()
    matrix = pd.read_csv(written["matrix"], dtype={"from_segment": str}, keep_default_na=False)
    assert set(restore_text(matrix["from_segment"])) == set(moved.matrix.index)
    assert set(restore_text(pd.Series(matrix.columns[1:]))) == set(moved.matrix.columns)


@_SETTINGS
@given(ids=_IDS, names=_NAMES)
def test_snapshot_folders_are_safe_and_read_back(tmp_path, ids, names):
    items = [_segmentation(ids, names, "2024-01-01"), _segmentation(ids, names, "2024-02-01")]
    made = Snapshots(items, [None, None], "first")
    folder = made.to_dir(tmp_path / "snapshots")
    for path in folder.glob("*.csv"):
        _assert_safe(path)
    back = sk.Segmentation.from_assignments(folder / "segments-2024-02-01.csv")
    assert back.assignments["customer_id"].tolist() == ids
    sizes = pd.read_csv(folder / "sizes.csv", index_col=0)
    assert restore_text(pd.Series(sizes.columns)).tolist() == list(made.sizes().columns)


def test_numbers_are_never_prefixed():
    frame = pd.DataFrame(
        {"n": [-1, 2], "x": [-0.5, np.nan], "mixed": [-3, "-3"], "id": ["-3", None]},
        index=pd.Index([-1, 1], name="i"),
    )
    safe = neutralise_frame(frame)
    assert safe["n"].tolist() == [-1, 2]
    assert safe["x"].iloc[0] == -0.5
    assert safe.index.tolist() == [-1, 1]
    # Text is text even when it looks like a number; numbers in a text column stay numbers.
    assert safe["mixed"].tolist() == [-3, "'-3"]
    assert safe["id"].iloc[0] == "'-3"
    assert pd.isna(safe["id"].iloc[1])


def test_categorical_columns_and_headers_are_neutralised():
    frame = pd.DataFrame({"=sum": pd.Categorical(["-a", "b", "-a"])})
    safe = neutralise_frame(frame)
    assert list(safe.columns) == ["'=sum"]
    assert safe["'=sum"].astype(str).tolist() == ["'-a", "b", "'-a"]


def test_parquet_and_json_keep_ids_as_they_are(tmp_path):
    segmentation = _segmentation(["=1+2", "-3"], ["@name"])
    document = json.loads(segmentation.to_json(tmp_path / "s.json").read_text(encoding="utf-8"))
    assert [r["customer_id"] for r in document["assignments"]] == ["=1+2", "-3"]
    pytest.importorskip("pyarrow")
    frame = pd.read_parquet(segmentation.to_parquet(tmp_path / "s.parquet"))
    assert frame["customer_id"].tolist() == ["=1+2", "-3"]
    assert frame["segment"].tolist() == ["@name", "@name"]


def test_cli_migrate_and_groups_read_the_prefixed_files_back(tmp_path, capsys):
    from segmentkit.cli import main

    ids = ["=cmd|' /C calc'!A0", "-1", "+2", "@x", "'=y", "plain"]
    before = _segmentation(ids, ["=bad", "ok"], "2024-01-01").to_csv(tmp_path / "before.csv")
    after = _segmentation(ids, ["ok", "=bad"], "2024-02-01").to_csv(tmp_path / "after.csv")
    assert main(["migrate", str(before), str(after), "--out", str(tmp_path / "moves")]) == 0
    for path in (tmp_path / "moves").glob("*.csv"):
        _assert_safe(path)
    out = tmp_path / "groups.csv"
    assert (
        main(["groups", str(after), "--arm", "a=0.5", "b=0.5", "--salt=-s", "--out", str(out)])
        == 0
    )
    _assert_safe(out)
    back = sk.GroupAssignment.read(out)
    assert sorted(back.table["customer_id"]) == sorted(ids)
    assert back.salt == "-s"
    capsys.readouterr()
