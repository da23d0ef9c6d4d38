"""The push client against a local contract server (loopback only, bounded)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import email.utils
import hashlib
import io
import itertools
import json
import logging
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit.errors import ContractError, InvalidParameterError
from segmentkit.exporters import Request
from segmentkit.exporters import _push as push_module
from segmentkit.exporters import _registry as registry
from segmentkit.exporters._push import (
    Credentials,
    PushError,
    PushSummary,
    TokenBucket,
    _retry_after,
    push,
)
from segmentkit.timeline._diff import membership_changes, restrict

SECRET = "sk-live-SUPERSECRET-0123456789"
DEV_SECRET = "devtok-SECRET-abcdef"

CREDENTIALS = {
    "meta": Credentials("meta", SECRET),
    "google_ads": Credentials(
        "google_ads", SECRET, developer_token=DEV_SECRET, login_customer_id="123-456-7890"
    ),
    "klaviyo": Credentials("klaviyo", SECRET),
    "mailchimp": Credentials("mailchimp", SECRET + "-us19"),
    "hubspot": Credentials("hubspot", SECRET),
    "braze": Credentials("braze", SECRET, instance="iad-01"),
}

EXPECTED_HEADERS = {
    "meta": {"authorization": f"Bearer {SECRET}"},
    "google_ads": {
        "authorization": f"Bearer {SECRET}",
        "developer-token": DEV_SECRET,
        "login-customer-id": "1234567890",
    },
    "klaviyo": {"authorization": f"Klaviyo-API-Key {SECRET}"},
    "mailchimp": {
        # base64("anystring:<key>")
        "authorization": "Basic " + base64.b64encode(f"anystring:{SECRET}-us19".encode()).decode()
    },
    "hubspot": {"authorization": f"Bearer {SECRET}"},
    "braze": {"authorization": f"Bearer {SECRET}"},
}

PATHS = {
    "meta": ("POST", "/v25.0/2385/users"),
    "google_ads": ("POST", "/v26/customers/1234567890/offlineUserDataJobs/555:addOperations"),
    "klaviyo": ("POST", "/api/profile-bulk-import-jobs"),
    "mailchimp": ("POST", "/lists/a1b2c3d4e5"),
    "hubspot": ("PUT", "/crm/v3/lists/123/memberships/add-and-remove"),
    "braze": ("POST", "/users/track"),
}


def _key(platform: str, method: str, path: str, body: Any) -> str:
    text = json.dumps([platform, method, path, body], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_requests(platform: str = "braze", n: int = 5) -> list[Request]:
    method, path = PATHS[platform]
    return [
        Request(
            platform=platform,
            method=method,
            path=path,
            body={"members": [f"c{i}a", f"c{i}b"], "batch": i},
            n_customers=2,
            batch=i,
        )
        for i in range(n)
    ]


# --------------------------------------------------------------------------- server


class ContractServer:
    """Checks method, path, auth and JSON body; records deliveries; injects faults.

    ``faults`` maps the arrival number (0-based, over every incoming attempt) to one of
    ``("429", retry_after)``, ``("<status>",)`` (any status, empty JSON message),
    ``("slow", seconds)``, ``("drop",)`` or ``("400", body)``: those attempts are not
    applied. Two faults lose the answer of an attempt that *was* applied (recorded as
    delivered): ``("lost",)`` closes the connection without answering, ``("late",
    seconds)`` answers only after ``seconds`` (past the client's time-out).

    With ``idempotency_header`` set, an attempt whose header value was applied before is
    answered 200 without being applied again, as a platform honouring the key would.
    """

    MAX_REQUESTS = 200

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.expected_headers = EXPECTED_HEADERS[platform]
        self.method, self.path = PATHS[platform]
        self.faults: dict[int, tuple[Any, ...]] = {}
        self.deliveries: Counter[str] = Counter()
        self.idempotency_header: str | None = None
        self.idempotency_keys: list[str | None] = []
        self.applied_keys: set[str] = set()
        self.violations: list[str] = []
        self.arrivals = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None):
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)  # a late answer finds the client gone

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with server.lock:
                    arrival = server.arrivals
                    server.arrivals += 1
                    fault = server.faults.get(arrival)
                if arrival >= server.MAX_REQUESTS:
                    self._reply(503, b'{"message": "request budget exhausted"}')
                    return
                if fault is not None:
                    kind = fault[0]
                    if kind == "drop":
                        self.close_connection = True
                        return
                    if kind == "slow":
                        time.sleep(fault[1])
                        self.close_connection = True
                        return
                    if kind == "429":
                        self._reply(429, b'{"message": "slow down"}', {"Retry-After": fault[1]})
                        return
                    if kind == "500":
                        self._reply(500, b'{"message": "internal"}')
                        return
                    if kind == "400":
                        self._reply(400, fault[1].encode())
                        return
                    if kind not in ("lost", "late"):
                        self._reply(int(kind), b'{"message": "injected"}')
                        return
                problems = []
                if self.command != server.method or self.path != server.path:
                    problems.append(f"unexpected {self.command} {self.path}")
                for name, value in server.expected_headers.items():
                    if self.headers.get(name) != value:
                        problems.append(f"bad header {name}")
                if "json" not in (self.headers.get("Content-Type") or ""):
                    problems.append("not JSON")
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    problems.append("body is not JSON")
                    body = None
                if problems:
                    with server.lock:
                        server.violations.extend(problems)
                    self._reply(422, json.dumps({"message": problems}).encode())
                    return
                key = _key(server.platform, self.command, self.path, body)
                given = (
                    self.headers.get(server.idempotency_header)
                    if server.idempotency_header
                    else None
                )
                with server.lock:
                    server.idempotency_keys.append(given)
                    if given is None or given not in server.applied_keys:
                        server.deliveries[key] += 1
                    if given is not None:
                        server.applied_keys.add(given)
                if fault is not None and fault[0] == "lost":
                    self.close_connection = True  # applied, but the answer never leaves
                    return
                if fault is not None and fault[0] == "late":
                    time.sleep(fault[1])
                self._reply(200, b'{"ok": true}')

            def do_POST(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def start(self) -> ContractServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server_factory() -> Iterator[Callable[[str], ContractServer]]:
    started: list[ContractServer] = []

    def make(platform: str = "braze") -> ContractServer:
        server = ContractServer(platform).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff sleeps are recorded, not slept."""
    recorded: list[float] = []
    monkeypatch.setattr(push_module, "_sleep", recorded.append)
    return recorded


def _push(server: ContractServer, requests: list[Request], **kwargs: Any) -> PushSummary:
    kwargs.setdefault("credentials", CREDENTIALS[server.platform])
    kwargs.setdefault("timeout", 2.0)
    return push(requests, base_url=server.url, **kwargs)


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("platform", sorted(PATHS))
def test_each_platform_gets_its_auth_and_body(platform, server_factory, waits):
    server = server_factory(platform)
    requests = make_requests(platform, 3)
    summary = _push(server, requests)
    assert server.violations == []
    assert server.deliveries == Counter({r.key: 1 for r in requests})
    assert (summary.sent, summary.customers_delivered, summary.retries) == (3, 6, 0)
    assert waits == []


def test_base_urls_and_environment():
    env = {
        "SEGMENTKIT_MAILCHIMP_API_KEY": "abc-us19",
        "SEGMENTKIT_BRAZE_API_KEY": "b",
        "SEGMENTKIT_BRAZE_INSTANCE": "iad-01",
        "SEGMENTKIT_META_TOKEN": "m",
        "SEGMENTKIT_GOOGLE_ADS_TOKEN": "g",
        "SEGMENTKIT_GOOGLE_ADS_DEVELOPER_TOKEN": "d",
    }
    mailchimp = Credentials.from_env("mailchimp", environ=env)
    assert mailchimp.api_base_url() == "https://us19.api.mailchimp.com/3.0"
    assert Credentials.from_env("braze", environ=env).api_base_url() == (
        "https://rest.iad-01.braze.com"
    )
    assert Credentials("braze", "k", instance="fra-01.braze.eu").api_base_url() == (
        "https://rest.fra-01.braze.eu"
    )
    assert Credentials.from_env("meta", environ=env).api_base_url() == (
        "https://graph.facebook.com"
    )
    google = Credentials.from_env("google_ads", environ=env)
    assert google.headers() == {"Authorization": "Bearer g", "developer-token": "d"}
    local = Credentials.from_env("meta", environ=env, base_url="http://127.0.0.1:1/")
    assert local.api_base_url() == "http://127.0.0.1:1"
    with pytest.raises(ValueError, match="SEGMENTKIT_HUBSPOT_TOKEN"):
        Credentials.from_env("hubspot", environ=env)
    with pytest.raises(ValueError, match="SEGMENTKIT_GOOGLE_ADS_DEVELOPER_TOKEN"):
        Credentials.from_env("google_ads", environ={"SEGMENTKIT_GOOGLE_ADS_TOKEN": "g"})


def test_push_reads_credentials_from_the_environment(server_factory, waits, monkeypatch):
    server = server_factory("hubspot")
    monkeypatch.setenv("SEGMENTKIT_HUBSPOT_TOKEN", SECRET)
    requests = make_requests("hubspot", 2)
    summary = push(requests, base_url=server.url, timeout=2.0)
    assert summary.sent == 2
    assert server.violations == []


# --------------------------------------------------------------------------- secrets


def test_secrets_never_shown(server_factory, waits, caplog, capsys):
    for creds in CREDENTIALS.values():
        for text in (repr(creds), str(creds), f"{creds}"):
            assert SECRET not in text
            assert DEV_SECRET not in text
    server = server_factory("google_ads")
    # The platform echoes the secret and the auth header back: it must be scrubbed.
    echo = json.dumps(
        {"error": {"message": f"Invalid developer token {DEV_SECRET} for Bearer {SECRET}"}}
    )
    server.faults = {0: ("500",), 2: ("400", echo)}
    requests = make_requests("google_ads", 4)
    with (
        caplog.at_level(logging.DEBUG, logger="segmentkit.push"),
        pytest.raises(PushError) as caught,
    ):
        _push(server, requests, progress=True)
    error = caught.value
    texts = [str(error), repr(error), str(error.summary), repr(error.summary), caplog.text]
    texts.append(capsys.readouterr().err)
    for text in texts:
        assert SECRET not in text
        assert DEV_SECRET not in text
    assert "Invalid developer token ***" in str(error)


def test_mailchimp_basic_auth_is_scrubbed(server_factory, waits):
    server = server_factory("mailchimp")
    encoded = EXPECTED_HEADERS["mailchimp"]["authorization"].split()[1]
    server.faults = {0: ("400", json.dumps({"title": "Bad", "detail": f"auth {encoded}"}))}
    with pytest.raises(PushError) as caught:
        _push(server, make_requests("mailchimp", 1))
    assert encoded not in str(caught.value)
    assert SECRET not in str(caught.value)


# --------------------------------------------------------------------------- retries


def test_every_request_delivered_once_under_faults(server_factory, waits):
    server = server_factory("braze")
    server.faults = {
        0: ("429", "0"),
        1: ("500",),
        3: ("slow", 0.3),
        4: ("drop",),
        6: ("500",),
        7: ("429", "1"),
    }
    requests = make_requests("braze", 6)
    summary = _push(server, requests, timeout=0.05, rng=random.Random(0))
    assert server.violations == []
    assert server.deliveries == Counter({r.key: 1 for r in requests})
    assert summary.sent == 6
    assert summary.retries == len(server.faults)
    assert summary.failures == 0
    assert summary.customers_delivered == 12
    assert len(waits) == len(server.faults)
    assert "6 retries" in str(summary)


def test_backoff_is_seeded_full_jitter(server_factory, waits):
    server = server_factory("braze")
    server.faults = {0: ("500",), 1: ("500",), 2: ("500",)}
    _push(server, make_requests("braze", 1), rng=random.Random(42), backoff=0.5, max_backoff=1.5)
    rng = random.Random(42)
    expected = [rng.uniform(0, min(1.5, 0.5 * 2**k)) for k in range(3)]
    assert waits == pytest.approx(expected)


def test_retry_after_is_honoured_up_to_max_backoff(server_factory, waits, caplog):
    server = server_factory("klaviyo")
    later = datetime.now(timezone.utc) + timedelta(seconds=120)
    server.faults = {0: ("429", "7"), 1: ("429", email.utils.format_datetime(later, usegmt=True))}
    summary = _push(server, make_requests("klaviyo", 1), max_backoff=200)
    assert summary.retries == 2
    assert waits[0] == 7.0
    assert 100 < waits[1] <= 121
    # Beyond max_backoff the wait is capped, and the log says what the platform asked.
    server.faults = {3: ("429", "7"), 4: ("429", "3600")}
    waits.clear()
    with caplog.at_level(logging.WARNING, logger="segmentkit.push"):
        summary = _push(server, make_requests("klaviyo", 2)[1:], max_backoff=1.5)
    assert summary.retries == 2
    assert waits == [1.5, 1.5]
    assert "Retry-After asked 3600s, capped by max_backoff" in caplog.text


def test_retry_after_parsing():
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)
    assert _retry_after("3", now) == 3.0
    assert _retry_after("Tue, 24 Nov 2026 12:00:30 GMT", now) == 30.0
    assert _retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now) == 0.0
    assert _retry_after("soon", now) is None
    assert _retry_after(None, now) is None


