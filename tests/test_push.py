"""The push client against a local contract server (loopback only, bounded)."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import itertools
import json
import logging
import random
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
from hypothesis import given, settings
from hypothesis import strategies as st

import segmentkit as sk
from segmentkit.exporters import Request
from segmentkit.exporters import _push as push_module
from segmentkit.exporters._diff import membership_changes, restrict
from segmentkit.exporters._push import (
    Credentials,
    PushError,
    PushSummary,
    TokenBucket,
    _retry_after,
    push,
)

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
    ``("429", retry_after)``, ``("500",)``, ``("slow", seconds)``, ``("drop",)`` or
    ``("400", body)``. Faulted attempts are not recorded as delivered.
    """

    MAX_REQUESTS = 200

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.expected_headers = EXPECTED_HEADERS[platform]
        self.method, self.path = PATHS[platform]
        self.faults: dict[int, tuple[Any, ...]] = {}
        self.deliveries: Counter[str] = Counter()
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
                self.wfile.write(body)

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
                with server.lock:
                    server.deliveries[key] += 1
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
