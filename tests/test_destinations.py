"""Destinations as objects: one per platform, documented, reachable from push and the CLI."""

from __future__ import annotations

import random
import re
from pathlib import Path

import httpx
import pytest

import segmentkit.exporters as exporters
from segmentkit.errors import InvalidParameterError, PushError
from segmentkit.exporters import Credentials, Request, push
from segmentkit.exporters import _push as push_module
from segmentkit.exporters import _registry as registry
from segmentkit.exporters._destination import (
    RETRYABLE_STATUSES,
    Destination,
    TokenAuth,
    top_level_message,
)
from segmentkit.exporters._retry import (
    CONNECTION_ERROR,
    REFUSED,
    RETRYABLE_STATUS,
    TIMEOUT,
    Outcome,
    RetryPolicy,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "destinations"
NAMES = registry.platform_names()

# The credentials each platform needs, as a user would pass them.
_CREDENTIALS = {
    "meta": {"token": "secret-token-1"},
    "google_ads": {"token": "secret-token-1", "developer_token": "secret-dev-2"},
    "klaviyo": {"token": "secret-token-1"},
    "mailchimp": {"token": "secret-token-1-us19"},
    "hubspot": {"token": "secret-token-1"},
    "braze": {"token": "secret-token-1", "instance": "iad-01"},
}


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# --------------------------------------------------------------------------- the registry


def test_the_six_platforms_of_today_are_registered():
    assert NAMES == ("meta", "google_ads", "klaviyo", "mailchimp", "hubspot", "braze")
    assert push_module.PLATFORMS == NAMES
    assert set(push_module.ENVIRONMENT) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_destination_has_a_docs_page_linked_from_the_index(name):
    target = registry.destination(name)
    page = DOCS / target.docs_page
    assert page.is_file(), f"{name}: docs/destinations/{target.docs_page} is missing"
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert f"]({target.docs_page})" in index, f"{name} is not linked from the index"
    # The page documents the builder and the environment variables push reads.
    text = page.read_text(encoding="utf-8")
    assert target.builder.__name__ in text
    assert target.environment["token"] in text + index


@pytest.mark.parametrize("name", NAMES)
def test_every_destination_is_reachable_from_the_public_api_and_the_cli(name):
    from segmentkit.cli import _main

    target = registry.destination(name)
    assert target.builder.__name__ in exporters.__all__
    assert getattr(exporters, target.builder.__name__) is target.builder
    # `segmentkit export --to <name>` builds with this destination's builder.
    assert getattr(exporters, _main._BUILDERS[name]) is target.builder
    assert set(_main._BUILDERS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_destination_is_reachable_from_push(name):
    """push sends to each with the destination's own authentication."""
    target = registry.destination(name)
    credentials = Credentials(name, **_CREDENTIALS[name])
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    request = Request(name, "POST", "/anything", {"n": 1}, n_customers=1)
    summary = push(
        [request],
        credentials=credentials,
        client=httpx.Client(transport=httpx.MockTransport(answer)),
        base_url="http://x",
    )
    assert summary.sent == 1
    for header, value in target.auth.headers(credentials).items():
        assert seen[0].headers[header] == value
    assert set(target.auth.secrets(credentials)) <= set(credentials.secrets())


@pytest.mark.parametrize("name", NAMES)
def test_credentials_from_the_environment_are_the_destinations(name):
    target = registry.destination(name)
    names = dict(target.environment)
    environ = {names[field]: value for field, value in _CREDENTIALS[name].items()}
    credentials = Credentials.from_env(name, environ=environ)
    assert credentials.token == _CREDENTIALS[name]["token"]
    assert credentials.api_base_url().startswith("https://")
    with pytest.raises(ValueError, match=names["token"]):
        Credentials.from_env(name, environ={})


def test_an_unknown_platform_is_named_in_the_validators_wording():
    with pytest.raises(InvalidParameterError) as caught:
        Credentials("tiktok", "t")
    assert str(caught.value).startswith("The 'platform' parameter of Credentials must be one of")
    assert "'braze'" in str(caught.value)
    assert "Got 'tiktok' instead." in str(caught.value)
    with pytest.raises(InvalidParameterError, match="parameter of Request must be one of"):
        push([Request("tiktok", "POST", "/x", {})], credentials={}, base_url="http://x")


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("meta", {"error": {"message": "Invalid audience", "code": 100}}, "Invalid audience"),
        ("google_ads", {"error": {"message": "Bad job", "status": "INVALID"}}, "Bad job"),
        ("klaviyo", {"errors": [{"detail": "List not found", "title": "x"}]}, "List not found"),
        ("mailchimp", {"title": "Resource Not Found", "detail": "No list"}, "No list"),
        ("hubspot", {"status": "error", "message": "Property unknown"}, "Property unknown"),
        ("braze", {"message": "Invalid API key"}, "Invalid API key"),
        # A gateway answering in another platform's shape is still read.
        ("hubspot", {"error": {"message": "from a proxy"}}, "from a proxy"),
    ],
)
def test_each_destination_reads_its_own_error_answers(name, body, message):
    answer = httpx.MockTransport(lambda request: httpx.Response(400, json=body))
    with pytest.raises(PushError) as caught:
        push(
            [Request(name, "POST", "/x", {}, n_customers=1)],
            credentials=Credentials(name, **_CREDENTIALS[name]),
            client=httpx.Client(transport=answer),
            base_url="http://x",
        )
    assert f"HTTP 400: {message}" in str(caught.value)


