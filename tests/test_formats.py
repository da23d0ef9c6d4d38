"""Real-world file formats: European exports, date conventions, separators, encodings."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit.cli import main
from segmentkit.errors import ContractError, InvalidParameterError

AS_OF = "2018-01-01"

#: Product groups renamed as a Nordic or Polish store names them.
NORDIC = {"GROCERY": "Kävelykengät", "DRUG GM": "Smörgåsbord", "PRODUCE": "Åkerbär"}
POLISH = {"GROCERY": "Łódź – pierogi", "DRUG GM": "Źródło", "PRODUCE": "Żółć"}


def _export(names: dict[str, str]) -> pd.DataFrame:
    """The bundled sample as a store would export it: minute timestamps, named groups."""
    raw, _ = sk.datasets.load_sample()
    return pd.DataFrame(
        {
            "Customer": raw["household_id"],
            "Order": raw["basket_id"],
            "Product": raw["product_id"],
            "Group": raw["department"].replace(names),
            "Quantity": raw["quantity"],
            "Price": raw["sales_value"],
            # dd.mm.yyyy HH:MM holds minutes: both files hold the same instants.
            "Date": raw["transaction_timestamp"].dt.floor("min"),
        }
    )


MAPPING = {
    "customer_id": "Customer",
    "order_id": "Order",
    "product_id": "Product",
    "category": "Group",
    "quantity": "Quantity",
    "amount": "Price",
    "timestamp": "Date",
}
CLI_MAP = [f"{key}={value}" for key, value in MAPPING.items()]
EUROPEAN = ["--sep", ";", "--decimal", ",", "--date-format", "%d.%m.%Y %H:%M"]


def _write_pair(folder: Path, names: dict[str, str], encoding: str) -> tuple[Path, Path]:
    export = _export(names)
    plain = folder / "plain.csv"
    export.to_csv(plain, index=False)
    european = folder / "european.csv"
    export.assign(Date=export["Date"].dt.strftime("%d.%m.%Y %H:%M")).to_csv(
        european, index=False, sep=";", decimal=",", encoding=encoding
    )
    return plain, european


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("names", "encoding"), [(NORDIC, "cp1252"), (POLISH, "cp1250")], ids=["fi-se", "pl"]
)
def test_a_european_export_gives_the_features_of_the_plain_csv(tmp_path, names, encoding):
    plain, european = _write_pair(tmp_path, names, encoding)
    assert ";" in european.read_bytes().decode(encoding).splitlines()[1]
    assert names["GROCERY"].encode(encoding) in european.read_bytes()
    expected = sk.extract_features(sk.Transactions.from_csv(plain, **MAPPING), as_of=AS_OF)
    tx = sk.Transactions.from_csv(
        european,
        read_options={"sep": ";", "decimal": ",", "encoding": encoding},
        date_format="%d.%m.%Y %H:%M",
        **MAPPING,
    )
    got = sk.extract_features(tx, as_of=AS_OF)
    pd.testing.assert_frame_equal(got.frame, expected.frame)
    assert names["GROCERY"] in set(got.frame["top_category"])

    # The command line, with the options and with a config file: the same assignments.
    outputs = {}
    for label, extra in {
        "plain": [str(plain)],
        "options": [str(european), *EUROPEAN, "--encoding", encoding],
    }.items():
        out = tmp_path / f"{label}.csv"
        code, _, err = _cli(
            "-q", "segment", *extra, "--map", *CLI_MAP, "--as-of", AS_OF, "--out", str(out)
        )
        assert code == 0, err
        outputs[label] = pd.read_csv(out, dtype=str)
    config = tmp_path / "store.toml"
    config.write_text(
        f"""
[transactions]
date_format = "%d.%m.%Y %H:%M"
map = {{ {", ".join(f'{k} = "{v}"' for k, v in MAPPING.items())} }}

