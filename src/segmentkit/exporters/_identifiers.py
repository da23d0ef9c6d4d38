"""Normalisation and hashing of match identifiers (e-mail, phone, names, address...).

One function per rule. Each takes the raw values as a pandas Series (or anything a
Series can be built from) and returns ``(normalised, invalid)``:

- ``normalised`` is a Series of ``str`` with ``<NA>`` where there is no usable value,
  on the input's index;
- ``invalid`` is a boolean array marking the non-empty raw values that could not be
  normalised (an e-mail without ``@``). Missing and blank raw values are neither valid
  nor invalid.

The rules follow the platforms' published normalisation tables (Meta Custom Audiences,
Google Customer Match), not their SDKs' helpers, which deviate from them.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers

__all__ = [
    "birth_parts",
    "city",
    "country",
    "email",
    "first_initial",
    "gender",
    "md5_hex",
    "name",
    "phone_digits",
    "phone_e164",
    "postal_code",
    "prehashed",
    "region",
    "sha256_hex",
    "unrecognised",
]

Result = tuple[pd.Series, np.ndarray]

_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_US_ZIP = re.compile(r"(\d{5})(?:-?\d{4})?")
_WORD = re.compile(r"[^\W_]+")

#: Spellings a store's export uses that pycountry (ISO 3166 names and codes) lacks:
#: native names of the countries the library's stores sell in, constituent countries,
#: customary abbreviations and former or short names. Keys are read through
#: ``_country_key``, so case, accents, punctuation and a leading "the" do not matter.
#: Left out on purpose, so that they are reported rather than guessed: "Channel
#: Islands" (Jersey JE and Guernsey GG are two ISO countries, and neither is part of
#: the UK), "West Indies", "European Community"/"European Union"/"EU", "Unspecified",
#: and "Kosovo" (no ISO 3166 code; "XK" is user-assigned).
_COUNTRY_ALIASES = {
    # United Kingdom: the ISO code is GB, the usual abbreviation UK (ISO reserves it for GB).
    "UK": "GB", "U.K.": "GB", "Great Britain": "GB", "Britain": "GB", "England": "GB",
    "Scotland": "GB", "Wales": "GB", "Northern Ireland": "GB",
    "United States of America": "US", "U.S.A.": "US",
    "Eire": "IE", "Republic of Ireland": "IE",
    "RSA": "ZA", "Republic of South Africa": "ZA",
    "UAE": "AE",
    # Native names of the Nordic, Baltic and central European markets.
    "Suomi": "FI", "Sverige": "SE", "Norge": "NO", "Noreg": "NO", "Danmark": "DK",
    "Ísland": "IS", "Føroyar": "FO", "Eesti": "EE", "Latvija": "LV", "Lietuva": "LT",
    "Polska": "PL", "Deutschland": "DE", "Österreich": "AT", "Schweiz": "CH",
    "Suisse": "CH", "Svizzera": "CH", "Nederland": "NL", "Holland": "NL",
    "Belgique": "BE", "België": "BE", "Belgien": "BE", "Česko": "CZ",
    "Česká republika": "CZ", "Slovensko": "SK", "Magyarország": "HU", "Hrvatska": "HR",
    "Slovenija": "SI", "España": "ES", "Italia": "IT", "Hellas": "GR", "Ellada": "GR",
    "Ελλάδα": "GR", "Κύπρος": "CY", "Россия": "RU", "Україна": "UA",
    # Short and former names.
    "Russia": "RU", "Turkey": "TR", "Korea": "KR", "Republic of Korea": "KR",
    "DPRK": "KP", "Macedonia": "MK", "Ivory Coast": "CI", "Swaziland": "SZ",
    "Cape Verde": "CV", "Burma": "MM", "Vatican": "VA", "Vatican City": "VA",
    "Holy See": "VA", "Palestine": "PS", "Brunei": "BN", "Micronesia": "FM",
    "DR Congo": "CD", "DRC": "CD", "Democratic Republic of Congo": "CD",
    "Republic of Congo": "CG", "Congo-Brazzaville": "CG", "Congo-Kinshasa": "CD",
    "East Timor": "TL", "Macau": "MO", "Falkland Islands": "FK",
    "British Virgin Islands": "VG", "US Virgin Islands": "VI", "Vietnam": "VN",
    "Laos": "LA", "Syria": "SY", "Iran": "IR", "Bolivia": "BO", "Venezuela": "VE",
    "Tanzania": "TZ", "Moldova": "MD", "Taiwan": "TW", "Czech Republic": "CZ",
    "Sao Tome": "ST", "St Kitts": "KN", "St Vincent": "VC", "Saint Vincent": "VC",
    "Reunion": "RE", "Curacao": "CW",
}  # fmt: skip

_US_STATES = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
    "colorado": "co", "connecticut": "ct", "delaware": "de", "districtofcolumbia": "dc",
    "florida": "fl", "georgia": "ga", "hawaii": "hi", "idaho": "id", "illinois": "il",
    "indiana": "in", "iowa": "ia", "kansas": "ks", "kentucky": "ky", "louisiana": "la",
    "maine": "me", "maryland": "md", "massachusetts": "ma", "michigan": "mi",
    "minnesota": "mn", "mississippi": "ms", "missouri": "mo", "montana": "mt",
    "nebraska": "ne", "nevada": "nv", "newhampshire": "nh", "newjersey": "nj",
    "newmexico": "nm", "newyork": "ny", "northcarolina": "nc", "northdakota": "nd",
    "ohio": "oh", "oklahoma": "ok", "oregon": "or", "pennsylvania": "pa",
    "rhodeisland": "ri", "southcarolina": "sc", "southdakota": "sd", "tennessee": "tn",
    "texas": "tx", "utah": "ut", "vermont": "vt", "virginia": "va", "washington": "wa",
    "westvirginia": "wv", "wisconsin": "wi", "wyoming": "wy", "puertorico": "pr",
    "guam": "gu", "americansamoa": "as", "virginislands": "vi",
    "usvirginislands": "vi", "northernmarianaislands": "mp",
}  # fmt: skip
_US_CODES = frozenset(_US_STATES.values()) | {"aa", "ae", "ap", "um"}


# ---------------------------------------------------------------------------- helpers


def _series(values: Any) -> pd.Series:
    """The values as an object Series, blanks and missing values as ``None``."""
    if isinstance(values, pd.Series):
        index, items = values.index, values.astype(object).tolist()
    else:
        items = list(values)
        index = pd.RangeIndex(len(items))
    return pd.Series([_blank_to_none(v) for v in items], index=index, dtype=object)


def _blank_to_none(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (float, np.floating)) and np.isnan(v):
        return None
    if isinstance(v, str):
        return v if v.strip() else None
    return v


def _apply(values: Any, rule: Callable[[Any], str | None]) -> Result:
    """Apply a per-value rule (``None`` = invalid) to the non-missing values."""
    s = _series(values)
    present = s.notna().to_numpy()
    out = pd.Series(pd.NA, index=s.index, dtype="string")
    if present.any():
        raw = s[present]
        uniques = pd.unique(raw.astype(str).to_numpy())
        table = {u: rule(u) for u in uniques}
        normalised = raw.astype(str).map(table)
        out[present] = normalised.astype("string")
    invalid = present & out.isna().to_numpy()
    return out, invalid


def _countries(countries: Any, n: int, index: pd.Index) -> pd.Series:
    """Normalised country codes aligned with the values (``<NA>`` when unknown)."""
    if countries is None:
        return pd.Series(pd.NA, index=index, dtype="string")
    codes, _ = country(countries)
    codes = codes.reset_index(drop=True)
    if len(codes) != n:
        msg = f"countries has {len(codes)} values for {n} identifiers; pass one per row."
        raise ValueError(msg)
    codes.index = index
    return codes


def _letters(text: str, keep_digits: bool = False) -> str:
    """Lowercase Unicode letters (and digits) of ``text``, NFC, until stable."""
    previous = None
    while text != previous:
        previous = text
        text = unicodedata.normalize("NFC", text).lower()
        text = "".join(
            ch
            for ch in text
            if unicodedata.category(ch).startswith("L")
            or (keep_digits and unicodedata.category(ch) == "Nd")
        )
        text = unicodedata.normalize("NFC", text)
    return text


# ------------------------------------------------------------------------------ rules


def _email_rule(raw: str) -> str | None:
    value = raw.strip().lower()
    return value if _EMAIL.fullmatch(value) else None


def email(values: Any) -> Result:
    """E-mail addresses: trimmed and lowercased.

    Invalid unless there is exactly one ``@`` with a non-empty local part, a dotted
    domain and no whitespace inside. Gmail dots and ``+tags`` are kept: neither Meta nor
    Google Customer Match requires removing them.
    """
    return _apply(values, _email_rule)


def _phone(values: Any, countries: Any, default_region: str, plus: bool) -> Result:
    s = _series(values)
    regions = _countries(countries, len(s), s.index)
    default = default_region.upper()
    out = pd.Series(pd.NA, index=s.index, dtype="string")
    invalid = np.zeros(len(s), dtype=bool)
    cache: dict[tuple[str, str], str | None] = {}
    for i, (raw, region_code) in enumerate(zip(s.to_numpy(), regions.to_numpy(), strict=True)):
        if raw is None:
            continue
        reg = default if region_code is pd.NA or region_code is None else str(region_code)
        key = (str(raw), reg.upper())
        if key not in cache:
            cache[key] = _phone_rule(*key)
        value = cache[key]
        if value is None:
            invalid[i] = True
        else:
            out.iloc[i] = value if plus else value[1:]
    return out, invalid


def _phone_rule(raw: str, region_code: str) -> str | None:
    try:
        number = phonenumbers.parse(raw.strip(), region_code)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # A trunk '0' written after the country code ('+31 0...') is dropped when read,
    # so a number made of little else reads back shorter each time: such a number is
    # ambiguous, and only a form that reads back as itself is sent.
    if (
        phonenumbers.format_number(
            phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.E164
        )
        != e164
    ):
        return None
    return e164


def phone_e164(values: Any, countries: Any = None, default_region: str = "US") -> Result:
    """Phone numbers in E.164 with the leading ``+`` (Google Customer Match).

    Numbers without an international prefix are read in the row's country (ISO
    alpha-2, from ``countries``) or else ``default_region``. Invalid when the number
    cannot be parsed or is not a possible number for its country.
    """
    return _phone(values, countries, default_region, plus=True)


def phone_digits(values: Any, countries: Any = None, default_region: str = "US") -> Result:
    """Phone numbers as E.164 digits without ``+`` (Meta), e.g. ``'16505550123'``."""
    return _phone(values, countries, default_region, plus=False)


def _name_rule(raw: str) -> str | None:
    return _letters(raw) or None


def name(values: Any) -> Result:
    """First or last names (Meta FN/LN): lowercase letters only, Unicode kept, NFC.

    Spaces, punctuation and digits are removed (``"O'Brien-Smith"`` → ``'obriensmith'``,
    ``'José'`` → ``'josé'``). Invalid when nothing is left.
    """
    return _apply(values, _name_rule)


def first_initial(values: Any) -> Result:
    """First initial of a first name (Meta FI): the first letter of :func:`name`."""
    normalised, invalid = name(values)
    return normalised.str.slice(0, 1).astype("string"), invalid


def city(values: Any) -> Result:
    """Cities (Meta CT): lowercase letters only, no spaces or punctuation.

    ``'San Francisco'`` → ``'sanfrancisco'``; Unicode letters are kept (``'Kraków'`` →
    ``'kraków'``).
    """
    return _apply(values, _name_rule)


def region(values: Any, countries: Any = None) -> Result:
    """States or regions (Meta ST).

    In the US the two-letter code, lowercase (full state names are translated:
    ``'California'`` → ``'ca'``); elsewhere lowercase letters and digits, without
    punctuation or spaces. Invalid for a US value that is no state or territory.
    """
    s = _series(values)
    codes = _countries(countries, len(s), s.index)
    is_us = (codes == "us").fillna(False).to_numpy(dtype=bool)
    general, invalid = _apply(s, lambda raw: _letters(raw, keep_digits=True) or None)
    us_values, us_invalid = _apply(s, _us_state_rule)
    out = general.where(~is_us, us_values)
    return out.astype("string"), np.where(is_us, us_invalid, invalid)


def _us_state_rule(raw: str) -> str | None:
    value = _letters(raw)
    if value in _US_CODES:
        return value
    return _US_STATES.get(value)


def postal_code(values: Any, countries: Any = None) -> Result:
    """Postal codes (Meta ZIP): lowercase without whitespace.

    US: the first five digits (``'94105-1234'`` → ``'94105'``; invalid unless it is a
    ZIP or ZIP+4). Elsewhere as given without whitespace (UK ``'M1 1AE'`` → ``'m11ae'``).
    """
    s = _series(values)
    codes = _countries(countries, len(s), s.index)
    is_us = (codes == "us").fillna(False).to_numpy(dtype=bool)
    general, invalid = _apply(s, lambda raw: re.sub(r"\s+", "", raw).lower() or None)
    us_values, us_invalid = _apply(s, _us_zip_rule)
    out = general.where(~is_us, us_values)
    return out.astype("string"), np.where(is_us, us_invalid, invalid)


def _us_zip_rule(raw: str) -> str | None:
    match = _US_ZIP.fullmatch(re.sub(r"\s+", "", raw))
    return match.group(1) if match else None


def _country_key(text: str) -> str:
    """``text`` reduced to what tells countries apart: letters and digits, casefolded,
    accents removed, ``&`` read as "and", "St" as "Saint" and the word "the" dropped
    (``' The Bahamas '``, ``'BAHAMAS'`` → ``'bahamas'``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    words = _WORD.findall(plain.replace("&", " and "))
    return "".join("saint" if w == "st" else w for w in words if w != "the")


@functools.lru_cache(maxsize=1)
def _country_table() -> dict[str, str]:
    """Every key :func:`_country_key` makes of an ISO 3166-1 code or name → alpha-2.

    Built once from pycountry (alpha-2, alpha-3, name, official and common name) and the
    alias table. A key that would name two countries is dropped rather than guessed
    (none does in pycountry 24 to 26; the test suite checks it).
    """
    import pycountry

    table: dict[str, str] = {}
    clashes: set[str] = set()

    def add(text: str, code: str) -> None:
        key = _country_key(text)
        if table.get(key, code) != code:
            clashes.add(key)
        table[key] = code

    for entry in pycountry.countries:
        for attribute in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            value = getattr(entry, attribute, None)
            if value:
                add(value, entry.alpha_2)
    for text, code in _COUNTRY_ALIASES.items():
        add(text, code)
    for key in clashes:
        del table[key]
    return {key: code.lower() for key, code in table.items()}


def _country_rule(raw: str) -> str | None:
    return _country_table().get(_country_key(raw))


def country(values: Any) -> Result:
    """Countries as lowercase ISO 3166-1 alpha-2 codes (``'United Kingdom'`` → ``'gb'``).

    Read: ISO 3166-1 alpha-2 and alpha-3 codes and the country's ISO names (short,
    official and common, from pycountry), plus common spellings ISO lacks — ``'UK'``,
    ``'England'``, ``'EIRE'``, ``'RSA'``, ``'USA'`` and native names such as
    ``'Suomi'``, ``'Sverige'``, ``'Polska'``, ``'Deutschland'`` — in any case, with
    or without accents, punctuation and surrounding spaces. Invalid: anything naming
    no single country (``'European Community'``, ``'Channel Islands'``,
    ``'Unspecified'``, an unassigned code such as ``'XX'``).

    Examples
    --------
    >>> from segmentkit.exporters import _identifiers as ids
    >>> codes, invalid = ids.country(["United Kingdom", " eire", "Suomi", "EU"])
    >>> codes.tolist(), invalid.tolist()
    (['gb', 'ie', 'fi', <NA>], [False, False, False, True])
    """
    return _apply(values, _country_rule)


def unrecognised(values: Any, invalid: np.ndarray) -> dict[str, int]:
    """How many rows hold each raw value flagged ``invalid``, most frequent first.

    For values that are safe to show, such as countries: a value that looks like an
    e-mail address or a phone number (an ``@``, or five digits or more) is shown as
    ``'<redacted>'``, and long values are cut to 40 characters.
    """
    s = _series(values)
    bad = s[np.asarray(invalid, dtype=bool)].astype(str).str.strip()
    if bad.empty:
        return {}
    shown = bad.where(~bad.str.contains(r"@|(?:\d\D*){5}", regex=True), "<redacted>")
    shown = shown.where(shown.str.len() <= 40, shown.str.slice(0, 39) + "…")
    counts = shown.value_counts(sort=False)
    ordered = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))
    return {str(value): int(n) for value, n in ordered}