def test_gives_up_after_max_retries(server_factory, waits):
    server = server_factory("braze")
    server.faults = {i: ("500",) for i in range(4)}
    requests = make_requests("braze", 2)
    with pytest.raises(PushError, match=r"HTTP 500.*gave up after 3 retries") as caught:
        _push(server, requests, max_retries=3)
    assert caught.value.status == 500
    assert caught.value.summary.failures == 1
    assert caught.value.summary.retries == 3
    assert server.deliveries == Counter()


def test_client_error_stops_with_platform_message(server_factory, waits):
    server = server_factory("meta")
    body = json.dumps({"error": {"message": "Invalid parameter: payload.schema", "code": 100}})
    server.faults = {2: ("400", body)}
    requests = make_requests("meta", 5)
    with pytest.raises(PushError) as caught:
        _push(server, requests)
    error = caught.value
    assert "meta batch 2" in str(error)
    assert "HTTP 400" in str(error)
    assert "Invalid parameter: payload.schema" in str(error)
    assert error.status == 400
    assert error.request == requests[2]
    assert error.summary.sent == 2
    assert error.summary.failures == 1
    assert server.arrivals == 3  # nothing after the refused request
    assert waits == []


# --------------------------------------------------------------------------- journal


class Crash(BaseException):
    """Stands for the process dying (not an httpx error, so never retried)."""


