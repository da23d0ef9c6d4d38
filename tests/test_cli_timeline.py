"""The commands for segments over time: snapshot, migrate, groups, report."""

from __future__ import annotations

import pandas as pd
import pytest

import segmentkit as sk
from segmentkit.cli import main


@pytest.fixture(scope="module")
def sample_csv(tmp_path_factory):
    raw, mapping = sk.datasets.load_sample()
    path = tmp_path_factory.mktemp("orders") / "orders.csv"
    raw.to_csv(path, index=False)
    return path, [f"{key}={column}" for key, column in mapping.items()]


@pytest.fixture(scope="module")
def snapshot_dir(sample_csv, tmp_path_factory):
    path, mapping = sample_csv
    out = tmp_path_factory.mktemp("snaps")
    argv = ["-q", "snapshot", str(path), "--map", *mapping]
    argv += ["--monthly", "2017-10-01", "2017-12-01", "--out", str(out)]
    assert main(argv) == 0
    return out


def test_snapshot_writes_one_file_per_month(snapshot_dir, sample_csv):
    names = sorted(p.name for p in snapshot_dir.iterdir())
    assert names == [
        "segments-2017-10-01.csv",
        "segments-2017-11-01.csv",
        "segments-2017-12-01.csv",
        "sizes.csv",
    ]
    # The file equals the library's snapshot at that date.
    raw, mapping = sk.datasets.load_sample()
    tx = sk.Transactions.from_frame(raw, **mapping)
    made = sk.snapshots(tx, "rfm", ["2017-10-01", "2017-11-01"])
    written = pd.read_csv(snapshot_dir / "segments-2017-11-01.csv", dtype={"customer_id": str})
    expected = made[1].assignments
    assert written["customer_id"].tolist() == expected["customer_id"].tolist()
    assert written["segment"].tolist() == expected["segment"].tolist()


def test_snapshot_prints_sizes_and_the_last_migration(sample_csv, tmp_path, capsys):
    path, mapping = sample_csv
    argv = ["-q", "snapshot", str(path), "--map", *mapping, "--as-of", "2017-11-01"]
    argv += ["2017-12-01", "--refit", "each", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "refit=each" in out
    assert "2017-12-01" in out
    assert "last step: Migration(2017-11-01 → 2017-12-01" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--monthly", "2017-10-02", "2017-10-30"], "no first of a month"),
        (["--as-of", "2017-10-01", "--refit", "none"], "give it with --model"),
    ],
)
def test_snapshot_usage_errors(sample_csv, tmp_path, capsys, extra, message):
    path, mapping = sample_csv
    argv = ["snapshot", str(path), "--map", *mapping, *extra, "--out", str(tmp_path)]
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_snapshot_with_a_saved_model(sample_csv, tmp_path, capsys):
    path, mapping = sample_csv
    model = tmp_path / "rfm.json"
    assert main(["-q", "segment", str(path), "--map", *mapping, "--save-model", str(model)]) == 0
    argv = ["-q", "snapshot", str(path), "--map", *mapping, "--as-of", "2017-12-01"]
    assert main([*argv, "--model", str(model), "--out", str(tmp_path / "a")]) == 1
    assert "--refit none" in capsys.readouterr().err
    argv += ["--model", str(model), "--refit", "none", "--out", str(tmp_path / "b")]
    assert main(argv) == 0


def test_migrate_prints_the_matrix_and_writes_the_tables(snapshot_dir, tmp_path, capsys):
    before = snapshot_dir / "segments-2017-11-01.csv"
    after = snapshot_dir / "segments-2017-12-01.csv"
    assert main(["migrate", str(before), str(after), "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "transition matrix" in out
    assert "changes to push per segment" in out
    matrix = pd.read_csv(tmp_path / "m" / "matrix.csv", index_col=0)
    assert matrix.drop(index="(new)").to_numpy().sum() == len(pd.read_csv(before))
    changes = pd.read_csv(tmp_path / "m" / "changes.csv", dtype=str)
    assert set(changes["action"]) <= {"add", "remove"}


def test_migrate_missing_file_is_named(tmp_path, capsys):
    assert main(["migrate", str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]) == 1
    assert "File not found" in capsys.readouterr().err
