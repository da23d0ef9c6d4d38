"""Meta Custom Audiences and Google Customer Match builders against the reference payloads."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segmentkit as sk
from _vectors import SHA256
from segmentkit.exporters._google_ads import build_google_ads
from segmentkit.exporters._meta import build_meta

H = SHA256
RAW_EMAILS = ["  Jane.Doe@Gmail.com ", "Bob.Smith+promo@Example.co.uk"]
RAW_PHONES = ["+1 (650) 555-0123", "+44 20 7183 8750"]
PROFILE_COLUMNS = [
    "customer_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "city",
    "region",
    "postal_code",
    "country",
    "consent_ads",
]


def make_customers(frame: pd.DataFrame) -> sk.Customers:
    return sk.Customers.from_frame(frame, **{c: c for c in frame.columns})


def make_segmentation(ids: list[str], in_segment: list[bool] | None = None) -> sk.Segmentation:
    flags = in_segment if in_segment is not None else [True] * len(ids)
    features = sk.CustomerFeatures.from_frame(
        pd.DataFrame({"customer_id": ids, "monetary": [200.0 if f else 1.0 for f in flags]}),
        as_of="2026-11-24",
    )
    segmenter = sk.RuleSegmenter(rules=[("Big", lambda frame: frame["monetary"] > 100)])
    return segmenter.fit_predict(features)


@pytest.fixture
def reference_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["cust-001", "cust-002"],
            "email": RAW_EMAILS,
            "phone": RAW_PHONES,
            "first_name": ["Jane", "Bob"],
            "last_name": ["Doe", "Smith"],
            "city": ["San Francisco", "London"],
            "region": ["CA", None],
            "postal_code": ["94105-1234", "M1 1AE"],
            "country": ["US", "GB"],
            "consent_ads": [True, True],
        }
    )


@pytest.fixture
def reference(reference_frame):
    return make_segmentation(["cust-001", "cust-002"]), make_customers(reference_frame)


# ------------------------------------------------------------------------------ Meta

META_EXAMPLE = {
    "payload": {
        "schema": ["EMAIL", "PHONE", "FN", "LN", "CT", "ST", "ZIP", "COUNTRY", "EXTERN_ID"],
        "is_raw": True,
        "data": [
            [
                H["jane.doe@gmail.com"],
                H["16505550123"],
                H["jane"],
                H["doe"],
                H["sanfrancisco"],
                H["ca"],
                H["94105"],
                H["us"],
                "cust-001",
            ],
            [
                H["bob.smith+promo@example.co.uk"],
                H["442071838750"],
                H["bob"],
                H["smith"],
                H["london"],
                "",
                H["m11ae"],
                H["gb"],
                "cust-002",
            ],
        ],
    },
    "session": {
        "session_id": 9778993,
        "batch_seq": 1,
        "last_batch_flag": True,
        "estimated_num_total": 2,
    },
}


def test_meta_reproduces_the_reference_example(reference):
    segmentation, customers = reference
    export = build_meta(
        segmentation, "Big", customers, audience_id="23850000000000001", session_id=9778993
    )
    (request,) = export.requests
    assert request.method == "POST"
    assert request.path == "/v25.0/23850000000000001/users"
    assert request.body == META_EXAMPLE
    assert request.n_customers == 2
    report = export.report
    assert (report.members, report.exported, report.batches) == (2, 2, 1)
    assert report.identifiers == {
        "EMAIL": 2,
        "PHONE": 2,
        "FN": 2,
        "LN": 2,
        "CT": 2,
        "ST": 1,
        "ZIP": 2,
        "COUNTRY": 2,
        "EXTERN_ID": 2,
    }
    assert sum(report.invalid_values.values()) == 0


def test_meta_remove_and_replace_paths(reference):
    segmentation, customers = reference
    remove = build_meta(segmentation, "Big", customers, audience_id=42, operation="remove")
    replace = build_meta(segmentation, "Big", customers, audience_id=42, operation="replace")
    assert (remove.requests[0].method, remove.requests[0].path) == ("DELETE", "/v25.0/42/users")
    assert (replace.requests[0].method, replace.requests[0].path) == (
        "POST",
        "/v25.0/42/usersreplace",
    )
    assert remove.requests[0].body["payload"] == META_EXAMPLE["payload"]
    assert replace.report.operation == "replace"
    with pytest.raises(ValueError, match="operation"):
        build_meta(segmentation, "Big", customers, audience_id=42, operation="upsert")


def test_meta_session_id_is_deterministic_positive_and_content_bound(reference):
    segmentation, customers = reference
    first = build_meta(segmentation, "Big", customers, audience_id=42)
    again = build_meta(segmentation, "Big", customers, audience_id=42)
    other = build_meta(segmentation, "Big", customers, audience_id=43)
    session = first.requests[0].body["session"]["session_id"]
    assert 0 < session < 2**63
    assert session == again.requests[0].body["session"]["session_id"]
    assert session != other.requests[0].body["session"]["session_id"]
    assert first.to_json() == again.to_json()


def test_meta_schema_follows_the_available_columns(reference_frame):
    frame = reference_frame[["customer_id", "email", "consent_ads"]]
    segmentation = make_segmentation(["cust-001", "cust-002"])
    export = build_meta(segmentation, "Big", make_customers(frame), audience_id=1)
    payload = export.requests[0].body["payload"]
    assert payload["schema"] == ["EMAIL", "EXTERN_ID"]
    assert payload["data"][0] == [H["jane.doe@gmail.com"], "cust-001"]


def test_meta_already_hashed_values_are_sent_as_they_are(reference_frame):
    frame = reference_frame.copy()
    frame.loc[0, "email"] = H["jane.doe@gmail.com"].upper()
    segmentation = make_segmentation(["cust-001", "cust-002"])
    export = build_meta(segmentation, "Big", make_customers(frame), audience_id=1)
    assert export.requests[0].body["payload"]["data"][0][0] == H["jane.doe@gmail.com"]
    assert export.report.invalid_values["EMAIL"] == 0


# ----------------------------------------------------------------------------- Google

GOOGLE_EXAMPLE = {
    "enablePartialFailure": True,
    "operations": [
        {
            "create": {
                "userIdentifiers": [
                    {"hashedEmail": H["jane.doe@gmail.com"]},
                    {"hashedPhoneNumber": H["+16505550123"]},
                    {
                        "addressInfo": {
                            "hashedFirstName": H["jane"],
                            "hashedLastName": H["doe"],
                            "countryCode": "US",
                            "postalCode": "94105",
                        }
                    },
                ]
            }
        },
        {
            "create": {
                "userIdentifiers": [
                    {"hashedEmail": H["bob.smith+promo@example.co.uk"]},
                    {"hashedPhoneNumber": H["+442071838750"]},
                ]
            }
        },
    ],
}


def test_google_reproduces_the_reference_example(reference_frame):
    # The reference example gives Bob no addressInfo although his profile has all four
    # parts; the rule "addressInfo when first name, last name, country and postal code
    # are known" then needs his postal code absent to give exactly that payload.
    frame = reference_frame.copy()
    frame.loc[1, "postal_code"] = None
    segmentation = make_segmentation(["cust-001", "cust-002"])
    export = build_google_ads(
        segmentation,
        "Big",
        make_customers(frame),
        customer_id="123-456-7890",
        job_id=555,
        user_list_id=777,
    )
    create, add, run = export.requests
    assert (create.method, create.path) == (
        "POST",
        "/v26/customers/1234567890/offlineUserDataJobs:create",
    )
    assert create.body == {
        "job": {
            "type": "CUSTOMER_MATCH_USER_LIST",
            "customerMatchUserListMetadata": {
                "userList": "customers/1234567890/userLists/777",
                "consent": {"adUserData": "GRANTED", "adPersonalization": "GRANTED"},
            },
        }
    }
    assert (add.method, add.path) == (
        "POST",
        "/v26/customers/1234567890/offlineUserDataJobs/555:addOperations",
    )
    assert add.body == GOOGLE_EXAMPLE
    assert (run.method, run.path, run.body) == (
        "POST",
        "/v26/customers/1234567890/offlineUserDataJobs/555:run",
        {},
    )
    assert export.report.identifiers == {
        "hashedEmail": 2,
        "hashedPhoneNumber": 2,
        "addressInfo": 1,
    }


def test_google_complete_uk_address_is_sent(reference):
    segmentation, customers = reference
    export = build_google_ads(
        segmentation, "Big", customers, customer_id=1, job_id=2, user_list_id=3
    )
    bob = export.requests[1].body["operations"][1]["create"]["userIdentifiers"]
    assert bob[2] == {
        "addressInfo": {
            "hashedFirstName": H["bob"],
            "hashedLastName": H["smith"],
            "countryCode": "GB",
            "postalCode": "M1 1AE",
        }
    }


def test_google_remove_and_remove_all(reference):
    segmentation, customers = reference
    kwargs = {"customer_id": 1, "job_id": 2, "user_list_id": 3}
    remove = build_google_ads(segmentation, "Big", customers, operation="remove", **kwargs)
    operations = remove.requests[1].body["operations"]
    assert [list(op) for op in operations] == [["remove"], ["remove"]]
    assert operations[0]["remove"] == GOOGLE_EXAMPLE["operations"][0]["create"]
    clear = build_google_ads(segmentation, "Big", customers, operation="remove_all", **kwargs)
    assert [r.path.rsplit(":", 1)[1] for r in clear.requests] == [
        "create",
        "addOperations",
        "run",
    ]
    assert clear.requests[1].body == {
        "enablePartialFailure": True,
        "operations": [{"removeAll": True}],
    }
    assert clear.report.exported == 0


@pytest.mark.parametrize("field", ["ad_user_data", "ad_personalization"])
def test_google_refuses_denied_consent(reference, field):
    segmentation, customers = reference
    with pytest.raises(ValueError, match="Customer Match refuses"):
        build_google_ads(
            segmentation,
            "Big",
            customers,
            customer_id=1,
            job_id=2,
            user_list_id=3,
            **{field: "DENIED"},
        )


# --------------------------------------------------------------------- both builders


def build_both(segmentation, customers, **kwargs):
    meta = build_meta(segmentation, "Big", customers, audience_id=1, **kwargs)
    google = build_google_ads(
        segmentation, "Big", customers, customer_id=1, job_id=2, user_list_id=3, **kwargs
    )
    return meta, google


def test_no_raw_email_or_phone_in_the_exports(reference):
    for export in build_both(*reference):
        text = export.to_json()
        for raw in RAW_EMAILS + RAW_PHONES:
            assert raw.strip() not in text
            assert raw.strip().lower() not in text
        for normalised in ["jane.doe@gmail.com", "16505550123", "+442071838750", "Doe"]:
            assert normalised not in text
        json.loads(text)


def test_exclusions_are_counted_and_add_up():
    frame = pd.DataFrame(
        {
            "customer_id": ["ok", "no-consent", "suppressed", "no-id", "bad-email", "other"],
            "email": ["a@b.com", "c@d.com", "e@f.com", None, "not-an-email", "g@h.com"],
            "phone": [None, None, None, "123", None, None],
            "first_name": ["A", "B", "C", "D", "E", "F"],
            "last_name": ["Z", "Y", "X", None, "V", "U"],
            "postal_code": ["94105", None, None, None, None, None],
            "country": ["US", "US", "US", "US", "US", "US"],
            "consent_ads": [True, False, True, True, True, True],
        }
    )
    ids = ["ok", "no-consent", "suppressed", "no-id", "bad-email", "other", "ghost"]
    segmentation = make_segmentation(ids, [True] * 5 + [False, True])
    meta, google = build_both(segmentation, make_customers(frame), suppression=["suppressed"])
    expected = {"no_profile": 1, "suppressed": 1, "no_consent": 1, "no_usable_identifier": 2}
    for export in (meta, google):
        report = export.report
        assert report.members == 6
        assert dict(report.excluded) == expected
        assert report.exported == 1
        assert report.exported + sum(report.excluded.values()) == report.members
    assert meta.report.invalid_values["EMAIL"] == 1
    assert meta.report.invalid_values["PHONE"] == 1
    assert google.report.invalid_values["email"] == 1
    assert google.report.invalid_values["phone"] == 1
    assert meta.requests[0].body["payload"]["data"][0][-1] == "ok"
    assert len(google.requests[1].body["operations"]) == 1
    frame_ = meta.report.to_frame()
    assert frame_["customers"].sum() == 6


def test_nothing_to_send_builds_no_request(reference_frame):
    frame = reference_frame.assign(consent_ads=[False, False])
    meta, google = build_both(make_segmentation(["cust-001", "cust-002"]), make_customers(frame))
    assert meta.requests == ()
    assert google.requests == ()
    assert meta.report.excluded["no_consent"] == 2 == google.report.excluded["no_consent"]


def many_customers(n: int, seed: int) -> pd.DataFrame:
    rng = pd.Series(range(n)).sample(frac=1.0, random_state=seed).tolist()
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "email": [f"user{i}@example.com" if rng[i] % 4 else None for i in range(n)],
            "phone": [f"+1650555{i % 10000:04d}" if rng[i] % 3 else None for i in range(n)],
            "first_name": ["Ann"] * n,
            "last_name": ["Lee" if rng[i] % 2 else None for i in range(n)],
            "postal_code": ["94105"] * n,
            "country": ["US"] * n,
            "consent_ads": [True] * n,
        }
    )


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=60),
    batch_size=st.integers(min_value=1, max_value=15),
    max_identifiers=st.integers(min_value=20, max_value=45),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_batches_never_exceed_the_limits(n, batch_size, max_identifiers, seed):
    frame = many_customers(n, seed)
    segmentation = make_segmentation(frame["customer_id"].tolist())
    customers = make_customers(frame)
    meta = build_meta(segmentation, "Big", customers, audience_id=1, batch_size=batch_size)
    rows = [r.body["payload"]["data"] for r in meta.requests]
    assert all(1 <= len(r) <= batch_size for r in rows)
    assert sum(len(r) for r in rows) == meta.report.exported
    sessions = [r.body["session"] for r in meta.requests]
    assert [s["batch_seq"] for s in sessions] == list(range(1, len(sessions) + 1))
    flags = [s["last_batch_flag"] for s in sessions]
    assert flags == ([False] * (len(sessions) - 1) + [True] if sessions else [])
    assert len({s["session_id"] for s in sessions}) == min(1, len(sessions))
    assert all(s["estimated_num_total"] == meta.report.exported for s in sessions)

    google = build_google_ads(
        segmentation,
        "Big",
        customers,
        customer_id=1,
        job_id=2,
        user_list_id=3,
        max_identifiers=max_identifiers,
    )
    assert len(google.requests) == (len(google.requests[1:-1]) + 2 if meta.requests else 0)
    adds = google.requests[1:-1]
    users = [op["create"]["userIdentifiers"] for r in adds for op in r.body["operations"]]
    for request in adds:
        count = sum(len(op["create"]["userIdentifiers"]) for op in request.body["operations"])
        assert 1 <= count <= max_identifiers
    assert all(1 <= len(u) <= 20 for u in users)
    assert len(users) == google.report.exported == meta.report.exported
    assert sum(r.n_customers for r in adds) == google.report.exported


def _google_handler(calls, fail_first_add=None):
    import httpx

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("offlineUserDataJobs:create"):
            return httpx.Response(
                200, json={"resourceName": "customers/1234567890/offlineUserDataJobs/999"}
            )
        if request.url.path.endswith(":addOperations") and fail_first_add:
            fail_first_add.pop()
            return httpx.Response(400, json={"error": {"message": "simulated stop"}})
        return httpx.Response(200, json={})

    return handle


def test_push_fills_in_the_job_google_names_on_create_even_after_a_restart(reference, tmp_path):
    import httpx

    from segmentkit.exporters import Credentials, PushError, push

    segmentation, customers = reference
    export = build_google_ads(
        segmentation, "Big", customers, customer_id="123-456-7890", user_list_id="42"
    )
    assert "{job}" in export.requests[1].path
    credentials = Credentials(
        "google_ads", token="tok-secret-123", developer_token="dev-token-456"
    )
    journal = tmp_path / "google.journal"
    calls: list[str] = []
    client = httpx.Client(transport=httpx.MockTransport(_google_handler(calls, [True])))
    with pytest.raises(PushError, match="simulated stop"):
        push(export, credentials=credentials, journal=journal, client=client, base_url="http://x")
    calls.clear()
    client = httpx.Client(transport=httpx.MockTransport(_google_handler(calls)))
    summary = push(
        export, credentials=credentials, journal=journal, client=client, base_url="http://x"
    )
    assert summary.skipped_already_acknowledged == 1  # the :create is not sent again
    assert calls == [
        "/v26/customers/1234567890/offlineUserDataJobs/999:addOperations",
        "/v26/customers/1234567890/offlineUserDataJobs/999:run",
    ]


def test_no_raw_email_or_phone_in_push_logs_summary_or_report(reference, caplog):
    import httpx

    from segmentkit.exporters import Credentials, push

    segmentation, customers = reference
    export = build_meta(segmentation, "Big", customers, audience_id="238500")
    answers = iter([httpx.Response(500, json={"error": "busy"}), httpx.Response(200, json={})])
    client = httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))
    with caplog.at_level("INFO", logger="segmentkit.push"):
        summary = push(
            export,
            credentials=Credentials("meta", token="meta-secret-token"),
            client=client,
            base_url="http://x",
            backoff=0.0,
        )
    seen = " ".join([caplog.text, str(summary), str(export.report), export.to_json()]).lower()
    assert summary.retries == 1
    for raw in ("jane.doe@gmail.com", "bob.smith+promo", "6505550123", "2071838750", "555-0123"):
        assert raw not in seen


# ------------------------------------------------------------------- country names


def test_country_names_give_the_reference_payloads(reference_frame):
    # A store export writes country names: they are sent as the codes the platforms
    # take, and read as the phone's country.
    named = reference_frame.copy()
    named["country"] = ["United States of America", " united kingdom "]
    named.loc[1, "phone"] = "020 7183 8750"  # national: read in the UK, not default US
    segmentation = make_segmentation(["cust-001", "cust-002"])
    for build, kwargs in (
        (build_meta, {"audience_id": 1, "session_id": 9}),
        (build_google_ads, {"customer_id": 1, "job_id": 2, "user_list_id": 3}),
    ):
        plain = build(segmentation, "Big", make_customers(reference_frame), **kwargs)
        export = build(segmentation, "Big", make_customers(named), **kwargs)
        assert [r.body for r in export.requests] == [r.body for r in plain.requests]
        assert export.report.unknown_countries == {}


def test_values_naming_no_country_are_left_out_and_reported(reference_frame):
    frame = pd.concat([reference_frame] * 3, ignore_index=True)
    frame["customer_id"] = [f"c{i}" for i in range(6)]
    frame["country"] = ["EIRE", "European Community", "Unspecified", "RSA", "Unspecified", None]
    segmentation = make_segmentation(list(frame["customer_id"]))
    meta = build_meta(segmentation, "Big", make_customers(frame), audience_id=1)
    google = build_google_ads(
        segmentation, "Big", make_customers(frame), customer_id=1, job_id=2, user_list_id=3
    )
    expected = {"Unspecified": 2, "European Community": 1}
    for export in (meta, google):
        assert export.report.unknown_countries == expected
        assert export.report.exported == 6  # the customers are still sent on e-mail
        text = str(export.report)
        assert "'Unspecified' 2" in text
        assert "'European Community' 1" in text
        assert json.loads(export.to_json())["report"]["unknown_countries"] == expected
    assert meta.report.invalid_values["COUNTRY"] == 3
    assert google.report.invalid_values["country"] == 3
    column = meta.requests[0].body["payload"]["schema"].index("COUNTRY")
    sent = [row[column] for row in meta.requests[0].body["payload"]["data"]]
    ie, za = (hashlib.sha256(code).hexdigest() for code in (b"ie", b"za"))
    assert sent == [ie, "", "", za, "", ""]
    codes = [
        next((u["addressInfo"]["countryCode"] for u in op["create"]["userIdentifiers"]
              if "addressInfo" in u), None)
        for op in google.requests[1].body["operations"]
    ]  # fmt: skip
    assert codes == ["IE", None, None, "ZA", None, None]
