"""The affinity table, the interest functions of the rule language, abandoner presets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmentkit as sk
from _backends import NATIVE
from segmentkit.cli import main
from segmentkit.engines._expr import FUNCTIONS, Call, parse
from segmentkit.errors import RuleSyntaxError

AS_OF = pd.Timestamp("2017-09-30", tz="UTC")
JOURNEY = {
    "customer_id": "household_id",
    "timestamp": "transaction_timestamp",
    "amount": "sales_value",
    "order_id": "basket_id",
    "product_id": "product_id",
    "category": "department",
    "brand": "brand",
    "quantity": "quantity",
}
RULE = 'share("category", "GROCERY") >= 0.5 and bought("brand", "Private", within="90d")'


def journey(frame):
    return sk.Transactions.from_frame(frame, **JOURNEY, timezone="America/New_York")


@pytest.fixture(scope="module")
def journey_pandas(completejourney_lines):
    return journey(completejourney_lines)


def expected_purchases(data: pd.DataFrame, attribute: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """The purchase columns by a plain pandas group-by, independent of the library."""
    rows = data[(data["timestamp"] <= as_of) & ~data["is_return"] & data[attribute].notna()]
    rows = rows.assign(
        customer_id=rows["customer_id"].astype(str), value=rows[attribute].astype(str)
    )
    grouped = rows.groupby(["customer_id", "value"])
    out = grouped.agg(
        spend=("amount", "sum"),
        items=("quantity", "sum"),
        orders=("order_id", "nunique"),
        first_bought=("timestamp", "min"),
        last_bought=("timestamp", "max"),
    ).reset_index()
    for amount, share in (("spend", "spend_share"), ("items", "item_share")):
        total = out.groupby("customer_id")[amount].transform("sum")
        out[share] = np.where(total > 0, out[amount] / total.where(total > 0, 1), 0.0)
    return out


def compare_purchases(table: pd.DataFrame, data: pd.DataFrame, as_of: pd.Timestamp) -> None:
    for attribute in ("category", "brand"):
        got = table[table["attribute"] == attribute].drop(columns="attribute")
        want = expected_purchases(data, attribute, as_of)
        merged = want.merge(got, on=["customer_id", "value"], how="outer", indicator=True)
        assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
        for column in ("spend", "items", "spend_share", "item_share"):
            np.testing.assert_allclose(merged[f"{column}_x"], merged[f"{column}_y"], rtol=1e-9)
        assert (merged["orders_x"] == merged["orders_y"]).all()
        for column in ("first_bought", "last_bought"):
            assert (merged[f"{column}_x"] == merged[f"{column}_y"]).all()


def test_affinity_equals_a_pandas_group_by_on_every_backend(
    backend, completejourney_lines, journey_pandas
):
    tx = journey(backend.frame(completejourney_lines))
    table = sk.affinity(tx, as_of=AS_OF)
    assert table.columns.tolist() == list(sk.features._affinity.AFFINITY_COLUMNS[:10])
    assert table.attrs["attributes"] == ["category", "brand"]
    compare_purchases(table, journey_pandas.data, AS_OF)
    # Sorted by customer, attribute (category first) and value, on every backend.
    order = table.assign(rank=table["attribute"].map({"category": 0, "brand": 1}))
    assert order.equals(order.sort_values(["customer_id", "rank", "value"], kind="stable"))


def test_nothing_after_as_of_leaks_in(journey_pandas):
    table = sk.affinity(journey_pandas, as_of=AS_OF)
    assert (table["last_bought"] <= AS_OF).all()
    later = sk.affinity(journey_pandas)
    assert later["last_bought"].max() > AS_OF
    assert later.attrs["as_of"] == journey_pandas.data["timestamp"].max()


def test_attributes_can_be_listed_and_unknown_ones_are_named(journey_pandas):
    table = sk.affinity(journey_pandas, attributes=["brand", "product_id"], as_of=AS_OF)
    assert table["attribute"].unique().tolist() == ["brand", "product_id"]
    products = table[table["attribute"] == "product_id"]
    sold = journey_pandas.data[journey_pandas.data["timestamp"] <= AS_OF]
    assert products["spend"].sum() == pytest.approx(sold["amount"].sum())
    with pytest.raises(ValueError, match=r"\['colour'\] are not product columns.*'category'"):
        sk.affinity(journey_pandas, attributes=["colour"])
    with pytest.raises(ValueError, match="'amount'"):
        sk.affinity(journey_pandas, attributes=["amount"])


def test_returns_are_left_out_of_spend_and_shares():
    raw = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b"],
            "order_id": ["1", "2", "3", "4"],
            "timestamp": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
            "amount": [30.0, 10.0, -30.0, 5.0],
            "category": ["Tents", "Boots", "Tents", None],
        }
    )
    tx = sk.Transactions.from_frame(raw)
    table = sk.affinity(tx).set_index(["customer_id", "value"])
    assert table.loc[("a", "Tents"), "spend"] == 30.0
    assert table.loc[("a", "Tents"), "spend_share"] == 0.75
    assert table.loc[("a", "Tents"), "items"] == 1.0  # lines, without a quantity
    assert "b" not in table.index.get_level_values(0)  # no category known


# --- browsing ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store():
    raw, mapping = sk.datasets.load_sample()
    canonical = raw.rename(columns={v: k for k, v in mapping.items()})
    events = sk.datasets.generate_events(canonical)
    # A slice of customers keeps the session logic quick on the slow engines.
    keep = sorted(canonical["customer_id"].unique())[:120]
    raw = raw[raw[mapping["customer_id"]].isin(keep)].reset_index(drop=True)
    events = events[events["customer_id"].isin(keep)].reset_index(drop=True)
    return raw, mapping, events


def expected_browsing(tx: sk.Transactions, ev: sk.Events, as_of: pd.Timestamp) -> pd.DataFrame:
    """Views, carts and abandoned visits per (customer, category), in plain pandas."""
    events = ev.data[ev.data["timestamp"] <= as_of].copy()
    events["customer_id"] = events["customer_id"].astype(str)
    events["value"] = events["category"].astype(object)
    events["session"] = events["session_id"].astype(str)
    kind = events["event_type"].astype(str)
    seen = events[kind.isin(["view", "add_to_cart"]) & events["value"].notna()]
    views = (
        seen[kind == "view"].groupby(["customer_id", "value"])["timestamp"].agg(["size", "max"])
    )
    carts = events[(kind == "add_to_cart") & events["value"].notna()]
    carted = carts.groupby(["customer_id", "value"])["timestamp"].agg(["size", "max"])
    # A visit is abandoned when no purchase (line or event) follows its last cart
    # within 24 hours, and those 24 hours have passed by as_of.
    last_cart = (
        events[kind == "add_to_cart"].groupby(["customer_id", "session"])["timestamp"].max()
    )
    lines = tx.data[(tx.data["timestamp"] <= as_of) & ~tx.data["is_return"]]
    bought = pd.concat(
        [
            pd.DataFrame(
                {"customer_id": lines["customer_id"].astype(str), "t": lines["timestamp"]}
            ),
            pd.DataFrame(
                {
                    "customer_id": events.loc[kind == "purchase", "customer_id"],
                    "t": events.loc[kind == "purchase", "timestamp"],
                }
            ),
        ]
    )
    visits = last_cart.rename("cart").reset_index().merge(bought, on="customer_id", how="left")
    day = pd.Timedelta(hours=24)
    visits["saved"] = (visits["t"] >= visits["cart"]) & (visits["t"] <= visits["cart"] + day)
    flags = visits.groupby(["customer_id", "session", "cart"])["saved"].any().reset_index()
    flags = flags[~flags["saved"] & (flags["cart"] + day <= as_of)]
    left = carts.merge(flags[["customer_id", "session"]], on=["customer_id", "session"])
    abandoned = left.groupby(["customer_id", "value"]).agg(
        abandoned_carts=("session", "nunique"), last_abandoned=("timestamp", "max")
    )
    out = pd.concat(
        [
            views.rename(columns={"size": "views", "max": "last_viewed"}),
            carted.rename(columns={"size": "carts", "max": "last_carted"}),
            abandoned,
        ],
        axis=1,
    )
    for column in ("views", "carts", "abandoned_carts"):
        out[column] = out[column].fillna(0).astype(np.int64)
    return out.reset_index()


def test_browsing_columns_equal_a_pandas_computation(store):
    raw, mapping, events = store
    tx, ev = sk.Transactions.from_frame(raw, **mapping), sk.Events.from_frame(events)
    as_of = pd.Timestamp("2017-10-15", tz="UTC")
    table = sk.affinity(tx, ev, as_of=as_of)
    got = table[table["attribute"] == "category"]
    want = expected_browsing(tx, ev, as_of)
    merged = want.merge(got, on=["customer_id", "value"], how="left", suffixes=("", "_got"))
    for column in ("views", "carts", "abandoned_carts"):
        assert (merged[column] == merged[f"{column}_got"]).all(), column
    for column in ("last_viewed", "last_carted", "last_abandoned"):
        same = (merged[column] == merged[f"{column}_got"]) | (
            merged[column].isna() & merged[f"{column}_got"].isna()
        )
        assert same.all(), column
    assert merged["abandoned_carts"].sum() > 10
    # Rows viewed or carted but never bought have no spend; every browsed pair is there.
    browsed = got[(got["views"] > 0) | (got["carts"] > 0)]
    assert len(browsed) == len(want)
    never = got[got["last_bought"].isna()]
    assert (never["spend"] == 0).all()
    assert (never["spend_share"] == 0).all()


@pytest.mark.backends(*NATIVE)
def test_browsing_columns_match_pandas_on_every_backend(backend, store):
    raw, mapping, events = store
    as_of = "2017-10-15"
    reference = sk.affinity(
        sk.Transactions.from_frame(raw, **mapping), sk.Events.from_frame(events), as_of=as_of
    )
    table = sk.affinity(
        sk.Transactions.from_frame(backend.frame(raw), **mapping),
        sk.Events.from_frame(backend.frame(events)),
        as_of=as_of,
    )
    pd.testing.assert_frame_equal(table, reference, check_dtype=False, rtol=1e-9)


def test_events_must_match_the_transactions(store):
    raw, mapping, events = store
    tx = sk.Transactions.from_frame(raw, **mapping)
    with pytest.raises(sk.errors.InvalidParameterError, match="events= must be Events"):
        sk.affinity(tx, events)


# --- CustomerFeatures.affinity ---------------------------------------------------------


def test_features_compute_their_affinity_on_first_use(store):
    raw, mapping, events = store
    tx, ev = sk.Transactions.from_frame(raw, **mapping), sk.Events.from_frame(events)
    features = sk.extract_features(tx, ev, as_of="2017-10-15", abandon_hours=12)
    assert features._affinity_table is None  # extract_features did not compute it
    table = features.affinity
    assert features.affinity is table
    expected = sk.affinity(tx, ev, as_of="2017-10-15", abandon_hours=12)
    pd.testing.assert_frame_equal(table, expected)


def test_features_from_a_frame_have_no_affinity():
    features = sk.CustomerFeatures.from_frame(pd.DataFrame({"customer_id": ["a"], "x": [1]}))
    assert not features.has_affinity
    with pytest.raises(ValueError, match=r"from_frame.*have none"):
        _ = features.affinity
    rules = sk.RuleSegmenter(rules=[("Fans", "x > 0 and share('category', 'A') > 0.5")])
    with pytest.raises(RuleSyntaxError, match=r"Rule 'Fans': share\(\) at position 10 reads"):
        rules.fit(features)


# --- rules ------------------------------------------------------------------------------


def expected_rule(data: pd.DataFrame, as_of: pd.Timestamp) -> set[str]:
    rows = data[(data["timestamp"] <= as_of) & ~data["is_return"]]
    rows = rows.assign(customer_id=rows["customer_id"].astype(str))
    known = rows[rows["category"].notna()]
    spend = known.groupby("customer_id")["amount"].sum()
    grocery = known[known["category"] == "GROCERY"].groupby("customer_id")["amount"].sum()
    share = (grocery / spend[spend > 0]).fillna(0)
    recent = rows[
        (rows["brand"] == "Private") & (rows["timestamp"] > as_of - pd.Timedelta(90, "D"))
    ]
    return set(share[share >= 0.5].index) & set(recent["customer_id"])


def write_rules(folder, suffix: str, when: str) -> object:
    path = folder / f"rules{suffix}"
    if suffix == ".toml":
        path.write_text(
            f"default = 'Rest'\n[[rules]]\nname = 'Grocery, own brand'\nwhen = '{when}'\n"
        )
    elif suffix == ".json":
        document = {"default": "Rest", "rules": [{"name": "Grocery, own brand", "when": when}]}
        path.write_text(json.dumps(document))
    else:
        path.write_text(
            f"default: Rest\nrules:\n  - name: Grocery, own brand\n    when: '{when}'\n"
        )
    return path


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml"])
def test_a_rules_file_with_interest_functions_runs_from_python(tmp_path, journey_pandas, suffix):
    if suffix == ".yaml":
        pytest.importorskip("yaml")
    features = sk.extract_features(journey_pandas, as_of=AS_OF)
    model = sk.RuleSegmenter.from_file(write_rules(tmp_path, suffix, RULE))
    segments = model.fit_predict(features).assignments
    chosen = set(segments.loc[segments["segment"] == "Grocery, own brand", "customer_id"])
    assert chosen == expected_rule(journey_pandas.data, AS_OF)
    assert 20 < len(chosen) < len(segments)


def test_a_rules_file_with_interest_functions_runs_from_the_cli(
    tmp_path, completejourney_lines, journey_pandas
):
    orders = tmp_path / "orders.csv"
    completejourney_lines.to_csv(orders, index=False)
    out = tmp_path / "segments.csv"
    mapping = [f"{key}={column}" for key, column in JOURNEY.items()]
    code = main(
        [
            "-q",
            "segment",
            str(orders),
            "--map",
            *mapping,
            "--policy",
            "timezone=America/New_York",
            "--engine",
            "rules",
            "--rules",
            str(write_rules(tmp_path, ".toml", RULE)),
            "--as-of",
            "2017-09-30",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    written = pd.read_csv(out, dtype={"customer_id": str})
    chosen = set(written.loc[written["segment"] == "Grocery, own brand", "customer_id"])
    assert chosen == expected_rule(journey_pandas.data, AS_OF)


def test_a_malformed_call_in_a_rules_file_is_reported_with_its_position(tmp_path, capsys):
    path = write_rules(tmp_path, ".json", 'share("category") >= 0.5')
    model = sk.RuleSegmenter.from_file(path)
    features = sk.CustomerFeatures.from_frame(pd.DataFrame({"customer_id": ["a"]}))
    with pytest.raises(
        RuleSyntaxError, match=r"share\(\) at position 0 takes 2 arguments"
    ) as info:
        model.fit(features)
    assert info.value.position == 0
    orders = tmp_path / "orders.csv"
    pd.DataFrame(
        {"customer_id": ["a"], "timestamp": ["2024-01-01"], "amount": [1.0], "category": ["x"]}
    ).to_csv(orders, index=False)
    bad = write_rules(tmp_path, ".toml", 'bought("category", "x", within="soon")')
    assert main(["-q", "segment", str(orders), "--engine", "rules", "--rules", str(bad)]) == 1
    err = capsys.readouterr().err
    assert 'Invalid window "soon" at position 31' in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "match", "position"),
    [
        ('shares("a", "b") > 0', r"Unknown function 'shares'.*Did you mean 'share'", 0),
        ('x > 0 and share("a") > 0', r"share\(\) at position 10 takes 2 arguments.*got 1", 10),
        ('share("a", "b", "c") > 0', "takes 2 arguments", 0),
        ('share(category, "b") > 0', r"Argument 1 of share\(\) at position 6 must be text", 6),
        ('share("a", 3) > 0', r"Argument 2 of share\(\) at position 11", 11),
        ('share("a", "b", within="9d") > 0', r"takes no 'within'", 16),
        ('bought("a", "b", within="9")', r"Invalid window \"9\" at position 24", 24),
        ('bought("a", "b", within="0w")', "Invalid window", 24),
        ('bought("a", "b", within=9)', r"'within' of bought\(\) at position 24 must be text", 24),
        ('bought("a", "b", within=="9d")', "within= with one '='", 23),
        ('bought("a", within="9d", "b")', "comes after 'within'", 25),
        ('bought("a", "b", within="1d", within="2d")', "given twice", 30),
        ('bought("a", "b"', r"Expected ',' or '\)' in bought\(\)", 15),
        ('bought("a" "b")', r"Expected ',' or '\)'", 11),
    ],
)
def test_malformed_calls_raise_rule_syntax_errors_with_the_position(text, match, position):
    with pytest.raises(RuleSyntaxError, match=match) as info:
        parse(text)
    assert info.value.position == position


def test_calls_print_canonically_and_parse_back():
    tree = parse("SHARE('category', 'Tents') >= 0.5 and Bought(\"brand\", 'A', within=' 12W ',)")
    assert str(tree) == (
        "share('category', 'Tents') >= 0.5 and bought('brand', 'A', within='12w')"
    )
    assert parse(str(tree)) == tree
    with pytest.raises(RuleSyntaxError, match="Unexpected"):
        parse("`share`('a', 'b')")
    assert parse("share > 1").names == {"share"}  # a feature may be called share


_texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_windows = st.builds(lambda n, unit: f"{n}{unit}", st.integers(1, 999), st.sampled_from("dw"))


@settings(max_examples=200, deadline=None)
@given(
    function=st.sampled_from(sorted(FUNCTIONS)),
    attribute=_texts,
    value=_texts,
    window=st.one_of(st.none(), _windows),
)
def test_parser_round_trips_any_call(function, attribute, value, window):
    within = window if FUNCTIONS[function][1] else None
    call = Call(function, attribute, value, within)
    assert parse(str(call)) == call


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "share",
                "bought",
                "(",
                ")",
                ",",
                "'a'",
                '"b"',
                "within",
                "=",
                "'9d'",
                "and",
                "1",
                ">",
                " ",
            ]
        ),
        max_size=12,
    )
)
def test_parser_never_fails_other_than_with_a_rule_syntax_error(pieces):
    text = "".join(pieces)
    try:
        parse(text)
    except RuleSyntaxError as error:
        position = error.position
    else:
        position = 0
    assert 0 <= position <= len(text)


def test_unknown_values_are_zero_and_unknown_attributes_are_errors(journey_pandas):
    features = sk.extract_features(journey_pandas, as_of=AS_OF)
    frame = features.frame
    nothing = parse("share('category', 'NO SUCH THING') == 0 and not bought('brand', 'Nope')")
    hit = nothing.evaluate(frame, affinity=lambda: features.affinity, as_of=features.as_of)
    assert hit.all()
    spend = parse("spend('category', 'GROCERY') > 0")
    hit = spend.evaluate(frame, affinity=lambda: features.affinity, as_of=features.as_of)
    assert hit.sum() == (features.affinity.query("value == 'GROCERY'")["spend"] > 0).sum()
    unknown = parse("share('colour', 'red') > 0")
    with pytest.raises(
        RuleSyntaxError, match=r"Unknown product attribute 'colour'.*\['category', 'brand'\]"
    ):
        unknown.evaluate(frame, affinity=lambda: features.affinity, as_of=features.as_of)
    browsing = sk.RuleSegmenter(rules=[("Lookers", "viewed('category', 'GROCERY')")])
    with pytest.raises(
        RuleSyntaxError, match=r"Rule 'Lookers': viewed\(\).*needs browsing events"
    ):
        browsing.fit(features)


def test_within_windows_follow_the_features(store):
    raw, mapping, events = store
    tx, ev = sk.Transactions.from_frame(raw, **mapping), sk.Events.from_frame(events)
    features = sk.extract_features(tx, ev, as_of="2017-10-15")
    table = features.affinity
    for function, column in (("viewed", "last_viewed"), ("carted", "last_carted")):
        for within, days in (("30d", 30), ("2w", 14)):
            text = f"{function}('category', 'GROCERY', within='{within}')"
            got = parse(text).evaluate(
                features.frame, affinity=lambda: table, as_of=features.as_of
            )
            rows = table[(table["value"] == "GROCERY") & (table["attribute"] == "category")]
            start = features.as_of - pd.Timedelta(days=days)
            want = set(rows.loc[rows[column] > start, "customer_id"])
            assert set(features.frame.index[got.to_numpy()]) == want


# --- native scoring and presets ---------------------------------------------------------


@pytest.mark.backends("polars", "duckdb")
def test_native_scoring_refuses_interest_functions_with_a_way_out(backend, journey_pandas):
    features = sk.extract_features(journey_pandas, as_of=AS_OF)
    model = sk.RuleSegmenter(
        rules=[("Fans", "frequency > 1 and share('category', 'GROCERY') > 0.5")]
    )
    model.fit(features)
    native = backend.frame(features.to_frame())
    with pytest.raises(RuleSyntaxError, match=r"share\(\) at position 18.*output='pandas'"):
        backend.to_pandas(model.predict(native))
    with pytest.raises(RuleSyntaxError, match="output='pandas'"):
        sk.RuleSegmenter(rules=[("Fans", "share('category', 'GROCERY') > 0.5")]).fit(native)


def test_abandoner_rules_pick_the_abandoners_of_each_value(store):
    raw, mapping, events = store
    tx, ev = sk.Transactions.from_frame(raw, **mapping), sk.Events.from_frame(events)
    features = sk.extract_features(tx, ev, as_of="2017-10-15")
    rules = sk.abandoner_rules(["GROCERY", "PRODUCE"], within_days=60)
    assert [r.name for r in rules] == ["GROCERY cart abandoners", "PRODUCE cart abandoners"]
    segments = sk.RuleSegmenter(rules=rules).fit_predict(features).assignments
    table = features.affinity
    start = features.as_of - pd.Timedelta(days=60)
    taken: set[str] = set()
    for value in ("GROCERY", "PRODUCE"):
        rows = table[(table["attribute"] == "category") & (table["value"] == value)]
        left = set(rows.loc[rows["last_abandoned"] > start, "customer_id"])
        bought = set(rows.loc[rows["last_bought"] > start, "customer_id"])
        want = (left - bought) - taken
        got = set(segments.loc[segments["segment"] == f"{value} cart abandoners", "customer_id"])
        assert got == want
        taken |= want
    assert taken
    keep = sk.abandoner_rules(["GROCERY"], exclude_buyers=False)[0]
    assert keep.when == "abandoned('category', 'GROCERY', within='30d')"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": []}, "non-empty list"),
        ({"values": "Tents"}, "non-empty list"),
        ({"values": ["Tents", "Tents"]}, "repeat"),
        ({"values": [3]}, "must be text"),
        ({"values": ["Tents"], "within_days": 0}, "positive"),
        ({"values": ["Tents"], "within_days": 1.5}, "whole number"),
        ({"values": ["Tents"], "attribute": ""}, "column name"),
    ],
)
def test_abandoner_rules_refuse_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sk.abandoner_rules(**kwargs)


def test_values_with_quotes_are_quoted_safely():
    rule = sk.abandoner_rules(["Kids' shoes"], attribute="brand")[0]
    call = parse(rule.when).operands[0]  # type: ignore[attr-defined]
    assert (call.attribute, call.value) == ("brand", "Kids' shoes")
