"""Bad inputs of the exports: the export command, the builders and k-means on tiny inputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import segmentkit as sk
from _bad_inputs import BadInput, CliFailure, run_cli
from segmentkit.errors import InvalidParameterError


def _files(folder: Path, customers: str | None = None) -> tuple[Path, Path]:
    segments = folder / "segments.csv"
    segments.write_text("customer_id,segment_id,segment\nc1,0,VIP\nc2,0,VIP\nc3,1,Other\n")
    profiles = folder / "customers.csv"
    profiles.write_text(
        customers
        if customers is not None
        else "id,mail,ok\nc1,jane@example.com,yes\nc2,bob@example.com,yes\nc3,x@y.fi,no\n"
    )
    return segments, profiles


def _export(folder: Path, *argv: str, to: str = "meta", customers: str | None = None) -> None:
    segments, profiles = _files(folder, customers)
    run_cli(
        "-q", "export", str(segments), "--customers", str(profiles), "--map-customers",
        "customer_id=id", "email=mail", "consent_ads=ok", "consent_email=ok",
        "--to", to, "--segment", "VIP", "--out", str(folder / "out"), *argv,
    )  # fmt: skip


def _segments_file(folder: Path, content: str) -> None:
    _, profiles = _files(folder)
    segments = folder / "assignments.json"
    segments.write_text(content)
    run_cli(
        "-q", "export", str(segments), "--customers", str(profiles), "--map-customers",
        "customer_id=id", "consent_ads=ok", "--to", "meta", "--segment", "VIP",
        "--param", "audience_id=1", "--out", str(folder / "out"),
    )  # fmt: skip


def _missing_segments_file(folder: Path) -> None:
    _, profiles = _files(folder)
    run_cli(
        "-q", "export", str(folder / "nope.csv"), "--customers", str(profiles),
        "--to", "braze", "--segment", "VIP", "--out", str(folder),
    )  # fmt: skip


def _pair() -> tuple[sk.Segmentation, sk.Customers]:
    frame = pd.DataFrame({"customer_id": ["c1", "c2"], "segment_id": [0, 0], "segment": "VIP"})
    segmentation = sk.Segmentation.from_assignments(frame)
    customers = sk.Customers.from_frame(
        pd.DataFrame({"id": ["c1", "c2"], "mail": ["a@b.fi", "c@d.se"], "ok": [True, True]}),
        customer_id="id",
        email="mail",
        consent_ads="ok",
    )
    return segmentation, customers


def _kmeans(n: int, **params: object) -> None:
    raw, mapping = sk.datasets.load_sample()
    features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    few = sk.CustomerFeatures.from_frame(features.frame.iloc[:n], as_of=features.as_of)
    sk.KMeansSegmenter(random_state=0, **params).fit(few)  # type: ignore[arg-type]


def _identical(**params: object) -> None:
    raw, mapping = sk.datasets.load_sample()
    features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    frame = features.frame.iloc[:40].copy()
    frame[:] = frame.iloc[0].to_numpy()
    same = sk.CustomerFeatures.from_frame(frame, as_of=features.as_of)
    sk.KMeansSegmenter(random_state=0, **params).fit(same)  # type: ignore[arg-type]


def _klaviyo_remove() -> None:
    segmentation, customers = _pair()
    sk.exporters.build_klaviyo(segmentation, "VIP", customers, list_id="L", operation="remove")


def _meta_batch() -> None:
    segmentation, customers = _pair()
    sk.exporters.build_meta(segmentation, "VIP", customers, audience_id=1, batch_size=20_000)


def _to_json_missing_folder(folder: Path) -> None:
    segmentation, customers = _pair()
    export = sk.exporters.build_meta(segmentation, "VIP", customers, audience_id=1)
    export.to_json(folder / "no" / "such" / "folder" / "meta.json")


CASES = [
    # --- the export command -------------------------------------------------------------
    BadInput(
        "exports-cli-meta-without-audience-id",
        lambda folder: _export(folder),
        CliFailure,
        ("--to meta needs --param audience_id=...",),
    ),
    BadInput(
        "exports-cli-google-without-list",
        lambda folder: _export(folder, "--param", "customer_id=123-456-7890", to="google_ads"),
        CliFailure,
        ("--to google_ads needs --param user_list_id=...",),
    ),
    BadInput(
        "exports-cli-klaviyo-without-list-id",
        lambda folder: _export(folder, to="klaviyo"),
        CliFailure,
        ("--to klaviyo needs --param list_id=...",),
    ),
    BadInput(
        "exports-cli-mailchimp-without-list-id",
        lambda folder: _export(folder, to="mailchimp"),
        CliFailure,
        ("--to mailchimp needs --param list_id=...",),
    ),
    BadInput(
        "exports-cli-unknown-param",
        lambda folder: _export(folder, "--param", "audience_id=1", "audiance=2"),
        CliFailure,
        ("--param audiance is not a parameter of --to meta", "audience_id"),
    ),
    BadInput(
        "exports-cli-text-batch-size",
        lambda folder: _export(folder, "--param", "audience_id=1", "batch_size=lots"),
        CliFailure,
        ("--param batch_size must be a whole number", "lots"),
    ),
    BadInput(
        "exports-cli-unknown-segment",
        lambda folder: _export(folder, "--param", "audience_id=1", "--segment", "Gold"),
        CliFailure,
        ("No segment named 'Gold'", "VIP"),
    ),
    BadInput(
        "exports-cli-empty-customers-file",
        lambda folder: _export(folder, "--param", "audience_id=1", customers=""),
        CliFailure,
        ("--customers file", "customers.csv", "is empty"),
    ),
    BadInput(
        "exports-cli-customers-without-id-column",
        lambda folder: _export(folder, "--param", "audience_id=1", customers="x,y\n1,2\n"),
        CliFailure,
        ("'id'", "customer_id", "--map-customers KEY=COLUMN"),
    ),
    BadInput(
        "exports-cli-no-consent-column",
        lambda folder: _export(
            folder, "--param", "audience_id=1", customers="id,mail\nc1,a@b.fi\n"
        ),
        CliFailure,
        ("'ok'", "consent_ads", "--map-customers KEY=COLUMN"),
    ),
    BadInput(
        "exports-cli-consent-flag-not-mapped",
        lambda folder: _export(folder, "--param", "audience_id=1", "consent=vip_ok"),
        CliFailure,
        ("Consent flag 'vip_ok'", "--map-customers vip_ok=<column>", "--param consent=null"),
    ),
    BadInput(
        "exports-cli-segments-json-without-assignments",
        lambda folder: _segments_file(folder, '{"engine": "rfm"}'),
        CliFailure,
        ("segments file", "assignments.json", "'assignments'", "segmentkit segment --out"),
    ),
    BadInput(
        "exports-cli-segments-file-missing",
        _missing_segments_file,
        CliFailure,
        ("segments file", "nope.csv", "does not exist"),
    ),
    # --- builders -----------------------------------------------------------------------
    BadInput(
        "exports-klaviyo-remove",
        lambda folder: _klaviyo_remove(),
        ValueError,
        ("Klaviyo profile id", "Remove them in Klaviyo"),
    ),
    BadInput(
        "exports-meta-batch-above-limit",
        lambda folder: _meta_batch(),
        ValueError,
        ("batch_size", "10000", "20000"),
    ),
    BadInput(
        "exports-to-json-missing-folder",
        _to_json_missing_folder,
        FileNotFoundError,
        ("folder", "does not exist"),
    ),
    # --- k-means on tiny inputs ---------------------------------------------------------
    BadInput(
        "exports-kmeans-auto-k-on-two-customers",
        lambda folder: _kmeans(2),
        InvalidParameterError,
        ("more than 2 customers", "got 2", "n_clusters"),
    ),
    BadInput(
        "exports-kmeans-more-clusters-than-customers",
        lambda folder: _kmeans(3, n_clusters=5),
        InvalidParameterError,
        ("n_customers=3", "n_clusters=5", "at most 3"),
    ),
    BadInput(
        "exports-kmeans-one-customer",
        lambda folder: _kmeans(1),
        InvalidParameterError,
        ("at least 2 customers", "got 1"),
    ),
    BadInput(
        "exports-kmeans-k-range-above-customers",
        lambda folder: _kmeans(3, k_range=(3, 6)),
        InvalidParameterError,
        ("k_range=(3, 6)", "got 3 customers"),
    ),
    BadInput(
        "exports-kmeans-identical-customers",
        lambda folder: _identical(),
        InvalidParameterError,
        ("40 customers", "1 distinct"),
    ),
    BadInput(
        "exports-cli-kmeans-two-customers",
        lambda folder: _segment_two(folder),
        CliFailure,
        ("--param n_clusters=2", "got 2 customers"),
    ),
]


def _segment_two(folder: Path) -> None:
    orders = folder / "orders.csv"
    orders.write_text("customer,day,total\na,2024-01-01,5\nb,2024-01-02,9\n")
    run_cli(
        "-q", "segment", str(orders), "--map", "customer_id=customer", "timestamp=day",
        "amount=total", "--engine", "kmeans",
    )  # fmt: skip