def test_a_new_platform_is_one_destination(monkeypatch):
    """Registering a Destination is all push and Credentials need to send to a platform."""
    acme = Destination(
        name="acme",
        title="Acme CRM",
        builder=exporters.build_braze,  # any builder: push never calls it
        docs_page="acme.md",
        base_url="https://api.acme.example",
        auth=TokenAuth("Token"),
        environment={"token": "SEGMENTKIT_ACME_TOKEN"},
        rate_per_second=None,
        batch_limits={"contacts": 10},
        error_readers=(top_level_message,),
        retryable_statuses=RETRYABLE_STATUSES - {503},  # Acme's 503 means "never"
        duplicate_effect="nothing",
    )
    monkeypatch.setitem(registry._DESTINATIONS, "acme", acme)
    statuses = iter([429, 503])
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(next(statuses), json={"message": "Acme says no"})

    clock = FakeClock()
    monkeypatch.setattr(push_module, "_clock", clock)
    monkeypatch.setattr(push_module, "_sleep", clock.sleep)
    credentials = Credentials.from_env("acme", environ={"SEGMENTKIT_ACME_TOKEN": "secret-acme"})
    assert credentials.api_base_url() == "https://api.acme.example"
    with pytest.raises(PushError) as caught:
        push(
            [Request("acme", "POST", "/contacts", {}, n_customers=3)],
            credentials=credentials,
            client=httpx.Client(transport=httpx.MockTransport(answer)),
            rng=random.Random(0),
        )
    assert [str(r.url) for r in seen] == ["https://api.acme.example/contacts"] * 2
    assert seen[0].headers["Authorization"] == "Token secret-acme"
    assert "acme batch 0" in str(caught.value)
    assert "HTTP 503: Acme says no" in str(caught.value)
    assert caught.value.summary.retries == 1  # 429 retried, 503 refused
    assert len(clock.slept) == 1  # no real sleeping


# --------------------------------------------------------------------------- retry policy


def test_the_retry_policy_waits_with_full_jitter_and_caps_retry_after():
    policy = RetryPolicy(backoff=0.5, max_backoff=3.0)
    rng = random.Random(7)
    waits = [policy.wait(n, None, rng) for n in range(6)]
    assert all(not capped for _, capped in waits)
    assert all(0 <= wait <= min(3.0, 0.5 * 2**n) for n, (wait, _) in enumerate(waits))
    assert policy.wait(0, 120.0, rng) == (3.0, True)
    assert policy.wait(0, 2.0, rng) == (2.0, False)


def test_the_retry_policy_decides_which_outcomes_retry_and_when_to_give_up():
    policy = RetryPolicy(max_retries=2)
    assert policy.retries(Outcome(RETRYABLE_STATUS, status=503))
    assert policy.retries(Outcome(TIMEOUT))
    assert policy.retries(Outcome(CONNECTION_ERROR))
    assert not policy.retries(Outcome(REFUSED, status=400))
    assert [policy.gives_up(n) for n in range(4)] == [False, False, True, True]
    strict = RetryPolicy(retry_on=frozenset({RETRYABLE_STATUS}))
    assert not strict.retries(Outcome(TIMEOUT))


def test_the_retry_policy_deadline_runs_on_its_injected_clock():
    clock = FakeClock()
    policy = RetryPolicy(deadline=10.0, clock=clock, sleep=clock.sleep)
    started = clock()
    assert policy.remaining(started) == 10.0
    policy.sleep(4.0)
    assert policy.remaining(started) == 6.0
    assert clock.slept == [4.0]
    assert RetryPolicy(deadline=None, clock=clock).remaining(started) == float("inf")
    with pytest.raises(AttributeError):
        policy.max_retries = 9  # type: ignore[misc]  # immutable