class CrashingTransport(httpx.BaseTransport):
    """Forwards to the real transport; dies after the server answered ``crash_at``."""

    def __init__(self, crash_at: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.crash_at = crash_at
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.calls += 1
        if self.calls > self.crash_at:
            response.close()
            raise Crash
        return response

    def close(self) -> None:
        self.inner.close()


def test_crash_then_resume_sends_only_unacknowledged(server_factory, waits, tmp_path):
    server = server_factory("braze")
    requests = make_requests("braze", 8)
    journal = tmp_path / "push.jsonl"
    with httpx.Client(transport=CrashingTransport(crash_at=3)) as client, pytest.raises(Crash):
        _push(server, requests, journal=journal, client=client)
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    acknowledged = [e["key"] for e in entries if e["state"] == "acknowledged"]
    assert acknowledged == [r.key for r in requests[:3]]
    # The 4th was on its way when the process died: journaled as sending, not acknowledged.
    assert entries[-1]["state"] == "sending"
    assert entries[-1]["key"] == requests[3].key
    assert all("body" not in e for e in entries)
    assert not journal.with_name("push.jsonl.lock").exists()  # released even on a crash
    # A torn line from a crash during the write is ignored.
    with journal.open("a") as handle:
        handle.write('{"key": "trunc')
    summary = _push(server, requests, journal=journal)
    assert summary.skipped_already_acknowledged == 3
    assert summary.sent == 5
    assert summary.possible_duplicates == 2  # the in-flight request's customers
    assert summary.customers_undelivered == 0
    # The 4th reached the platform but its answer was lost with the crash: sent again
    # (at least once); every other request exactly once.
    expected = Counter({r.key: 1 for r in requests})
    expected[requests[3].key] = 2
    assert server.deliveries == expected
    again = _push(server, requests, journal=journal)
    assert (again.sent, again.skipped_already_acknowledged) == (0, 8)
    assert server.deliveries == expected
    assert "8 already acknowledged" in str(again)


# --------------------------------------------------------------------------- dry run


def test_dry_run_sends_nothing(server_factory, tmp_path, monkeypatch):
    for variable in ("SEGMENTKIT_BRAZE_API_KEY", "SEGMENTKIT_BRAZE_INSTANCE"):
        monkeypatch.delenv(variable, raising=False)
    server = server_factory("braze")
    requests = make_requests("braze", 4)
    journal = tmp_path / "j.jsonl"
    journal.write_text(json.dumps({"key": requests[0].key}) + "\n")
    summary = push(requests, base_url=server.url, journal=journal, dry_run=True)
    assert server.arrivals == 0
    assert summary.dry_run
    assert summary.sent == 0
    assert summary.pending == tuple(requests[1:])
    assert summary.skipped_already_acknowledged == 1
    assert "would send 3 request(s) carrying 6 customer(s) to braze" in str(summary)
    assert journal.read_text().count("\n") == 1


# --------------------------------------------------------------------------- rate limit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_token_bucket_spacing():
    clock = FakeClock()
    bucket = TokenBucket(4.0, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(5):
        bucket.acquire()
        times.append(clock.now)
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([0.25] * 4)
    clock.now += 10  # idle: the bucket refills only to its capacity
    bucket.acquire()
    assert clock.sleeps == pytest.approx([0.25] * 4)
    burst = TokenBucket(2.0, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        assert burst.acquire() == 0
    assert burst.acquire() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)


def test_push_respects_the_rate(server_factory, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(push_module, "_clock", clock)
    monkeypatch.setattr(push_module, "_sleep", clock.sleep)
    server = server_factory("hubspot")
    summary = _push(server, make_requests("hubspot", 5), rate_per_second=2.0)
    assert summary.sent == 5
    assert clock.sleeps == pytest.approx([0.5] * 4)
    assert summary.elapsed == pytest.approx(2.0)


def test_progress_line(server_factory, waits, capsys):
    server = server_factory("braze")
    _push(server, make_requests("braze", 3), progress=True)
    err = capsys.readouterr().err
    assert "segmentkit push: 3/3 request(s), 6 customer(s)" in err
    assert err.endswith("\n")


# --------------------------------------------------------------------------- diff


def _segmentation(assignment: dict[str, str]) -> sk.Segmentation:
    names = ["A", "B", "C"]
    table = pd.DataFrame(
        {
            "customer_id": list(assignment),
            "segment": list(assignment.values()),
            "segment_id": [names.index(s) for s in assignment.values()],
        }
    )
    return sk.Segmentation.from_assignments(table)


ids = st.sampled_from([f"c{i}" for i in range(30)])


@settings(max_examples=60, deadline=None)
@given(
    before=st.dictionaries(ids, st.sampled_from("ABC"), min_size=1),
    after=st.dictionaries(ids, st.sampled_from("ABC"), min_size=1),
)
def test_membership_changes_turn_before_into_after(before, after):
    old, new = _segmentation(before), _segmentation(after)
    present = {s.name for s in old.segments} | {s.name for s in new.segments}
    for segment in sorted(present):
        to_add, to_remove = membership_changes(old, new, segment)
        members_before = {c for c, s in before.items() if s == segment}
        members_after = {c for c, s in after.items() if s == segment}
        assert (members_before - set(to_remove)) | set(to_add) == members_after
        assert not set(to_add) & members_before
        assert set(to_remove) <= members_before
        assert len(to_add) == len(set(to_add))
        if len(to_add):
            assert set(restrict(new, to_add).members(segment)) == set(to_add)


def test_membership_changes_with_indexes_and_first_push():
    to_add, to_remove = membership_changes(pd.Index([1, 2, 3]), pd.Index(["3", "4"]))
    assert list(to_add) == ["4"]
    assert list(to_remove) == ["1", "2"]
    to_add, to_remove = membership_changes(None, pd.Index(["a", "b"]))
    assert list(to_add) == ["a", "b"]
    assert len(to_remove) == 0
    with pytest.raises(KeyError, match="Nope"):
        membership_changes(_segmentation({"a": "A"}), _segmentation({"b": "B"}), "Nope")
    with pytest.raises(ValueError, match="segment="):
        membership_changes(_segmentation({"a": "A"}), pd.Index(["a"]))


def test_journal_path_is_created(tmp_path, server_factory, waits):
    server = server_factory("braze")
    journal = tmp_path / "nested" / "dir" / "j.jsonl"
    summary = _push(server, make_requests("braze", 2), journal=Path(journal))
    assert summary.sent == 2
    states = [json.loads(line)["state"] for line in journal.read_text().splitlines()]
    assert states == ["sending", "acknowledged"] * 2


def test_items_refused_inside_a_successful_answer_are_counted_not_shown(caplog):
    import httpx

    from segmentkit.exporters import Credentials, Request, push

    answer = {"errors": [{"email_address": "jane.doe@gmail.com", "error": "fake"}] * 2}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    request = Request("mailchimp", "POST", "/lists/abc", {"members": []}, n_customers=5)
    credentials = Credentials("mailchimp", token="0123456789abcdef-us21")
    with caplog.at_level("WARNING", logger="segmentkit.push"):
        summary = push(
            [request],
            credentials=credentials,
            client=httpx.Client(transport=transport),
            base_url="http://x",
        )
    assert summary.rejected_items == 2
    assert "2 item(s) refused" in str(summary)
    assert "jane.doe" not in caplog.text
    assert "refused 2 item(s)" in caplog.text


def test_platform_rates_space_requests(monkeypatch):
    import httpx

    from segmentkit.exporters import Credentials, Request, _push, push

    now = [0.0]
    waits: list[float] = []
    monkeypatch.setattr(_push, "_clock", lambda: now[0])

    def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(_push, "_sleep", fake_sleep)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    requests = [
        Request("klaviyo", "POST", "/api/profile-bulk-import-jobs", {"n": i}, batch=i)
        for i in range(3)
    ]
    push(
        requests,
        credentials=Credentials("klaviyo", token="pk_live_secret"),
        client=httpx.Client(transport=transport),
        base_url="http://x",
        rate_per_second="platform",
    )
    assert sum(waits) == pytest.approx(2 / (150 / 60))


# --------------------------------------------------------------------------- bounded push


def _duplicated_customers(server: ContractServer, requests: list[Request]) -> int:
    """Customers the server applied more than once (what a platform would see)."""
    by_key = {r.key: r.n_customers for r in requests}
    return sum((count - 1) * by_key[key] for key, count in server.deliveries.items())


def test_fault_injection_reports_duplicates_losses_and_capped_retry_after(
    server_factory, waits, caplog
):
    server = server_factory("braze")
    server.faults = {
        0: ("429", "120"),  # asks for 2 minutes: capped at max_backoff
        1: ("500",),
        2: ("lost",),  # applied, answer lost: request 0 delivered twice
        4: ("slow", 0.3),  # past the time-out, not applied
        6: ("drop",),  # connection dropped, not applied
        8: ("late", 0.3),  # applied, answered past the time-out: request 3 twice
        10: ("503",),
        11: ("425",),
        12: ("408",),
        14: ("504",),  # a gateway lost the answer (here: not applied)
    }
    requests = make_requests("braze", 8)
    with caplog.at_level(logging.WARNING, logger="segmentkit.push"):
        summary = _push(server, requests, timeout=0.05, max_backoff=2.0, rng=random.Random(0))
    assert server.violations == []
    # Nothing lost: every request reached the platform and was acknowledged.
    assert set(server.deliveries) == {r.key for r in requests}
    assert summary.sent == 8
    assert summary.customers_delivered == 16
    assert summary.customers_undelivered == 0
    assert summary.retries == len(server.faults)
    # Two requests were really applied twice; the push could not tell which of the five
    # lost answers were applied, so it reports all five as possible duplicates.
    assert _duplicated_customers(server, requests) == 4
    assert summary.possible_duplicates == 10
    assert "10 possible duplicate customer deliveries" in str(summary)
    # The Retry-After of 120 s was capped; no real sleeping happened.
    assert waits[0] == 2.0
    assert all(w <= 2.0 for w in waits)
    assert "Retry-After asked 120s, capped by max_backoff" in caplog.text


def test_lost_answers_that_were_applied_are_counted_exactly(server_factory, waits):
    server = server_factory("hubspot")
    # Request 1's answer is lost once; request 2's twice (it is applied three times).
    server.faults = {1: ("lost",), 3: ("late", 0.3), 4: ("lost",)}
    requests = make_requests("hubspot", 4)
    summary = _push(server, requests, timeout=0.05)
    assert set(server.deliveries) == {r.key for r in requests}
    assert server.deliveries[requests[2].key] == 3
    assert _duplicated_customers(server, requests) == summary.possible_duplicates == 6


def test_an_idempotency_key_makes_lost_answers_harmless(server_factory, waits, monkeypatch):
    # A platform that documents a key declares it on its Destination.
    braze = dataclasses.replace(
        registry.destination("braze"), idempotency_header="Idempotency-Key"
    )
    monkeypatch.setitem(registry._DESTINATIONS, "braze", braze)
    server = server_factory("braze")
    server.idempotency_header = "Idempotency-Key"
    server.faults = {0: ("lost",), 2: ("late", 0.3), 4: ("lost",)}
    requests = make_requests("braze", 3)
    summary = _push(server, requests, timeout=0.05)
    assert server.deliveries == Counter({r.key: 1 for r in requests})
    assert summary.possible_duplicates == 0
    # The key is the request's content hash, the same on every attempt.
    assert server.idempotency_keys == [r.key for r in requests for _ in range(2)]


def test_no_idempotency_header_is_invented():
    # None of the six platforms documents one for these endpoints (see the docs).
    assert set(push_module.IDEMPOTENCY_HEADERS) == set(push_module.PLATFORMS)
    assert all(header is None for header in push_module.IDEMPOTENCY_HEADERS.values())
    assert all(d.idempotency_header is None for d in registry.destinations())


def _mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "retried"),
    [(408, True), (425, True), (429, True), (500, True), (502, True), (503, True),
     (504, True), (599, True), (501, False), (505, False), (400, False), (404, False),
     (409, False), (422, False)],
)  # fmt: skip
def test_only_retryable_statuses_are_retried(status, retried, waits):
    calls = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status if len(calls) == 1 else 200, json={})

    client = _mock_client(answer)
    request = make_requests("braze", 1)
    if retried:
        summary = push(
            request, credentials=CREDENTIALS["braze"], client=client, base_url="http://x"
        )
        assert (summary.sent, summary.retries, len(calls)) == (1, 1, 2)
    else:
        with pytest.raises(PushError, match=f"HTTP {status}") as caught:
            push(request, credentials=CREDENTIALS["braze"], client=client, base_url="http://x")
        assert len(calls) == 1
        assert caught.value.summary.customers_undelivered == 2


