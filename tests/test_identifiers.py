"""Normalisation and hashing of match identifiers, against the reference hash table."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from _vectors import SHA256
from segmentkit.exporters import _identifiers as ids

HEX64 = re.compile(r"[0-9a-f]{64}")


def values(result):
    normalised, _ = result
    return [None if pd.isna(v) else v for v in normalised]


def invalid(result):
    return result[1].tolist()


# ------------------------------------------------------------------ reference vectors


@pytest.mark.parametrize(("normalised", "digest"), list(SHA256.items()))
def test_sha256_reproduces_every_reference_vector(normalised, digest):
    assert ids.sha256_hex([normalised]).tolist() == [digest]


def test_raw_reference_values_normalise_to_the_reference_inputs():
    countries = pd.Series(["US", "GB"])
    assert values(ids.email(["  Jane.Doe@Gmail.com ", "Bob.Smith+promo@Example.co.uk"])) == [
        "jane.doe@gmail.com",
        "bob.smith+promo@example.co.uk",
    ]
    phones = pd.Series(["+1 (650) 555-0123", "+44 20 7183 8750"])
    assert values(ids.phone_digits(phones, countries)) == ["16505550123", "442071838750"]
    assert values(ids.phone_e164(phones, countries)) == ["+16505550123", "+442071838750"]
    assert values(ids.name(["Jane", "Doe", "Bob", "Smith"])) == ["jane", "doe", "bob", "smith"]
    assert values(ids.city(["San Francisco", "London"])) == ["sanfrancisco", "london"]
    assert values(ids.region(pd.Series(["CA", None]), countries)) == ["ca", None]
    postal = ids.postal_code(pd.Series(["94105-1234", "M1 1AE"]), countries)
    assert values(postal) == ["94105", "m11ae"]
    assert values(ids.country(["US", "GB"])) == ["us", "gb"]


def test_raw_reference_values_hash_to_the_reference_table():
    emails, _ = ids.email(["  Jane.Doe@Gmail.com ", "Bob.Smith+promo@Example.co.uk"])
    assert ids.sha256_hex(emails).tolist() == [
        SHA256["jane.doe@gmail.com"],
        SHA256["bob.smith+promo@example.co.uk"],
    ]
    phones, _ = ids.phone_e164(["+1 (650) 555-0123", "+44 20 7183 8750"])
    assert ids.sha256_hex(phones).tolist() == [SHA256["+16505550123"], SHA256["+442071838750"]]


def test_md5_reference_vector():
    emails, _ = ids.email(["  Jane.Doe@Gmail.com "])
    assert ids.md5_hex(emails).tolist() == ["1df66fbb427ff7e64ac46af29cc74b71"]


# ------------------------------------------------------------------------- edge cases


def test_missing_and_blank_values_are_neither_valid_nor_invalid():
    raw = [None, np.nan, "", "   ", pd.NA]
    for rule in (ids.email, ids.name, ids.city, ids.country, ids.gender, ids.phone_e164):
        result = rule(raw)
        assert values(result) == [None] * 5, rule
        assert invalid(result) == [False] * 5, rule


def test_email_rules():
    raw = [
        "a@b.co",
        "no-at-sign.com",
        "two@@b.com",
        "a@b@c.com",
        "@b.com",
        "a@nodot",
        "a b@c.com",
        "a@b.",
        " First.Last+Tag@GMail.COM\t",
    ]
    result = ids.email(raw)
    assert values(result)[0] == "a@b.co"
    assert values(result)[-1] == "first.last+tag@gmail.com"  # no dot or +tag stripping
    assert invalid(result) == [False, True, True, True, True, True, True, True, False]


def test_phone_rules_use_the_row_country_then_the_default_region():
    raw = pd.Series(["(650) 555-0123", "020 7183 8750", "020 7183 8750", "not a phone", "12"])
    countries = pd.Series(["US", "GB", None, "US", "US"])
    result = ids.phone_digits(raw, countries)
    assert values(result)[:2] == ["16505550123", "442071838750"]
    assert invalid(result) == [False, False, True, True, True]  # 020... is no US number
    gb = ids.phone_e164(["020 7183 8750"], default_region="GB")
    assert values(gb) == ["+442071838750"]


def test_unicode_names_keep_their_letters():
    raw = ["José", "Łukasz", "  O'Brien-Smith ", "Jean Luc", "Zoë", "Jose\u0301", "123", "!!"]
    result = ids.name(raw)
    assert values(result) == [
        "josé",
        "łukasz",
        "obriensmith",
        "jeanluc",
        "zoë",
        "josé",  # decomposed accent composed (NFC)
        None,
        None,
    ]
    assert invalid(result) == [False] * 6 + [True, True]
    assert values(ids.first_initial(["Łukasz", "  jane", None])) == ["ł", "j", None]
    assert values(ids.city(["Kraków", "St. Louis", "New  York"])) == [
        "kraków",
        "stlouis",
        "newyork",
    ]


def test_region_rules():
    raw = pd.Series(["CA", "California", "Texas!", "Narnia", "Île-de-France", "NSW"])
    countries = pd.Series(["US", "us", "US", "US", "FR", "AU"])
    result = ids.region(raw, countries)
    assert values(result) == ["ca", "ca", "tx", None, "îledefrance", "nsw"]
    assert invalid(result) == [False, False, False, True, False, False]
    assert values(ids.region(["CA"])) == ["ca"]  # no country known


def test_postal_code_rules():
    raw = pd.Series(["94105-1234", "941051234", "941", "M1 1AE", " 75008 ", "10115"])
    countries = pd.Series(["US", "US", "US", "GB", "FR", None])
    result = ids.postal_code(raw, countries)
    assert values(result) == ["94105", "94105", None, "m11ae", "75008", "10115"]
    assert invalid(result) == [False, False, True, False, False, False]


def test_country_gender_and_birth_parts():
    result = ids.country(["US", " gb ", "UK", "France", "USA", "XX", None, "  "])
    assert values(result) == ["us", "gb", "gb", "fr", "us", None, None, None]
    assert invalid(result) == [False, False, False, False, False, True, False, False]

    result = ids.gender(["M", "female", "Male", "F", "x", None])
    assert values(result) == ["m", "f", "m", "f", None, None]
    assert invalid(result) == [False, False, False, False, True, False]

    parts, bad = ids.birth_parts(
        ["1980-02-03", pd.Timestamp("2001-12-31"), None, "soon", "1850-1-1"]
    )
    assert parts["year"].tolist()[:2] == ["1980", "2001"]
    assert parts["month"].tolist()[:2] == ["02", "12"]
    assert parts["day"].tolist()[:2] == ["03", "31"]
    assert parts.iloc[2:].isna().all().all()
    assert bad.tolist() == [False, False, False, True, True]


def test_sha256_passes_existing_hashes_through_lowercased():
    digest = SHA256["jane"]
    out = ids.sha256_hex(pd.Series([digest.upper(), digest, None, "jane"]))
    assert out.tolist()[:2] == [digest, digest]
    assert pd.isna(out.iloc[2])
    assert out.iloc[3] == digest


def test_prehashed_keeps_hashed_raw_values_valid():
    raw = pd.Series([SHA256["jane.doe@gmail.com"].upper(), "bad", "x@y.com"])
    normalised, bad = ids.prehashed(raw, ids.email(raw))
    assert normalised.tolist() == [SHA256["jane.doe@gmail.com"], pd.NA, "x@y.com"]
    assert bad.tolist() == [False, True, False]


def test_index_and_categorical_input_are_preserved():
    raw = pd.Series(["US", "GB", None], index=[10, 20, 30], dtype="category")
    normalised, bad = ids.country(raw)
    assert normalised.index.tolist() == [10, 20, 30]
    assert normalised.dtype == "string"
    assert isinstance(bad, np.ndarray)
    assert bad.dtype == bool


def test_countries_must_align():
    with pytest.raises(ValueError, match="one per row"):
        ids.phone_e164(["+16505550123"], pd.Series(["US", "GB"]))


# ------------------------------------------------------------------------- properties

text = st.text(max_size=30)
optional_text = st.one_of(st.none(), text)


@settings(max_examples=200, deadline=None)
@given(st.lists(optional_text, max_size=8))
def test_text_rules_are_idempotent(raw):
    for rule in (ids.email, ids.name, ids.city, ids.country, ids.gender):
        once, _ = rule(raw)
        twice, again_invalid = rule(once)
        assert values((twice, None)) == values((once, None)), rule
        assert not again_invalid.any()


@settings(max_examples=100, deadline=None)
@given(st.lists(optional_text, max_size=8), st.sampled_from(["US", "GB", "FR", None]))
def test_geo_rules_are_idempotent(raw, code):
    countries = pd.Series([code] * len(raw), dtype=object)
    for rule in (ids.region, ids.postal_code):
        once, _ = rule(raw, countries)
        twice, again_invalid = rule(once, countries)
        assert values((twice, None)) == values((once, None)), rule
        assert not again_invalid.any()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.from_regex(r"\+?[0-9 ()-]{0,16}", fullmatch=True), max_size=6))
@example(["+310000000"])  # read as +31 (0)0000000: shorter each time it is read
def test_phone_rule_is_idempotent(raw):
    once, _ = ids.phone_e164(raw)
    twice, again_invalid = ids.phone_e164(once)
    assert values((twice, None)) == values((once, None))
    assert not again_invalid.any()


@settings(max_examples=200, deadline=None)
@given(st.lists(text, min_size=1, max_size=8))
def test_sha256_is_always_64_lowercase_hex(raw):
    out = ids.sha256_hex(pd.Series(raw, dtype=object))
    assert all(HEX64.fullmatch(v) for v in out)
    assert ids.sha256_hex(out).tolist() == out.tolist()  # hashes are not hashed again


@settings(max_examples=100, deadline=None)
@given(st.lists(optional_text, max_size=8))
def test_invalid_only_marks_non_empty_values(raw):
    for rule in (ids.email, ids.name, ids.country, ids.gender, ids.phone_digits):
        normalised, bad = rule(raw)
        blank = np.array([v is None or not v.strip() for v in raw], dtype=bool)
        assert not (bad & blank).any()
        assert not (bad & normalised.notna().to_numpy()).any()


# -------------------------------------------------------------------------- countries

#: The country column of the UCI Online Retail export, and what each value is sent as.
UCI_COUNTRIES = {
    "United Kingdom": "gb", "France": "fr", "Australia": "au", "Netherlands": "nl",
    "Germany": "de", "Norway": "no", "EIRE": "ie", "Switzerland": "ch", "Spain": "es",
    "Poland": "pl", "Portugal": "pt", "Italy": "it", "Belgium": "be", "Lithuania": "lt",
    "Japan": "jp", "Iceland": "is", "Denmark": "dk", "Cyprus": "cy", "Sweden": "se",
    "Austria": "at", "Israel": "il", "Finland": "fi", "Bahrain": "bh", "Greece": "gr",
    "Hong Kong": "hk", "Singapore": "sg", "Lebanon": "lb", "United Arab Emirates": "ae",
    "Saudi Arabia": "sa", "Czech Republic": "cz", "Canada": "ca", "Brazil": "br",
    "USA": "us", "Malta": "mt", "RSA": "za", "Korea": "kr", "Nigeria": "ng",
    "Thailand": "th", "Bermuda": "bm",
    # Naming no single country: reported, never guessed.
    "Channel Islands": None, "European Community": None, "Unspecified": None,
    "West Indies": None,
}  # fmt: skip


def test_country_names_of_a_real_store_export():
    result = ids.country(list(UCI_COUNTRIES))
    assert values(result) == list(UCI_COUNTRIES.values())
    assert invalid(result) == [code is None for code in UCI_COUNTRIES.values()]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("United Kingdom", "gb"), ("UK", "gb"), ("u.k.", "gb"), ("Great Britain", "gb"),
        ("England", "gb"), ("Scotland", "gb"), ("GBR", "gb"),
        ("Suomi", "fi"), ("Finland", "fi"), ("FIN", "fi"), ("Sverige", "se"),
        ("Polska", "pl"), ("USA", "us"), ("United States of America", "us"),
        ("U.S.A.", "us"), ("Deutschland", "de"), ("Czech Republic", "cz"),
        ("Czechia", "cz"), ("Česko", "cz"), ("EIRE", "ie"), ("Éire", "ie"),
        ("Ireland", "ie"), ("RSA", "za"), ("Österreich", "at"), ("osterreich", "at"),
        ("The Netherlands", "nl"), ("Holland", "nl"), ("Trinidad & Tobago", "tt"),
        ("St Lucia", "lc"), ("St. Lucia", "lc"), ("Korea, Republic of", "kr"),
        ("Türkiye", "tr"), ("Turkey", "tr"), ("Russia", "ru"), ("Côte d'Ivoire", "ci"),
        ("Ελλάδα", "gr"), ("  viet nam ", "vn"),
    ],
)  # fmt: skip
def test_country_spellings(raw, code):
    assert values(ids.country([raw])) == [code]


@pytest.mark.parametrize(
    "raw", ["European Community", "EU", "Channel Islands", "Unspecified", "XX", "Kosovo", "?"]
)
def test_values_naming_no_country_are_invalid(raw):
    assert invalid(ids.country([raw])) == [True]


def test_no_key_names_two_countries():
    import pycountry

    # Every spelling in the alias table is read as its own country, not shadowed by,
    # or shadowing, an ISO name.
    table = ids._country_table()
    for text, code in ids._COUNTRY_ALIASES.items():
        assert pycountry.countries.get(alpha_2=code) is not None, code
        assert table[ids._country_key(text)] == code.lower(), text
    # Every ISO code and name survives: no two countries share a key.
    for entry in pycountry.countries:
        assert table[ids._country_key(entry.name)] == entry.alpha_2.lower(), entry.name


def _iso_spellings():
    import pycountry

    pairs = []
    for entry in pycountry.countries:
        for attribute in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            value = getattr(entry, attribute, None)
            if value:
                pairs.append((value, entry.alpha_2.lower()))
    return pairs


@settings(max_examples=300, deadline=None)
@given(
    pair=st.sampled_from(_iso_spellings()),
    case=st.lists(st.booleans(), min_size=1, max_size=80),
    left=st.sampled_from(["", " ", "  ", "\t", " \n"]),
    right=st.sampled_from(["", " ", "  ", "\t", "\r\n"]),
)
def test_any_iso_spelling_in_any_case_maps_to_its_alpha2(pair, case, left, right):
    text, code = pair
    cased = "".join(ch.upper() if case[i % len(case)] else ch.lower() for i, ch in enumerate(text))
    result = ids.country(pd.Series([left + cased + right]))
    assert values(result) == [code]
    assert invalid(result) == [False]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([*UCI_COUNTRIES, "  uk ", None, "", "XX"]), max_size=40))
def test_country_is_the_same_row_by_row_and_in_bulk(raw):
    bulk = values(ids.country(raw))
    assert bulk == [values(ids.country([v]))[0] for v in raw]


def test_unrecognised_counts_each_value_and_hides_personal_data():
    raw = pd.Series(["Unspecified", "gb", "Unspecified", " European Community ", None,
                     "jane@example.com", "+44 20 7183 8750", "x" * 60])  # fmt: skip
    _, bad = ids.country(raw)
    counts = ids.unrecognised(raw, bad)
    assert counts == {
        "<redacted>": 2,
        "Unspecified": 2,
        "European Community": 1,
        "x" * 39 + "…": 1,
    }
    assert ids.unrecognised(raw, np.zeros(len(raw), dtype=bool)) == {}
