"""Bad inputs of pushing to marketing platforms and of building their requests."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import pandas as pd

import segmentkit as sk
from _bad_inputs import BadInput, CliFailure, run_cli
from segmentkit.errors import ContractError, InvalidParameterError
from segmentkit.exporters import (
    Credentials,
    JournalLockedError,
    PushError,
    Request,
    build_braze,
    build_klaviyo,
    push,
)


def _requests() -> list[Request]:
    return [Request("braze", "POST", "/users/track", {"attributes": []}, n_customers=1)]


def _lock_held(tmp: Path) -> None:
    journal = tmp / "push.jsonl"
    holder = {"pid": 4242, "host": socket.gethostname() + "-other", "started_at": "now"}
    (tmp / "push.jsonl.lock").write_text(json.dumps(holder))
    push(_requests(), credentials=Credentials("braze", "k", instance="iad-01"), journal=journal)


def _customers(ids: list[str]) -> tuple[sk.Segmentation, sk.Customers]:
    raw = pd.DataFrame({"id": ids, "email": ["a@b.co"] * len(ids), "ok": [True] * len(ids)})
    customers = sk.Customers.from_frame(raw, customer_id="id", consent_email="ok")
    table = pd.DataFrame({"customer_id": ids, "segment_id": 0, "segment": "A"})
    return sk.Segmentation.from_assignments(table), customers


def _email_ids(tmp: Path) -> None:
    segmentation, customers = _customers(["jane.doe@gmail.com", "c2"])
    build_klaviyo(segmentation, "A", customers, list_id="L")


def _phone_ids(tmp: Path) -> None:
    segmentation, customers = _customers(["+44 20 7183 8750", "+1 650 555 0123"])
    build_braze(segmentation, "A", customers)


def _cli_email_ids(tmp: Path) -> None:
    (tmp / "segments.csv").write_text("customer_id,segment_id,segment\njane@x.com,0,A\n")
    (tmp / "customers.csv").write_text("id,ok\njane@x.com,true\n")
    run_cli(
        "-q", "export", str(tmp / "segments.csv"), "--customers", str(tmp / "customers.csv"),
        "--map-customers", "customer_id=id", "consent_email=ok", "--to", "braze",
        "--segment", "A", "--out", str(tmp / "out"),
    )  # fmt: skip


def _uncertain_create(tmp: Path) -> None:
    journal = tmp / "google.jsonl"
    path = "/v26/customers/1/offlineUserDataJobs:create"
    create = Request("google_ads", "POST", path, {"job": {}})
    entry = {"state": "sending", "key": create.key, "at": "2026-11-24T10:00:00+00:00"}
    journal.write_text(json.dumps(entry) + "\n")
    credentials = Credentials("google_ads", "t", developer_token="d")
    push([create], credentials=credentials, journal=journal, base_url="http://127.0.0.1:9")


CASES = [
    BadInput(
        "push-journal-locked",
        _lock_held,
        JournalLockedError,
        ("another push holds the journal", "push.jsonl.lock", "process 4242", "delete"),
    ),
    BadInput(
        "push-external-id-looks-like-email",
        _email_ids,
        ContractError,
        ("1 customer id(s)", "1 like an e-mail address", "allow_personal_external_id=True"),
    ),
    BadInput(
        "push-external-id-looks-like-phone",
        _phone_ids,
        ContractError,
        ("2 customer id(s)", "2 like a phone number", "Braze", "allow_personal_external_id"),
    ),
    BadInput(
        "push-cli-external-id-looks-like-email",
        _cli_email_ids,
        CliFailure,
        ("1 like an e-mail address", "--param allow_personal_external_id=true"),
    ),
    BadInput(
        "push-negative-max-backoff",
        lambda tmp: push(_requests(), dry_run=True, max_backoff=-1),
        InvalidParameterError,
        ("max_backoff", "-1", ">= 0"),
    ),
    BadInput(
        "push-infinite-max-backoff",
        lambda tmp: push(_requests(), dry_run=True, max_backoff=math.inf),
        InvalidParameterError,
        ("max_backoff", "inf", "finite"),
    ),
    BadInput(
        "push-zero-deadline",
        lambda tmp: push(_requests(), dry_run=True, deadline=0),
        InvalidParameterError,
        ("deadline", "> 0", "None"),
    ),
    BadInput(
        "push-uncertain-create-not-resent",
        _uncertain_create,
        PushError,
        ("offlineUserDataJobs:create", "may have created", "resend_uncertain_creates=True"),
    ),
]