def test_deadline_bounds_the_whole_push(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(push_module, "_clock", clock)
    monkeypatch.setattr(push_module, "_sleep", clock.sleep)
    timeouts = []

    def answer(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"]["read"])
        clock.now += 1.0  # a slow platform: every answer takes a second
        return httpx.Response(503, json={"message": "busy"}, headers={"Retry-After": "30"})

    requests = make_requests("braze", 3)
    started = clock.now
    with pytest.raises(PushError, match=r"deadline of 10s") as caught:
        push(
            requests,
            credentials=CREDENTIALS["braze"],
            client=_mock_client(answer),
            base_url="http://x",
            max_retries=100,
            max_backoff=4.0,
            timeout=30.0,
            deadline=10.0,
        )
    # Attempt 1 at 0 s (answered at 1 s), wait 4 s, attempt 2 at 5 s (answered at 6 s):
    # the next wait would end at the deadline, so the push stops without beginning it.
    assert clock.sleeps == [4.0]
    assert clock.now - started == pytest.approx(6.0)
    # Each attempt's time-out is cut to what is left of the deadline.
    assert timeouts == pytest.approx([10.0, 5.0])
    error = caught.value
    assert error.summary.sent == 0
    assert error.summary.customers_undelivered == 6
    assert "same journal" in str(error)


# --------------------------------------------------------------------------- creates


class GoogleAds:
    """A Customer Match job API whose :create answer can be lost after applying."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.operations: Counter[str] = Counter()
        self.create_faults: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("offlineUserDataJobs:create"):
            fault = self.create_faults.pop(0) if self.create_faults else None
            if fault == "connect":  # never reached the platform
                raise httpx.ConnectError("refused", request=request)
            if fault == "503":
                return httpx.Response(503, json={"error": {"message": "try again"}})
            job = str(900 + len(self.created))
            self.created.append(job)
            if fault == "timeout":
                raise httpx.ReadTimeout("lost", request=request)
            if fault == "502":
                return httpx.Response(502, text="bad gateway")
            return httpx.Response(
                200, json={"resourceName": f"customers/1234567890/offlineUserDataJobs/{job}"}
            )
        self.operations[path] += 1
        return httpx.Response(200, json={})


def _google_requests() -> list[Request]:
    base = "/v26/customers/1234567890/offlineUserDataJobs"
    return [
        Request("google_ads", "POST", f"{base}:create", {"job": {}}, batch=0),
        Request("google_ads", "POST", f"{base}/{{job}}:addOperations", {"ops": [1]},
                n_customers=3, batch=1),
        Request("google_ads", "POST", f"{base}/{{job}}:run", {}, batch=2),
    ]  # fmt: skip


def _push_google(api: GoogleAds, **kwargs: Any) -> PushSummary:
    return push(
        _google_requests(),
        credentials=CREDENTIALS["google_ads"],
        client=_mock_client(api),
        base_url="http://x",
        **kwargs,
    )


@pytest.mark.parametrize("fault", ["timeout", "502"])
def test_a_create_is_never_sent_again_blindly(fault, tmp_path, waits):
    api = GoogleAds()
    api.create_faults = [fault]
    journal = tmp_path / "google.jsonl"
    with pytest.raises(PushError, match="not sent again blindly") as caught:
        _push_google(api, journal=journal)
    assert api.created == ["900"]  # created once, its answer lost
    assert caught.value.summary.customers_undelivered == 3
    assert waits == []
    # A re-run with the journal knows the create is uncertain and refuses to repeat it.
    with pytest.raises(PushError, match="resend_uncertain_creates=True"):
        _push_google(api, journal=journal)
    assert api.created == ["900"]
    assert not api.operations
    # Told to, it creates a new job and fills it; the lost one was never run.
    summary = _push_google(api, journal=journal, resend_uncertain_creates=True)
    assert api.created == ["900", "901"]
    base = "/v26/customers/1234567890/offlineUserDataJobs/901"
    assert api.operations == Counter({f"{base}:addOperations": 1, f"{base}:run": 1})
    assert summary.possible_duplicates == 0
    assert summary.sent == 3


def test_a_create_that_never_left_or_was_refused_is_retried(waits):
    api = GoogleAds()
    api.create_faults = ["connect", "503"]
    summary = _push_google(api)
    assert api.created == ["900"]
    assert summary.retries == 2
    assert summary.sent == 3


def test_a_create_that_surely_failed_is_sent_freely_on_a_re_run(tmp_path, waits):
    api = GoogleAds()
    api.create_faults = ["connect", "503"]
    journal = tmp_path / "google.jsonl"
    with pytest.raises(PushError, match="HTTP 503"):
        _push_google(api, journal=journal, max_retries=1)
    assert api.created == []
    states = [json.loads(line)["state"] for line in journal.read_text().splitlines()]
    assert states == ["sending", "failed"]
    summary = _push_google(api, journal=journal)  # no resend_uncertain_creates needed
    assert api.created == ["900"]
    assert summary.sent == 3


# --------------------------------------------------------------------------- journal lock


def test_a_second_pusher_is_refused(server_factory, waits, tmp_path):
    server = server_factory("braze")
    journal = tmp_path / "push.jsonl"
    requests = make_requests("braze", 2)
    refused: list[BaseException] = []

    class Nested(httpx.BaseTransport):
        """While the first push sends, a second one tries the same journal."""

        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if not refused:
                try:
                    _push(server, requests, journal=journal)
                except push_module.JournalLockedError as error:
                    refused.append(error)
            return self.inner.handle_request(request)

    with httpx.Client(transport=Nested()) as client:
        summary = _push(server, requests, journal=journal, client=client)
    assert summary.sent == 2
    assert len(refused) == 1
    message = str(refused[0])
    lock = tmp_path / "push.jsonl.lock"
    assert str(lock) in message
    assert f"process {os.getpid()}" in message
    assert "delete" in message
    assert not lock.exists()  # released at the end
    assert server.deliveries == Counter({r.key: 1 for r in requests})


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.skipif(os.name != "posix", reason="stale locks are recognised on POSIX only")
def test_a_stale_lock_is_taken_over(server_factory, waits, tmp_path, caplog):
    server = server_factory("braze")
    journal = tmp_path / "push.jsonl"
    lock = tmp_path / "push.jsonl.lock"
    holder = {"pid": _dead_pid(), "host": socket.gethostname(), "started_at": "earlier"}
    lock.write_text(json.dumps(holder))
    with caplog.at_level(logging.WARNING, logger="segmentkit.push"):
        summary = _push(server, make_requests("braze", 1), journal=journal)
    assert summary.sent == 1
    assert "stale lock" in caplog.text
    assert not lock.exists()


def test_a_lock_of_another_machine_or_being_written_is_respected(tmp_path, waits):
    journal = tmp_path / "push.jsonl"
    lock = tmp_path / "push.jsonl.lock"
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started_at": "now"}))
    with pytest.raises(push_module.JournalLockedError, match="process 1 on elsewhere"):
        push(make_requests("braze", 1), credentials=CREDENTIALS["braze"], journal=journal)
    lock.write_text("")  # created a moment ago, content not written yet
    with pytest.raises(push_module.JournalLockedError, match="holder unknown"):
        push(make_requests("braze", 1), credentials=CREDENTIALS["braze"], journal=journal)
    old = time.time() - 3600
    os.utime(lock, (old, old))  # the same, an hour later: its writer died
    answer = _mock_client(lambda request: httpx.Response(200, json={}))
    summary = push(
        make_requests("braze", 1),
        credentials=CREDENTIALS["braze"],
        journal=journal,
        client=answer,
        base_url="http://x",
    )
    assert summary.sent == 1
    # A dry run only reads the journal: it needs no lock.
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started_at": "now"}))
    assert push(make_requests("braze", 1), journal=journal, dry_run=True).dry_run


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_backoff", -1), ("max_backoff", math.inf), ("deadline", 0), ("deadline", math.nan),
     ("timeout", 0), ("backoff", -0.5), ("max_retries", -1), ("max_retries", 1.5)],
)  # fmt: skip
def test_limits_are_checked(option, value):
    with pytest.raises(InvalidParameterError, match=option):
        push(make_requests("braze", 1), dry_run=True, **{option: value})


# --------------------------------------------------------------------------- personal data

_PHONE_FORMATS = ["+{c} {a} {b}", "+{c}-{a}-{b}", "({a}) {b}", "{c}{a}{b}", "+{c}{a}{b}",
                  "{a}.{b}", "00{c} {a} {b}"]  # fmt: skip


@st.composite
def phones(draw: st.DrawFn) -> str:
    country = draw(st.integers(1, 999))
    area = draw(st.integers(100, 9999))
    line = draw(st.integers(10_000, 9_999_999))
    return draw(st.sampled_from(_PHONE_FORMATS)).format(c=country, a=area, b=line)


def _echo(kind: str, email: str, phone: str) -> bytes:
    text = f"Invalid profile: email {email} / phone {phone} rejected"
    bodies = {
        "meta": {"error": {"message": text, "code": 100}},
        "klaviyo": {"errors": [{"detail": text, "source": {"pointer": email}}]},
        "hubspot": {"message": text, "context": {"email": [email], "phone": [phone]}},
        "unknown": {"problem": {"input": {"email": email, "phone": phone}}},
    }
    if kind == "text":
        return f"<html>{text} (email={email}, phone={phone})</html>".encode()
    return json.dumps(bodies[kind]).encode()


# monkeypatch only sets the same no-op sleep for every example.
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    email=st.emails(),
    phone=phones(),
    kind=st.sampled_from(["meta", "klaviyo", "hubspot", "unknown", "text"]),
    final=st.sampled_from([400, 422, 500]),
)
def test_no_email_or_phone_leaks_from_echoed_errors(email, phone, kind, final, monkeypatch):
    monkeypatch.setattr(push_module, "_sleep", lambda seconds: None)
    body = {"attributes": [{"external_id": "c1", "email": email, "phone": phone}]}
    request = Request("braze", "POST", "/users/track", body, n_customers=1)
    export = sk.exporters.AudienceExport(
        (request,),
        sk.exporters.ExportReport("braze", "A", "add", 1, 1, {}, {"email": 1}, {}, 1),
    )
    answers = iter([500, 502, final])

    def answer(http_request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers, final), content=_echo(kind, email, phone))

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("segmentkit.push")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), pytest.raises(PushError) as caught:
            push(
                export,
                credentials=CREDENTIALS["braze"],
                client=_mock_client(answer),
                base_url="http://x",
                max_retries=2,
                progress=True,
            )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    error = caught.value
    texts = [str(error), repr(error), repr(error.request), str(error.request)]
    texts += [str(error.summary), repr(error.summary), repr(export), str(export)]
    texts += [record.getMessage() for record in records]
    texts += [stderr.getvalue()]
    chained = error.__cause__ or error.__context__
    if chained is not None:
        texts.append(repr(chained))
    digits = "".join(ch for ch in phone if ch.isdigit())
    for text in texts:
        assert email not in text
        assert email.lower() not in text.lower()
        assert phone not in text
        assert digits not in text  # the normalised form platforms hash
    assert records, "retries are logged"
    assert "HTTP" in str(error)


def test_repr_of_requests_and_exports_shows_no_body():
    raw = pd.DataFrame(
        {
            "id": ["c1", "c2"],
            "email": ["jane.doe@gmail.com", "bob@example.co.uk"],
            "phone": ["+1 650 555 0123", "+44 20 7183 8750"],
            "ok": [True, True],
        }
    )
    customers = sk.Customers.from_frame(raw, customer_id="id", consent_email="ok")
    segmentation = _segmentation({"c1": "A", "c2": "A"})
    export = sk.exporters.build_klaviyo(segmentation, "A", customers, list_id="L")
    for text in (repr(export), str(export), repr(export.requests), repr(export.requests[0])):
        assert "jane" not in text
        assert "bob@" not in text
        assert "7183" not in text
    assert repr(export) == (
        "AudienceExport(platform='klaviyo', segment='A', operation='add', requests=1, "
        "batches=0..0, customers=2)"
    )
    assert repr(export.requests[0]) == (
        "Request(platform='klaviyo', method='POST', path='/api/profile-bulk-import-jobs', "
        "batch=0, n_customers=2, body=<1 key(s), hidden>)"
    )


def _profiles(ids: list[str], **columns: list[Any]) -> tuple[sk.Segmentation, sk.Customers]:
    raw = pd.DataFrame({"id": ids, "ok": [True] * len(ids), **columns})
    customers = sk.Customers.from_frame(
        raw, customer_id="id", consent_email="ok", consent_ads="ok"
    )
    return _segmentation(dict.fromkeys(ids, "A")), customers


@pytest.mark.parametrize(
    ("builder", "params"),
    [("build_klaviyo", {"list_id": "L"}), ("build_braze", {}),
     ("build_meta", {"audience_id": "1"})],
)  # fmt: skip
def test_personal_looking_customer_ids_need_an_opt_in(builder, params):
    ids = ["jane.doe@gmail.com", "+44 20 7183 8750", "(650) 555-0123", "cust-1", "1234567"]
    segmentation, customers = _profiles(ids, email=["x@y.com"] * 5)
    build = getattr(sk.exporters, builder)
    with pytest.raises(ContractError) as caught:
        build(segmentation, "A", customers, **params)
    message = str(caught.value)
    assert "allow_personal_external_id=True" in message
    assert "3 customer id(s)" in message
    assert "1 like an e-mail address, 2 like a phone number" in message
    for value in ids[:3]:
        assert value not in message
    export = build(segmentation, "A", customers, allow_personal_external_id=True, **params)
    assert export.report.exported == 5


def test_a_customer_id_that_is_the_customers_phone_is_personal():
    segmentation, customers = _profiles(
        ["6505550123", "10023"], phone=["+1 (650) 555-0123", "+1 (650) 555-0199"]
    )
    with pytest.raises(ContractError, match="0 like an e-mail address, 1 like a phone"):
        sk.exporters.build_braze(segmentation, "A", customers, consent="consent_email")
    # Numeric shop ids that are nobody's phone pass.
    segmentation, customers = _profiles(["6505550123", "10023"], phone=["+1 212 555 0100", None])
    export = sk.exporters.build_braze(segmentation, "A", customers)
    assert export.report.exported == 2


# --------------------------------------------------------------------------- atomic writes


def test_an_interrupted_atomic_write_leaves_no_temporary(tmp_path):
    from segmentkit._common._files import write_atomic

    target = tmp_path / "result.csv"
    target.write_text("before")

    def interrupted(temporary: Path) -> None:
        temporary.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, interrupted)
    assert target.read_text() == "before"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.csv"]


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    from segmentkit._common._files import write_atomic

    target = tmp_path / "result.json"
    script = (
        "import os, sys\n"
        "from segmentkit._common._files import write_atomic\n"
        "def die(temporary):\n"
        "    temporary.write_text('half')\n"
        "    os._exit(9)  # killed: no finally runs\n"
        "write_atomic(sys.argv[1], die)\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    completed = subprocess.run(
        [sys.executable, "-c", script, str(target)], env=environment, check=False
    )
    assert completed.returncode == 9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1
    assert left[0].startswith(".result.json.")
    assert left[0].endswith(".tmp")
    # A temporary of a write still running (this process) is kept; the dead one's goes.
    running = tmp_path / f".result.json.{os.getpid()}.abcdefgh.tmp"
    running.write_text("in progress")
    write_atomic(target, lambda temporary: temporary.write_text("done"))
    assert target.read_text() == "done"
    if os.name == "posix":
        assert sorted(p.name for p in tmp_path.iterdir()) == [running.name, "result.json"]