def test_push_runs_its_policy_on_the_injectable_clock(monkeypatch):
    """A push retrying a 503 five times and hitting its deadline never really sleeps."""
    clock = FakeClock()
    monkeypatch.setattr(push_module, "_clock", clock)
    monkeypatch.setattr(push_module, "_sleep", clock.sleep)
    answer = httpx.MockTransport(
        lambda request: httpx.Response(503, json={}, headers={"Retry-After": "4"})
    )
    with pytest.raises(PushError, match=r"deadline of 10s") as caught:
        push(
            [Request("braze", "POST", "/users/track", {}, n_customers=1)],
            credentials=Credentials("braze", "t", instance="iad-01"),
            client=httpx.Client(transport=answer),
            base_url="http://x",
            deadline=10,
        )
    assert clock.slept == [4.0, 4.0]  # a third wait would end past the deadline
    assert caught.value.summary.retries == 2


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda s, c: exporters.build_meta(s, "A", c, audience_id="1", batch_size=0),
            "The 'batch_size' parameter of build_meta must be an int in the range "
            "[1, 10000]. Got 0 instead.",
        ),
        (
            lambda s, c: exporters.build_meta(s, "A", c, audience_id="1", operation="upsert"),
            "The 'operation' parameter of build_meta must be one of ['add', 'remove', "
            "'replace']. Got 'upsert' instead.",
        ),
        (
            lambda s, c: exporters.build_google_ads(
                s, "A", c, customer_id="1", user_list_id="2", ad_user_data="YES"
            ),
            "The 'ad_user_data' parameter of build_google_ads must be one of ['DENIED', "
            "'GRANTED', 'UNKNOWN', 'UNSPECIFIED']. Got 'YES' instead.",
        ),
        (
            lambda s, c: exporters.build_klaviyo(s, "A", c, list_id="L", batch_size=10_001),
            "The 'batch_size' parameter of build_klaviyo must be an int in the range "
            "[1, 10000]. Got 10001 instead.",
        ),
        (
            lambda s, c: exporters.build_mailchimp(s, "A", c, list_id="L", batch_size=True),
            "The 'batch_size' parameter of build_mailchimp must be an int in the range "
            "[1, 500]. Got True instead.",
        ),
        (
            lambda s, c: exporters.build_hubspot(s, "A", c, operation="delete"),
            "The 'operation' parameter of build_hubspot must be one of ['add', 'remove']. "
            "Got 'delete' instead.",
        ),
        (
            lambda s, c: exporters.hubspot_membership_requests("L", ["1"], batch_size=0),
            "The 'batch_size' parameter of hubspot_membership_requests must be an int in "
            "the range [1, inf). Got 0 instead.",
        ),
        (
            lambda s, c: exporters.build_braze(s, "A", c, batch_size=76),
            "The 'batch_size' parameter of build_braze must be an int in the range [1, 75]. "
            "Got 76 instead.",
        ),
        (
            lambda s, c: push([], dry_run=True, max_retries=1.5),
            "The 'max_retries' parameter of push must be an int in the range [0, inf). "
            "Got 1.5 instead.",
        ),
        (
            lambda s, c: push([], dry_run=True, rate_per_second=0),
            "The 'rate_per_second' parameter of push must be a finite number of requests "
            "per second > 0, one of ['platform'] or None. Got 0 instead.",
        ),
        (
            lambda s, c: push([], dry_run="yes"),
            "The 'dry_run' parameter of push must be True or False. Got 'yes' instead.",
        ),
    ],
)
def test_parameters_are_checked_by_the_one_validator(call, expected):
    import pandas as pd

    import segmentkit as sk

    raw = pd.DataFrame({"id": ["c1"], "email": ["a@b.co"], "ok": [True]})
    customers = sk.Customers.from_frame(
        raw, customer_id="id", consent_email="ok", consent_ads="ok"
    )
    segmentation = sk.Segmentation.from_assignments(
        pd.DataFrame({"customer_id": ["c1"], "segment_id": [0], "segment": ["A"]})
    )
    with pytest.raises(InvalidParameterError) as caught:
        call(segmentation, customers)
    assert str(caught.value) == expected


def test_exceptions_live_in_errors_and_stay_importable_where_they_were():
    from segmentkit import errors
    from segmentkit.exporters import _push

    for name in ("PushError", "JournalLockedError"):
        assert getattr(errors, name) is getattr(exporters, name) is getattr(_push, name)
        assert name in errors.__all__
        assert getattr(errors, name).__module__ == "segmentkit.errors"


def test_the_delivery_table_of_the_docs_matches_the_destinations():
    """docs/destinations/index.md states each platform's idempotency key and duplicates."""
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for target in registry.destinations():
        link = f"]({target.docs_page})"
        rows = [line for line in index.splitlines() if link in line and "at least once" in line]
        row = rows[0] if rows else None
        assert row is not None, target.name
        key = target.idempotency_header or "none documented"
        assert f"| {key} |" in row
        assert target.duplicate_effect in row


def test_published_rates_come_from_the_destinations():
    rates = {d.name: d.rate_per_second for d in registry.destinations()}
    assert rates == push_module.PLATFORM_RATES
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert re.search(r"Klaviyo 150/min", index)
