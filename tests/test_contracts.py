"""Transactions, Events and Customers: mapping, coercion, policies, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk
from segmentkit.errors import ContractError, Reason

MAP = {"customer_id": "CustomerID", "timestamp": "InvoiceDate", "amount": "Total"}


def raw(**overrides: list) -> pd.DataFrame:
    base = {
        "CustomerID": ["a", "a", "b", "c"],
        "InvoiceDate": ["2024-01-05", "2024-02-01", "2024-02-03", "2024-03-04"],
        "Total": [20.0, 35.5, 12.0, 9.9],
    }
    base.update(overrides)
    return pd.DataFrame(base)


# -- bad input: each raises ContractError naming the column, values, rows and the fix ----


@pytest.mark.parametrize(
    ("frame", "mapping", "reason", "match"),
    [
        pytest.param(
            raw().rename(columns={"CustomerID": "CustomerId"}),
            {"timestamp": "InvoiceDate", "amount": "Total"},
            Reason.MISSING_COLUMN,
            r"Required column 'customer_id' is missing.*Did you mean 'CustomerId'\?",
            id="missing-required-column-suggests-closest",
        ),
        pytest.param(
            raw().iloc[0:0],
            MAP,
            Reason.EMPTY,
            r"transactions data is empty \(0 rows\)",
            id="empty-input",
        ),
        pytest.param(
            raw(CustomerID=[None, None, np.nan, ""]),
            MAP,
            Reason.NULLS,
            r"Every one of the 4 rows has an empty 'customer_id'",
            id="all-ids-null",
        ),
        pytest.param(
            raw(InvoiceDate=["2024-01-05", "last tuesday", "2024-02-30", "2024-03-04"]),
            MAP,
            Reason.WRONG_DTYPE,
            r"(?s)'timestamp'.*2 values that are not dates.*"
            r"row 1: 'last tuesday', row 2: '2024-02-30'",
            id="unparseable-timestamps",
        ),
        pytest.param(
            raw(Total=["20", "$35.50", "12", "n/a"]),
            MAP,
            Reason.WRONG_DTYPE,
            r"(?s)'amount'.*2 non-numeric.*currency symbols.*row 1: '\$35.50', row 3: 'n/a'",
            id="non-numeric-amounts",
        ),
        pytest.param(
            raw(Currency=["EUR", "USD", "USD", "GBP"]),
            {**MAP, "currency": "Currency"},
            Reason.MIXED_CURRENCIES,
            r"mixes 3 currencies: USD \(2 rows\).*rates=\{",
            id="mixed-currencies",
        ),
        pytest.param(
            raw(),
            {**MAP, "custmer": "CustomerID"},
            Reason.UNKNOWN_MAPPING_KEY,
            r"Unknown column key 'custmer'.*Did you mean 'customer_id'",
            id="unknown-mapping-key",
        ),
        pytest.param(
            raw(),
            {**MAP, "amount": "Totl"},
            Reason.MISSING_COLUMN,
            r"Column 'Totl' \(mapped to 'amount'\) is not in.*Did you mean 'Total'\?",
            id="mapping-to-absent-column",
        ),
        pytest.param(
            raw().drop(columns="Total"),
            {"customer_id": "CustomerID", "timestamp": "InvoiceDate"},
            Reason.MISSING_COLUMN,
            r"map amount='<column>', or both quantity='<column>' and unit_price",
            id="no-amount-nor-price",
        ),
    ],
)
def test_bad_input_raises_contract_error(frame, mapping, reason, match):
    with pytest.raises(ContractError, match=match) as caught:
        sk.Transactions.from_frame(frame, **mapping)
    assert reason in caught.value.reasons
    assert isinstance(caught.value, ValueError)


def test_every_failure_of_a_pass_is_reported_at_once():
    frame = raw(
        InvoiceDate=["2024-01-05", "soon", "2024-02-03", "2024-03-04"],
        Total=["1", "2", "x", "4"],
    )
    with pytest.raises(ContractError, match="failed 2 checks") as caught:
        sk.Transactions.from_frame(frame, **MAP)
    failures = caught.value.failures
    assert list(failures.columns) == ["column", "check", "reason", "failure_case", "row"]
    assert set(failures["column"]) == {"timestamp", "amount"}
    assert failures.set_index("column").loc["amount", "row"] == 2
    assert caught.value.counts.sum() == 2


def test_error_lists_only_a_few_examples_and_the_total():
    totals = ["bad"] * 40 + ["1.0"] * 10
    frame = pd.DataFrame(
        {"CustomerID": ["a"] * 50, "InvoiceDate": ["2024-01-01"] * 50, "Total": totals}
    )
    with pytest.raises(ContractError, match=r"(?s)40 non-numeric.*\(and 35 more\)"):
        sk.Transactions.from_frame(frame, **MAP)


def test_wrong_input_type_is_a_type_error_with_a_hint():
    with pytest.raises(TypeError, match=r"must be a pandas DataFrame, got list.*Hint"):
        sk.Transactions.from_frame([{"a": 1}], **MAP)


@pytest.mark.parametrize(
    ("policy", "match"),
    [
        ({"returns": "drop"}, r"'returns' parameter of transactions must be one of"),
        ({"duplicates": "yes"}, r"'duplicates' parameter"),
        ({"orders_from": "week"}, r"'orders_from' parameter"),
        ({"rates": {"EUR": 1.1}}, r"Pass 'rates' and 'base_currency' together"),
    ],
)
def test_invalid_policies_are_rejected(policy, match):
    with pytest.raises(ValueError, match=match):
        sk.Transactions.from_frame(raw(), **MAP, **policy)


# -- policies -------------------------------------------------------------------------


def test_missing_customer_ids_are_excluded_and_counted():
    tx = sk.Transactions.from_frame(raw(CustomerID=["a", None, " ", "c"]), **MAP)
    assert tx.report.excluded == {"missing_customer_id": 2}
    assert tx.report.rows_read == 4
    assert tx.report.rows_kept == 2


def test_missing_customer_ids_can_raise():
    with pytest.raises(ContractError, match=r"(?s)1 row has no 'customer_id'.*row 1"):
        sk.Transactions.from_frame(
            raw(CustomerID=["a", None, "b", "c"]), **MAP, missing_customer="raise"
        )


def test_missing_timestamps_and_amounts_are_excluded_with_their_reason():
    frame = raw(
        InvoiceDate=["2024-01-05", None, "2024-02-03", "2024-03-04"], Total=[1.0, 2.0, None, 4.0]
    )
    tx = sk.Transactions.from_frame(frame, **MAP)
    assert tx.report.excluded == {"missing_timestamp": 1, "missing_amount": 1}


@pytest.mark.parametrize(
    ("policy", "kept", "excluded", "n_returns"),
    [
        ("net", 5, {}, 0),
        ("exclude", 3, {"return_or_cancellation": 2}, 0),
        ("separate", 3, {"return_kept_separately": 2}, 2),
    ],
)
def test_returns_policies(policy, kept, excluded, n_returns):
    frame = pd.DataFrame(
        {
            "cust": ["a", "a", "a", "b", "b"],
            "when": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-01", "2024-01-05"],
            "invoice": ["1", "2", "C2", "3", "4"],
            "value": [10.0, 30.0, 30.0, 5.0, -5.0],
        }
    )
    tx = sk.Transactions.from_frame(
        frame,
        customer_id="cust",
        timestamp="when",
        order_id="invoice",
        amount="value",
        returns=policy,
        cancellation_prefix="C",
    )
    assert len(tx) == kept
    assert tx.report.excluded == excluded
    assert len(tx.returns) == n_returns
    if policy == "net":
        # The cancellation's positive amount is made negative, so spend nets out.
        assert tx.data["amount"].sum() == pytest.approx(10.0)
        assert tx.data["is_return"].sum() == 2


def test_zero_amounts_kept_by_default_and_excludable():
    frame = raw(Total=[0.0, 35.5, 12.0, 0.0])
    assert len(sk.Transactions.from_frame(frame, **MAP)) == 4
    tx = sk.Transactions.from_frame(frame, **MAP, zero_amount="exclude")
    assert tx.report.excluded == {"zero_amount": 2}


def test_duplicate_lines_kept_by_default_and_droppable():
    frame = pd.concat([raw(), raw().iloc[[1]]], ignore_index=True)
    assert len(sk.Transactions.from_frame(frame, **MAP)) == 5
    tx = sk.Transactions.from_frame(frame, **MAP, duplicates="drop")
    assert tx.report.excluded == {"duplicate_line": 1}


def test_mixed_currencies_are_converted_with_rates():
    frame = raw(Currency=["EUR", "USD", "USD", "GBP"])
    tx = sk.Transactions.from_frame(
        frame,
        **MAP,
        currency="Currency",
        rates={"EUR": 1.1, "GBP": 1.25},
        base_currency="USD",
    )
    assert tx.data["amount"].tolist() == pytest.approx([22.0, 35.5, 12.0, 12.375])
    assert set(tx.data["currency"]) == {"USD"}
    assert any("converted to USD" in note for note in tx.report.notes)


def test_currency_without_a_rate_is_named():
    frame = raw(Currency=["EUR", "USD", "USD", "JPY"])
    with pytest.raises(ContractError, match=r"No exchange rate for currencies \['JPY'\]"):
        sk.Transactions.from_frame(
            frame, **MAP, currency="Currency", rates={"EUR": 1.1}, base_currency="USD"
        )


def test_amount_from_quantity_times_unit_price():
    frame = pd.DataFrame(
        {"c": ["a", "b"], "t": ["2024-01-01", "2024-01-02"], "q": [3, 2], "p": [2.5, 10.0]}
    )
    tx = sk.Transactions.from_frame(
        frame, customer_id="c", timestamp="t", quantity="q", unit_price="p"
    )
    assert tx.data["amount"].tolist() == [7.5, 20.0]


@pytest.mark.parametrize(("orders_from", "n_orders"), [("timestamp", 3), ("day", 2), ("row", 4)])
def test_orders_without_order_id_follow_the_stated_rule(orders_from, n_orders):
    frame = pd.DataFrame(
        {
            "c": ["a", "a", "a", "a"],
            "t": ["2024-01-01 10:00", "2024-01-01 10:00", "2024-01-01 18:00", "2024-01-02 09:00"],
            "v": [1.0, 2.0, 3.0, 4.0],
        }
    )
    tx = sk.Transactions.from_frame(
        frame, customer_id="c", timestamp="t", amount="v", orders_from=orders_from
    )
    assert tx.data["order_key"].nunique() == n_orders


def test_time_zones_are_normalised_to_utc():
    frame = pd.DataFrame(
        {
            "c": ["a", "b", "c"],
            "t": ["2024-06-01T10:00:00+02:00", "2024-06-01T08:00:00Z", "2024-06-01 08:00"],
            "v": [1.0, 1.0, 1.0],
        }
    )
    tx = sk.Transactions.from_frame(frame, customer_id="c", timestamp="t", amount="v")
    assert str(tx.data["timestamp"].dt.tz) == "UTC"
    assert tx.data["timestamp"].nunique() == 1
    local = sk.Transactions.from_frame(
        frame.iloc[[2]], customer_id="c", timestamp="t", amount="v", timezone="America/New_York"
    )
    assert local.data["timestamp"].iloc[0] == pd.Timestamp("2024-06-01 12:00", tz="UTC")


def test_ids_keep_leading_zeros_and_integer_ids_become_text():
    frame = pd.DataFrame({"c": [1.0, 2.0, np.nan], "t": ["2024-01-01"] * 3, "v": [1.0, 2.0, 3.0]})
    tx = sk.Transactions.from_frame(frame, customer_id="c", timestamp="t", amount="v")
    assert sorted(tx.data["customer_id"].astype(str)) == ["1", "2"]
    padded = sk.Transactions.from_frame(
        pd.DataFrame({"c": ["007", "7"], "t": ["2024-01-01"] * 2, "v": [1.0, 2.0]}),
        customer_id="c",
        timestamp="t",
        amount="v",
    )
    assert padded.n_customers == 2


def test_compact_integer_dates_are_read(cdnow_raw):
    frame = cdnow_raw.head(3).assign(date=lambda d: d["date"].astype(int))
    tx = sk.Transactions.from_frame(
        frame, customer_id="customer_id", timestamp="date", amount="dollar_value"
    )
    assert tx.data["timestamp"].iloc[0] == pd.Timestamp("1997-01-01", tz="UTC")


def test_repr_shows_counts_not_rows():
    tx = sk.Transactions.from_frame(raw(), **MAP)
    assert repr(tx) == (
        "<Transactions: 4 rows, 3 customers, columns=['customer_id', 'timestamp', 'amount', "
        "'is_return', 'order_key']>"
    )


def test_from_csv_reads_ids_as_text(tmp_path):
    path = tmp_path / "orders.csv.gz"
    raw(CustomerID=["007", "007", "010", "011"]).to_csv(path, index=False)
    tx = sk.Transactions.from_csv(path, **MAP)
    assert sorted(tx.data["customer_id"].cat.categories) == ["007", "010", "011"]


def test_from_parquet(tmp_path):
    path = tmp_path / "orders.parquet"
    raw().to_parquet(path)
    assert len(sk.Transactions.from_parquet(path, **MAP)) == 4


# -- report ---------------------------------------------------------------------------


def test_report_adds_up_and_is_available_as_data():
    frame = raw(CustomerID=["a", None, "b", "c"], Total=[1.0, 2.0, None, 0.0])
    report = sk.Transactions.from_frame(frame, **MAP, zero_amount="exclude").report
    table = report.to_frame()
    assert table["rows"].sum() == report.rows_read == 4
    assert dict(zip(table["reason"], table["rows"], strict=True)) == {
        "": 1,
        "missing_customer_id": 1,
        "missing_amount": 1,
        "zero_amount": 1,
    }
    assert "4 rows read, 1 kept" in str(report)


def test_report_refuses_numbers_that_do_not_add_up():
    with pytest.raises(AssertionError, match="rows do not add up"):
        sk.ValidationReport("transactions", 10, 5, {"x": 1})


# -- events and customers -------------------------------------------------------------


def test_events_map_aliases_and_keep_unknown_types_with_a_note():
    frame = pd.DataFrame(
        {
            "v": ["a", "a", "a", "b"],
            "ts": ["2024-03-01 10:00"] * 4,
            "e": ["page_view", "basket_add", "Wishlist", "PURCHASE"],
        }
    )
    ev = sk.Events.from_frame(
        frame,
        customer_id="v",
        timestamp="ts",
        event_type="e",
        event_map={"basket_add": "add_to_cart"},
    )
    assert list(ev.data["event_type"]) == ["view", "add_to_cart", "wishlist", "purchase"]
    assert any("'wishlist': 1" in note for note in ev.report.notes)


def test_events_missing_column_error():
    frame = pd.DataFrame({"v": ["a"], "ts": ["2024-03-01"]})
    with pytest.raises(ContractError, match=r"'event_type' is missing"):
        sk.Events.from_frame(frame, customer_id="v", timestamp="ts")


def test_customers_duplicates_raise_or_keep_last():
    frame = pd.DataFrame({"id": ["a", "b", "a"], "country": ["US", "GB", "FR"]})
    with pytest.raises(ContractError, match=r"1 customer ids appear on more than one row"):
        sk.Customers.from_frame(frame, customer_id="id", country="country")
    customers = sk.Customers.from_frame(
        frame, customer_id="id", country="country", duplicates="keep_last"
    )
    assert customers.report.excluded == {"duplicate_customer_id": 1}
    assert customers.data.set_index("customer_id").loc["a", "country"] == "FR"


def test_customers_repr_never_shows_personal_data():
    frame = pd.DataFrame(
        {"id": ["a"], "mail": ["jane.doe@example.com"], "tel": ["+1 650 555 0123"]}
    )
    customers = sk.Customers.from_frame(frame, customer_id="id", email="mail", phone="tel")
    assert "jane" not in repr(customers)
    assert "555" not in repr(customers)


def test_customers_flags_and_bad_flags():
    frame = pd.DataFrame({"id": ["a", "b", "c"], "ok": ["yes", "0", "maybe"]})
    with pytest.raises(
        ContractError, match=r"(?s)'consent_email'.*not yes/no flags.*row 2: 'maybe'"
    ):
        sk.Customers.from_frame(frame, customer_id="id", consent_email="ok")


def test_customers_implausible_ages_become_missing_with_a_note():
    frame = pd.DataFrame({"id": ["a", "b"], "age": [34, 250]})
    customers = sk.Customers.from_frame(frame, customer_id="id", age="age")
    assert customers.data["age"].isna().tolist() == [False, True]
    assert customers.report.notes == ("1 ages outside 0-120 set to missing",)


def test_extra_columns_all_leaves_out_columns_that_look_personal():
    frame = pd.DataFrame(
        {
            "id": ["a", "b"],
            "tier": ["gold", "silver"],
            "Phone Number": ["+1 650 555 0123", "+44 20 7183 8750"],
            "mail": ["a@example.com", "b@example.com"],
            "LastName": ["Doe", "Smith"],
        }
    )
    customers = sk.Customers.from_frame(frame, customer_id="id", extra_columns="all")
    assert customers.columns == ["customer_id", "tier"]
    explicit = sk.Customers.from_frame(frame, customer_id="id", extra_columns=["mail"])
    assert "mail" in explicit.columns


def test_unknown_time_zone_is_a_parameter_error():
    with pytest.raises(sk.errors.InvalidParameterError, match=r"IANA time zone.*'Mars/Base'"):
        sk.Transactions.from_frame(raw(), **MAP, timezone="Mars/Base")


def test_wall_clock_times_around_dst_changes_are_accepted():
    frame = pd.DataFrame(
        {
            "c": ["a", "b"],
            # 02:30 does not exist on 2024-03-31 in Paris; 02:30 on 2024-10-27 occurs twice.
            "t": ["2024-03-31 02:30", "2024-10-27 02:30"],
            "v": [1.0, 2.0],
        }
    )
    tx = sk.Transactions.from_frame(
        frame, customer_id="c", timestamp="t", amount="v", timezone="Europe/Paris"
    )
    assert list(tx.data["timestamp"]) == [
        pd.Timestamp("2024-03-31 01:00", tz="UTC"),  # moved forward to 03:00 local
        pd.Timestamp("2024-10-27 01:30", tz="UTC"),  # read as standard time (UTC+1)
    ]


def test_drop_duplicates_compares_the_mapped_columns():
    frame = pd.DataFrame(
        {
            "c": ["a", "a", "a"],
            "o": ["1", "1", "1"],
            "t": ["2024-01-01"] * 3,
            "v": [2.0, 2.0, 2.0],
            "sku": ["apple", "pear", "pear"],
        }
    )
    mapping = {"customer_id": "c", "order_id": "o", "timestamp": "t", "amount": "v"}
    # As docs/contracts.md says: what the mapping reads decides. Unmapped, the product
    # cannot tell the lines apart...
    tx = sk.Transactions.from_frame(frame, **mapping, duplicates="drop")
    assert tx.report.excluded == {"duplicate_line": 2}
    # ...mapped, it does.
    tx = sk.Transactions.from_frame(frame, **mapping, product_id="sku", duplicates="drop")
    assert tx.report.excluded == {"duplicate_line": 1}


def test_float_looking_id_text_and_placeholders_are_normalised(tmp_path):
    frame = pd.DataFrame(
        {
            "c": ["17850.0", "17850", "nan", "None", "NULL", "0042"],
            "t": ["2024-01-01"] * 6,
            "v": [1.0] * 6,
        }
    )
    tx = sk.Transactions.from_frame(frame, customer_id="c", timestamp="t", amount="v")
    assert sorted(tx.data["customer_id"].cat.categories) == ["0042", "17850"]
    assert tx.report.excluded == {"missing_customer_id": 3}
    # A CSV of float ids gives the same ids through from_csv as through from_frame.
    path = tmp_path / "o.csv"
    pd.DataFrame({"c": [17850.0, 17851.0], "t": ["2024-01-01"] * 2, "v": [1.0, 2.0]}).to_csv(
        path, index=False
    )
    from_csv = sk.Transactions.from_csv(path, customer_id="c", timestamp="t", amount="v")
    assert sorted(from_csv.data["customer_id"].cat.categories) == ["17850", "17851"]


@pytest.mark.parametrize("dtype", [object, pd.StringDtype("pyarrow", na_value=np.nan)])
def test_placeholder_ids_with_spaces_around_them_are_missing(dtype):
    ids = [" nan ", "\u3000NULL\u3000", "N/A", "", "C0000001", "nat ", "\xa0none", "nanny"]
    frame = pd.DataFrame({"c": pd.Series(ids, dtype=dtype), "t": "2024-01-01", "v": 1.0})
    tx = sk.Transactions.from_frame(frame, customer_id="c", timestamp="t", amount="v")
    assert sorted(tx.data["customer_id"].cat.categories) == ["C0000001", "nanny"]
    assert tx.report.excluded == {"missing_customer_id": 6}


def test_null_mask_finds_padded_placeholders_among_arrow_categories():
    from segmentkit.contracts._schema import null_mask

    texts = ["C0000001", "  nan  ", "\u3000NULL", "n/a\u2003", "<NA>", "nanny", "x"]
    categories = pd.Index(pd.array(texts, dtype=pd.StringDtype("pyarrow", na_value=np.nan)))
    codes = np.array([0, 1, 2, 3, 4, 5, 6, -1, 0], dtype=np.int8)
    values = pd.Series(pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories)))
    expected = [False, True, True, True, True, False, False, True, False]
    assert null_mask(values).tolist() == expected


def test_policy_typos_list_the_policies():
    with pytest.raises(ContractError, match=r"Unknown column key 'retuns'.*policies: \["):
        sk.Transactions.from_frame(raw(), **MAP, retuns="exclude")


def test_a_file_split_on_the_wrong_separator_says_which_to_use(tmp_path, cdnow_raw):
    path = tmp_path / "cdnow.txt"
    path.write_text(" customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n")
    with pytest.raises(sk.errors.InvalidParameterError, match=r"read as a single column.*\\s\+"):
        sk.Transactions.from_csv(path, customer_id="customer_id", timestamp="date")


def test_report_never_shows_100_percent_next_to_exclusions():
    report = sk.ValidationReport("transactions", 100_000, 99_995, {"missing_amount": 5})
    assert "(>99.9%)" in str(report)


def test_report_lines_fit_a_100_column_terminal():
    long_note = "file " + "x" * 30 + ".csv: " + "a note that keeps going " * 8
    report = sk.ValidationReport(
        "transactions",
        10,
        10,
        {},
        notes=(long_note,),
        flagged={"duplicate_line": 3},
    )
    lines = str(report).splitlines()
    assert all(len(line) <= 100 for line in lines), lines
    # Nothing is lost in the wrapping, and each continuation sits under its line.
    note = next(i for i, line in enumerate(lines) if line.startswith("  note: "))
    assert " ".join(line.strip() for line in lines[note:]).endswith(long_note.strip())
    assert lines[note + 1].startswith("      ")
    assert "duplicates='drop' leaves them out" in " ".join(x.strip() for x in lines[:note])


@pytest.mark.parametrize("engine", ["pandas", "polars"])
def test_the_report_says_which_columns_were_used_by_their_names(engine):
    # A column called "category" adds the category features without being mapped:
    # beside a mapping, the report says so.
    frame = pd.DataFrame(
        {
            "cust": ["a", "b"],
            "timestamp": ["2024-01-01", "2024-01-02"],
            "amount": [1.0, 2.0],
            "category": ["x", "y"],
        }
    )
    if engine == "polars":
        pl = pytest.importorskip("polars")
        frame = pl.from_pandas(frame)
    report = sk.Transactions.from_frame(frame, customer_id="cust").report
    (note,) = report.notes
    # Only the optional columns: the id, time and amount every table reads add nothing.
    assert note.startswith("used by their names, not mapped: category (")
    # Nothing mapped: every column is taken by name on purpose, nothing to say.
    plain = pd.DataFrame({"customer_id": ["a"], "timestamp": ["2024-01-01"], "amount": [1.0]})
    assert not sk.Transactions.from_frame(plain).report.notes