_GENDERS = {"m": "m", "male": "m", "f": "f", "female": "f"}


def gender(values: Any) -> Result:
    """Gender (Meta GEN): ``'m'`` or ``'f'`` from m/f/male/female, any case.

    Other values are invalid (they cannot be sent, not that they are wrong).
    """
    return _apply(values, lambda raw: _GENDERS.get(raw.strip().lower()))


def birth_parts(dates: Any) -> tuple[pd.DataFrame, np.ndarray]:
    """Birth dates split into Meta's DOBY / DOBM / DOBD.

    Returns
    -------
    parts : pandas.DataFrame
        Columns ``year`` (``'YYYY'``), ``month`` (``'MM'``) and ``day`` (``'DD'``),
        strings or ``<NA>``.
    invalid : numpy.ndarray of bool
        Non-empty values that are no date, or whose year is outside 1900 to now.
    """
    s = _series(dates)
    present = s.notna().to_numpy()
    parsed = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    for i, value in enumerate(s.to_numpy()):
        if value is None:
            continue
        try:
            stamp = (
                pd.Timestamp(value)
                if isinstance(value, (date, datetime, pd.Timestamp, np.datetime64))
                else pd.Timestamp(str(value).strip())
            )
        except (ValueError, TypeError, OverflowError):
            continue
        if stamp is not pd.NaT and 1900 <= stamp.year <= pd.Timestamp.now().year:
            parsed.iloc[i] = stamp.tz_localize(None) if stamp.tzinfo else stamp
    ok = parsed.notna().to_numpy()
    parts = pd.DataFrame(
        {
            "year": parsed.dt.strftime("%Y").astype("string"),
            "month": parsed.dt.strftime("%m").astype("string"),
            "day": parsed.dt.strftime("%d").astype("string"),
        },
        index=s.index,
    )
    parts[~ok] = pd.NA
    return parts, present & ~ok