[transactions.read_options]
sep = ";"
decimal = ","
encoding = "{encoding}"
""",
        encoding="utf-8",
    )
    out = tmp_path / "config.csv"
    code, _, err = _cli(
        "-q",
        "segment",
        str(european),
        "--config",
        str(config),
        "--as-of",
        AS_OF,
        "--out",
        str(out),
    )
    assert code == 0, err
    outputs["config"] = pd.read_csv(out, dtype=str)
    pd.testing.assert_frame_equal(outputs["options"], outputs["plain"])
    pd.testing.assert_frame_equal(outputs["config"], outputs["plain"])


def test_the_separator_is_detected_and_said(tmp_path):
    _, european = _write_pair(tmp_path, NORDIC, "cp1252")
    tx = sk.Transactions.from_csv(
        european,
        read_options={"decimal": ",", "encoding": "cp1252"},
        dayfirst=True,
        **MAPPING,
    )
    assert "file european.csv: separator ';' detected" in str(tx.report)
    code, out, err = _cli("-q", "validate", str(european), "--decimal", ",", "--encoding",
                          "cp1252", "--dayfirst", "--map", *CLI_MAP)  # fmt: skip
    assert code == 0, err
    assert "separator ';' detected" in out


@pytest.mark.parametrize("sep", ["\t", "|", ";", ","])
def test_every_common_separator_is_detected(tmp_path, sep):
    path = tmp_path / "orders.txt"
    pd.DataFrame(
        {"customer_id": ["a", "b"], "timestamp": ["2024-01-01", "2024-01-02"], "amount": [1.5, 2]}
    ).to_csv(path, sep=sep, index=False)
    tx = sk.Transactions.from_csv(path)
    assert tx.data["amount"].tolist() == [1.5, 2.0]
    said = "separator" in str(tx.report)
    assert said == (sep != ",")


def test_thousands_separators_and_tab_on_the_command_line(tmp_path):
    path = tmp_path / "orders.tsv"
    path.write_text("id\twhen\ttotal\na\t2024-01-01\t1.234,50\nb\t2024-01-02\t12,00\n")
    code, _, err = _cli("-q", "validate", str(path), "--sep", "\\t", "--decimal", ",",
                          "--thousands", ".", "--map", "customer_id=id", "timestamp=when",
                          "amount=total")  # fmt: skip
    assert code == 0, err
    tx = sk.Transactions.from_csv(
        path,
        read_options={"sep": "\t", "decimal": ",", "thousands": "."},
        customer_id="id",
        timestamp="when",
        amount="total",
    )
    assert tx.data["amount"].tolist() == [1234.5, 12.0]


# --- one convention per column -------------------------------------------------------


def _tx(dates: list, **options: object) -> sk.Transactions:
    frame = pd.DataFrame(
        {"customer_id": [f"c{i}" for i in range(len(dates))], "when": dates, "amount": 1.0}
    )
    # Generated dates reach past today: keep them, the reading is what is tested here.
    options.setdefault("future", "keep")
    return sk.Transactions.from_frame(frame, timestamp="when", **options)


def test_the_data_settles_the_order_and_the_report_says_so():
    tx = _tx(["01.02.2024 10:00", "13.02.2024 14:05", "03.04.2024 08:00"])
    assert tx.data["timestamp"].dt.strftime("%Y-%m-%d %H:%M").tolist() == [
        "2024-02-01 10:00",
        "2024-02-13 14:05",
        "2024-04-03 08:00",
    ]
    note = " ".join(tx.report.notes)
    assert "day first" in note
    assert "'13.02.2024 14:05' (row 1)" in note
    us = _tx(["12/1/2010 8:26", "12/13/2010 3:05 PM"])
    assert us.data["timestamp"].dt.strftime("%Y-%m-%d %H:%M").tolist() == [
        "2010-12-01 08:26",
        "2010-12-13 15:05",
    ]
    assert "month first" in str(us.report)


def test_an_ambiguous_column_is_refused_with_column_rows_and_options():
    with pytest.raises(ContractError, match="both day first and month first") as caught:
        _tx(["01/02/2024", "03/04/2024", "05/06/2024"])
    message = str(caught.value)
    for words in ["'timestamp'", "row 0: '01/02/2024'", "row 1: '03/04/2024'", "dayfirst=True",
                  "date_format='%d/%m/%Y'", "--dayfirst", "--date-format"]:  # fmt: skip
        assert words in message
    assert caught.value.failures["check"].tolist()[0] == "date_convention"
    assert _tx(["01/02/2024", "03/04/2024"], dayfirst=False).data[
        "timestamp"
    ].dt.month.tolist() == [
        1,
        3,
    ]


def test_a_mixed_column_is_refused():
    with pytest.raises(ContractError, match="mixes date formats") as caught:
        _tx(["2024-01-02", "2024-01-03", "02.01.2024"])
    assert "row 0: '2024-01-02', row 2: '02.01.2024'" in str(caught.value)
    with pytest.raises(ContractError, match="mixes date formats"):
        _tx(["13.01.2024", "14/01/2024"])
    with pytest.raises(ContractError, match="mixes date conventions"):
        _tx(["13/02/2024", "02/13/2024"])


def test_ambiguous_and_mixed_are_refused_on_the_command_line(tmp_path):
    for dates, words in [
        (["01.02.2024", "03.04.2024"], "both day first and month first"),
        (["2024-01-02", "02.01.2024"], "mixes date formats"),
    ]:
        path = tmp_path / "orders.csv"
        pd.DataFrame({"id": ["a", "b"], "day": dates, "total": [1, 2]}).to_csv(path, index=False)
        code, _, err = _cli("validate", str(path), "--map", "customer_id=id", "timestamp=day",
                            "amount=total")  # fmt: skip
        assert code == 1
        for expected in (words, "'timestamp'", "--date-format"):
            assert expected in err
        assert "Traceback" not in err


def test_iso_text_keeps_the_fast_path_and_needs_no_option():
    tx = _tx(["2024-01-02", "2024-01-03 10:00", "2024-01-04T11:00:00+02:00"])
    assert tx.report.notes == ()
    assert str(tx.data["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_epoch_seconds_and_milliseconds():
    seconds = _tx([1_704_067_200, 1_704_067_260.5], date_format="epoch")
    assert seconds.data["timestamp"].tolist() == [
        pd.Timestamp("2024-01-01 00:00:00", tz="UTC"),
        pd.Timestamp("2024-01-01 00:01:00.5", tz="UTC"),
    ]
    millis = _tx(["1704067200000"], date_format="epoch_ms")
    assert millis.data["timestamp"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")
    with pytest.raises(ContractError, match=re.escape("date_format='epoch'")):
        _tx([1_704_067_200, 1_704_067_260])


@pytest.mark.parametrize("value", ["9999-12-31", "1200-01-01", "31.12.9999"])
def test_dates_outside_the_range_are_named(value):
    other = "13.01.2024" if "." in value else "2024-01-01"
    with pytest.raises(ContractError, match="outside the range") as caught:
        _tx([value, other])
    assert f"row 0: '{value}'" in str(caught.value)


@pytest.mark.parametrize("as_of", ["9999-12-31", "garbage", "1200-01-01"])
def test_as_of_out_of_range_or_garbage(sample_tx, as_of):
    with pytest.raises(ContractError, match=repr(as_of)):
        sk.extract_features(sample_tx, as_of=as_of)


def test_events_and_customers_take_the_same_options():
    events = sk.Events.from_frame(
        pd.DataFrame(
            {
                "who": ["a", "b"],
                "ts": ["01.02.2024 10:00", "03.02.2024 11:00"],
                "what": ["view", "view"],
            }
        ),
        customer_id="who",
        timestamp="ts",
        event_type="what",
        date_format="%d.%m.%Y %H:%M",
    )
    assert events.data["timestamp"].dt.month.tolist() == [2, 2]
    customers = sk.Customers.from_frame(
        pd.DataFrame({"id": ["a", "b"], "joined": ["01/02/2024", "03/04/2024"]}),
        customer_id="id",
        signup_date="joined",
        dayfirst=True,
    )
    assert customers.data["signup_date"].dt.day.tolist() == [1, 3]
    with pytest.raises(ContractError, match="'signup_date'"):
        sk.Customers.from_frame(
            pd.DataFrame({"id": ["a", "b"], "joined": ["01/02/2024", "03/04/2024"]}),
            customer_id="id",
            signup_date="joined",
        )


def test_bad_options_are_refused_up_front():
    with pytest.raises(InvalidParameterError, match="no % directive"):
        _tx(["2024-01-01"], date_format="dd.mm.yyyy")
    with pytest.raises(InvalidParameterError, match="'dayfirst' must be"):
        _tx(["2024-01-01"], dayfirst="yes")


def test_native_frames_read_text_dates_with_the_options():
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame(
        {
            "customer_id": ["a", "b"],
            "timestamp": ["13.02.2024 14:05", "01.02.2024 10:00"],
            "amount": [1.0, 2.0],
        }
    )
    with pytest.raises(ContractError, match="dayfirst=True"):
        sk.Transactions.from_frame(frame)
    pandas_tx = sk.Transactions.from_frame(frame.to_pandas(), dayfirst=True)
    for options in ({"dayfirst": True}, {"date_format": "%d.%m.%Y %H:%M"}):
        native = sk.Transactions.from_frame(frame, **options)
        native_features = sk.extract_features(native, as_of="2024-03-01").to_pandas()
        expected = sk.extract_features(pandas_tx, as_of="2024-03-01").frame
        pd.testing.assert_frame_equal(
            native_features.set_index("customer_id").sort_index(),
            expected.sort_index(),
            check_dtype=False,
            check_index_type=False,
            check_categorical=False,
        )


def test_duplicate_column_names_in_a_frame():
    frame = pd.DataFrame([["a", "2024-01-01", 1.0, 2.0]], columns=["id", "ts", "amt", "amt"])
    with pytest.raises(ContractError, match=r"used more than once: \['amt'\]"):
        sk.Transactions.from_frame(frame, customer_id="id", timestamp="ts", amount="amt")


def test_a_truncated_gzip_names_the_file(tmp_path):
    data = gzip.compress(b"customer_id,timestamp,amount\n" + b"a,2024-01-01,1\n" * 50_000)
    path = tmp_path / "orders.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ContractError, match=r"orders\.csv\.gz is damaged or truncated"):
        sk.Transactions.from_csv(path)


# --- property: whatever a store writes with one format is read back exactly ------------

_FORMATS = ["%d.%m.%Y %H:%M", "%d/%m/%Y", "%m/%d/%Y %H:%M:%S", "%d-%m-%y %H:%M", "%m/%d/%y",
            "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]  # fmt: skip
_moments = st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2060, 12, 31))


def _resolution(fmt: str, moment: dt.datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    unit = "s" if "%S" in fmt else "min" if "%M" in fmt else "D"
    return stamp.floor(unit)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_FORMATS), st.lists(_moments, min_size=1, max_size=30))
def test_dates_written_with_one_format_are_read_back_exactly(fmt, moments):
    text = [moment.strftime(fmt) for moment in moments]
    expected = [_resolution(fmt, m).tz_localize("UTC") for m in moments]
    given_format = _tx(text, date_format=fmt).data["timestamp"].tolist()
    assert given_format == expected
    if fmt.startswith("%Y"):
        assert _tx(text).data["timestamp"].tolist() == expected
        return
    dayfirst = fmt.startswith("%d")
    assert _tx(text, dayfirst=dayfirst).data["timestamp"].tolist() == expected
    days = np.array([m.day for m in moments])
    months = np.array([m.month for m in moments])
    settled = bool((days > 12).any())
    if settled or (days == months).all():
        assert _tx(text).data["timestamp"].tolist() == expected
    else:
        with pytest.raises(ContractError, match="both day first and month first"):
            _tx(text)


def test_the_pandas_fallback_extracts_the_same_parts_as_arrow():
    from segmentkit.contracts._dates import _parts, _parts_with_pandas

    distinct = pd.Series(
        ["13.02.2024 14:05", "1/2/24 3:05:09.5 PM", "02-13-2024", "13.02/2024", "x", None],
        dtype="string",
    )
    arrow, plain = _parts(distinct), _parts_with_pandas(distinct)
    matched = plain["matched"].to_numpy(dtype=bool)
    assert matched.tolist() == [True, True, True, False, False, False]
    assert arrow["matched"].tolist() == matched.tolist()
    pd.testing.assert_frame_equal(
        arrow[matched].reset_index(drop=True),
        plain[matched].reset_index(drop=True),
        check_dtype=False,
    )