# ---------------------------------------------------------------------------- hashing


def _hash(values: Any, digest: Callable[[bytes], Any], passthrough: bool) -> pd.Series:
    s = values if isinstance(values, pd.Series) else pd.Series(list(values))
    present = s.notna().to_numpy()
    out = pd.Series(pd.NA, index=s.index, dtype="string")
    if present.any():
        table: dict[str, str] = {}
        for value in pd.unique(s[present].astype(str).to_numpy()):
            if passthrough and _HEX64.fullmatch(value):
                table[value] = value.lower()
            else:
                table[value] = digest(value.encode("utf-8")).hexdigest()
        out[present] = s[present].astype(str).map(table).astype("string")
    return out


def prehashed(values: Any, result: Result | None = None) -> Result:
    """Keep values that already are SHA-256 hashes (64 hex digits) as they are.

    Profiles sometimes hold hashed e-mails or phones; a rule would call them invalid.
    Given the raw ``values`` and a rule's ``result`` on them, returns the result with
    those values restored (lowercased) and not counted invalid; without ``result``,
    returns the hashes alone and an all-false ``invalid``.
    """
    s = _series(values)
    mask = s.map(lambda v: isinstance(v, str) and bool(_HEX64.fullmatch(v.strip()))).to_numpy(
        dtype=bool
    )
    if result is None:
        out = pd.Series(pd.NA, index=s.index, dtype="string")
        invalid = np.zeros(len(s), dtype=bool)
    else:
        out, invalid = result[0].copy(), result[1].copy()
    if mask.any():
        out[mask] = s[mask].astype(str).str.strip().str.lower().astype("string")
        invalid[mask] = False
    return out, invalid


def sha256_hex(values: Any) -> pd.Series:
    """SHA-256 of each value's UTF-8 bytes, lowercase hex; ``<NA>`` stays ``<NA>``.

    Values that already are 64 hex digits are taken as hashes and passed through
    lowercased, not hashed again. Normalise before hashing.
    """
    return _hash(values, hashlib.sha256, passthrough=True)


def md5_hex(values: Any) -> pd.Series:
    """MD5 of each value's UTF-8 bytes, lowercase hex (Mailchimp's subscriber hash of a
    normalised e-mail); ``<NA>`` stays ``<NA>``."""
    return _hash(values, hashlib.md5, passthrough=False)
