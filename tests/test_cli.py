"""The segmentkit command: quickstart, validate, segment, engines, errors."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from segmentkit.cli import main


@pytest.fixture
def orders_csv(tmp_path):
    path = tmp_path / "orders.csv"
    pd.DataFrame(
        {
            "CustomerID": ["007", "007", "010", "011", None, "012"],
            "InvoiceNo": ["1", "2", "3", "C3", "5", "6"],
            "InvoiceDate": [
                "2024-01-05",
                "2024-03-01",
                "2024-02-03",
                "2024-02-04",
                "2024-02-05",
                "2024-06-20",
            ],
            "Total": [20.0, 35.5, 12.0, 12.0, 9.9, 80.0],
        }
    ).to_csv(path, index=False)
    return path


MAP = ["customer_id=CustomerID", "timestamp=InvoiceDate", "amount=Total", "order_id=InvoiceNo"]


def test_quickstart_runs_end_to_end(tmp_path, capsys):
    assert main(["-q", "quickstart", "--out", str(tmp_path / "qs")]) == 0
    out = capsys.readouterr().out
    assert "transactions: 29902 rows read" in out
    assert "Champions" in out
    assert "Cart abandoners" in out
    written = pd.read_csv(tmp_path / "qs" / "rfm_segments.csv", dtype={"customer_id": str})
    assert len(written) == 800
    assert (tmp_path / "qs" / "lifecycle_segments.csv").exists()
    # Named clusters, most valuable first, and a report to open in a browser.
    clusters = pd.read_csv(tmp_path / "qs" / "cluster_segments.csv", dtype={"customer_id": str})
    assert len(clusters) == 800
    assert "Behaviour clusters (kmeans)" in out
    table = out.split("Behaviour clusters (kmeans)")[1].split("\n\n")[0].splitlines()[2:]
    revenue = [float(line.rsplit(None, 1)[1].rstrip("%")) for line in table]
    assert revenue == sorted(revenue, reverse=True)
    assert all(len(line) <= 100 for line in out.splitlines())
    report = (tmp_path / "qs" / "rfm_report.html").read_text(encoding="utf-8")
    assert 'id="profile-heatmap"' in report


def test_validate_prints_the_report(orders_csv, capsys):
    assert (
        main(
            ["-q", "validate", str(orders_csv), "--map", *MAP, "--policy", "cancellation_prefix=C"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "6 rows read, 5 kept" in out
    assert "missing_customer_id: 1" in out


def test_segment_writes_assignments_and_catalog(orders_csv, tmp_path, capsys):
    out_file = tmp_path / "segments.csv"
    catalog = tmp_path / "catalog.csv"
    code = main(
        [
            "-q",
            "segment",
            str(orders_csv),
            "--map",
            *MAP,
            "--policy",
            "returns=exclude",
            "cancellation_prefix=C",
            "--engine",
            "rfm",
            "--as-of",
            "2024-07-01",
            "--out",
            str(out_file),
            "--catalog-out",
            str(catalog),
        ]
    )
    assert code == 0
    written = pd.read_csv(out_file, dtype={"customer_id": str})
    assert sorted(written["customer_id"]) == ["007", "010", "012"]
    assert "return_or_cancellation: 1" in capsys.readouterr().out
    assert pd.read_csv(catalog)["customers"].sum() == 3


def test_segment_with_rules_file_and_config(orders_csv, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('default = "Rest"\n[[rules]]\nname = "Big"\nwhen = "monetary > 50"\n')
    config = tmp_path / "config.toml"
    config.write_text(
        "[transactions]\n"
        'map = {customer_id = "CustomerID", timestamp = "InvoiceDate", amount = "Total"}\n'
        "[engine]\n"
        'name = "rules"\n'
    )
    out_file = tmp_path / "segments.json"
    code = main(
        [
            "-q",
            "segment",
            str(orders_csv),
            "--config",
            str(config),
            "--rules",
            str(rules),
            "--out",
            str(out_file),
        ]
    )
    assert code == 0
    assert '"segment": "Big"' in out_file.read_text()


def test_errors_are_one_clean_message_without_traceback(orders_csv, capsys):
    code = main(
        [
            "-q",
            "validate",
            str(orders_csv),
            "--map",
            "customer_id=CustomerId",
            "timestamp=InvoiceDate",
            "amount=Total",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("segmentkit: error: Column 'CustomerId' (mapped to 'customer_id')")
    assert "Did you mean 'CustomerID'?" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(orders_csv):
    with pytest.raises(Exception, match="CustomerId"):
        main(["--debug", "validate", str(orders_csv), "--map", "customer_id=CustomerId"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate", "missing.csv", "--map", "customer_id=x"], "File not found: missing.csv"),
        (["segment", "{orders}", "--map", *MAP, "--engine", "kmeanz"], "Unknown engine 'kmeanz'"),
        (["validate", "{orders}", "--map", "customer_id"], "--map must be KEY=VALUE"),
        (["segment", "{orders}", "--map", *MAP, "--param", "n_bins=1"], "'n_bins' parameter"),
    ],
)
def test_usage_errors(orders_csv, capsys, argv, message):
    argv = [a.replace("{orders}", str(orders_csv)) for a in argv]
    assert main(["-q", *argv]) == 1
    assert message in capsys.readouterr().err


def test_engines_lists_builtins(capsys):
    assert main(["engines"]) == 0
    assert {"kmeans", "rfm", "rules"} <= set(capsys.readouterr().out.split())


def test_console_script_help_teaches():
    result = subprocess.run(
        [sys.executable, "-m", "segmentkit", "segment", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--map KEY=COLUMN" in result.stdout
    assert "examples:" in result.stdout


def test_rules_engine_default_preset_adapts_to_the_columns(orders_csv, tmp_path, capsys):
    # No category column is mapped: the preset leaves the category-fan rule out.
    code = main(["-q", "segment", str(orders_csv), "--map", *MAP, "--engine", "rules"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Occasional" in out
    assert "Category fans" not in out


def test_config_engine_params_apply_only_to_the_engine_they_name(orders_csv, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[engine]\nname = "rfm"\nparams = {n_bins = 5}\n')
    code = main(
        [
            "-q",
            "segment",
            str(orders_csv),
            "--map",
            *MAP,
            "--config",
            str(config),
            "--engine",
            "rules",
        ]
    )
    assert code == 0


def test_catalog_out_format_follows_the_suffix(orders_csv, tmp_path):
    catalog = tmp_path / "catalog.parquet"
    code = main(["-q", "segment", str(orders_csv), "--map", *MAP, "--catalog-out", str(catalog)])
    assert code == 0
    assert pd.read_parquet(catalog)["customers"].sum() == 4


def test_unknown_output_suffix_is_an_error(orders_csv, tmp_path, capsys):
    code = main(
        ["-q", "segment", str(orders_csv), "--map", *MAP, "--out", str(tmp_path / "x.xlsx")]
    )
    assert code == 1
    assert "end the name with .csv, .parquet or .json" in capsys.readouterr().err


def test_progress_line_is_closed_before_the_error(orders_csv, capsys):
    main(["validate", str(orders_csv), "--map", "customer_id=nope"])
    err = capsys.readouterr().err
    assert " failed\nsegmentkit: error:" in err


def test_save_model_then_score_with_it(orders_csv, tmp_path, capsys):
    model = tmp_path / "kmeans.json"
    first = tmp_path / "first.csv"
    code = main(
        [
            "-q",
            "segment",
            str(orders_csv),
            "--map",
            *MAP,
            "--engine",
            "kmeans",
            "--param",
            "n_clusters=2",
            "random_state=0",
            "--save-model",
            str(model),
            "--out",
            str(first),
        ]
    )
    assert code == 0
    assert model.exists()
    second = tmp_path / "second.csv"
    code = main(
        [
            "-q",
            "segment",
            str(orders_csv),
            "--map",
            *MAP,
            "--model",
            str(model),
            "--out",
            str(second),
        ]
    )
    assert code == 0
    pd.testing.assert_frame_equal(pd.read_csv(first), pd.read_csv(second))


def test_model_and_engine_flags_conflict(orders_csv, tmp_path, capsys):
    code = main(
        ["-q", "segment", str(orders_csv), "--map", *MAP, "--model", "m.json", "--engine", "rfm"]
    )
    assert code == 1
    assert "--model reuses a fitted model" in capsys.readouterr().err


def test_pickled_models_need_the_trust_flag_on_the_command_line(orders_csv, tmp_path, capsys):
    model = tmp_path / "hdbscan.json"
    code = main(
        [
            "-q",
            "segment",
            str(orders_csv),
            "--map",
            *MAP,
            "--engine",
            "hdbscan",
            "--param",
            "min_cluster_size=2",
            "min_samples=1",
            'features=["monetary"]',
            "--save-model",
            str(model),
        ]
    )
    assert code == 0
    assert main(["-q", "segment", str(orders_csv), "--map", *MAP, "--model", str(model)]) == 1
    assert "trust_pickle" in capsys.readouterr().err
    code = main(
        ["-q", "segment", str(orders_csv), "--map", *MAP, "--model", str(model), "--trust-pickle"]
    )
    assert code == 0


def test_export_writes_platform_requests_and_the_report(tmp_path, capsys):
    segments = tmp_path / "segments.csv"
    pd.DataFrame(
        {
            "customer_id": ["cust-001", "cust-002", "cust-003"],
            "segment_id": [0, 0, 1],
            "segment": ["VIP", "VIP", "Other"],
        }
    ).to_csv(segments, index=False)
    customers = tmp_path / "customers.csv"
    pd.DataFrame(
        {
            "id": ["cust-001", "cust-002"],
            "mail": ["  Jane.Doe@Gmail.com ", "not-an-email"],
            "ads": ["yes", "yes"],
        }
    ).to_csv(customers, index=False)
    code = main(
        [
            "-q",
            "export",
            str(segments),
            "--customers",
            str(customers),
            "--map-customers",
            "customer_id=id",
            "email=mail",
            "consent_ads=ads",
            "--to",
            "meta",
            "--segment",
            "VIP",
            "--param",
            "audience_id=23850000000000001",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "2 members, 1 exported" in out
    text = (tmp_path / "out" / "meta-vip.json").read_text()
    assert "831f6494ad6be4fcb3a724c3d5fef22d3ceffa3c62ef3a7984e45a0ea177f982" in text
    assert "jane.doe" not in text.lower()
    assert "/v25.0/23850000000000001/users" in text


def test_export_push_sends_to_the_platform_and_reruns_send_nothing(tmp_path, capsys, monkeypatch):
    import json as _json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[str, dict]] = []

    class Platform(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append((self.path, _json.loads(self.rfile.read(length))))
            assert self.headers["Authorization"] == "Bearer braze-secret-key"
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"message": "success"}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Platform)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        segments = tmp_path / "segments.csv"
        pd.DataFrame(
            {"customer_id": ["c1", "c2"], "segment_id": [0, 0], "segment": ["VIP", "VIP"]}
        ).to_csv(segments, index=False)
        customers = tmp_path / "customers.csv"
        pd.DataFrame({"id": ["c1", "c2"], "ok": ["yes", "no"]}).to_csv(customers, index=False)
        monkeypatch.setenv("SEGMENTKIT_BRAZE_API_KEY", "braze-secret-key")
        monkeypatch.setenv("SEGMENTKIT_BRAZE_INSTANCE", "iad-01")
        argv = [
            "-q",
            "export",
            str(segments),
            "--customers",
            str(customers),
            "--map-customers",
            "customer_id=id",
            "consent_email=ok",
            "--to",
            "braze",
            "--segment",
            "VIP",
            "--out",
            str(tmp_path / "out"),
            "--push",
            "--base-url",
            f"http://127.0.0.1:{server.server_port}",
        ]
        assert main(argv) == 0
        assert main(argv) == 0  # the journal makes the re-run send nothing
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert "pushed 1 request(s), 1 customer(s)" in out
    assert "1 already acknowledged (skipped)" in out
    assert "braze-secret-key" not in out
    assert len(received) == 1
    path, body = received[0]
    assert path == "/users/track"
    assert body["attributes"][0]["external_id"] == "c1"


def test_export_push_without_credentials_names_the_variable(tmp_path, capsys, monkeypatch):
    segments = tmp_path / "segments.csv"
    pd.DataFrame({"customer_id": ["c1"], "segment_id": [0], "segment": ["VIP"]}).to_csv(
        segments, index=False
    )
    customers = tmp_path / "customers.csv"
    pd.DataFrame({"id": ["c1"], "ok": ["yes"]}).to_csv(customers, index=False)
    monkeypatch.delenv("SEGMENTKIT_BRAZE_API_KEY", raising=False)
    code = main(
        [
            "-q",
            "export",
            str(segments),
            "--customers",
            str(customers),
            "--map-customers",
            "customer_id=id",
            "consent_email=ok",
            "--to",
            "braze",
            "--segment",
            "VIP",
            "--out",
            str(tmp_path / "out"),
            "--push",
        ]
    )
    assert code == 1
    assert "SEGMENTKIT_BRAZE_API_KEY" in capsys.readouterr().err


# ------------------------------------------------------------------ export errors


@pytest.fixture
def export_files(tmp_path):
    segments = tmp_path / "segments.csv"
    pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3"],
            "segment_id": [0, 0, 1],
            "segment": ["VIP"] * 2 + ["Other"],
        }
    ).to_csv(segments, index=False)
    customers = tmp_path / "customers.csv"
    pd.DataFrame(
        {
            "id": ["c1", "c2", "c3"],
            "mail": ["jane@example.com", "bob@example.co.uk", "eve@example.fi"],
            "Country": ["United Kingdom", "European Community", "Suomi"],
            "ok": ["yes", "yes", "no"],
        }
    ).to_csv(customers, index=False)
    return segments, customers


def _export(files, tmp_path, *extra, to="meta", segment="VIP"):
    segments, customers = files
    return main(
        ["-q", "export", str(segments), "--customers", str(customers), "--map-customers",
         "customer_id=id", "email=mail", "country=Country", "consent_ads=ok",
         "consent_email=ok", "--to", to, "--segment", segment, "--out", str(tmp_path / "out"),
         *extra]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("to", "given", "wanted"),
    [
        ("meta", [], "--param audience_id=..."),
        ("google_ads", [], "--param customer_id=... user_list_id=..."),
        ("google_ads", ["customer_id=1"], "--param user_list_id=..."),
        ("klaviyo", [], "--param list_id=..."),
        ("mailchimp", [], "--param list_id=..."),
    ],
)
def test_export_missing_builder_parameter_names_the_option(
    export_files, tmp_path, capsys, to, given, wanted
):
    args = ["--param", *given] if given else []
    assert _export(export_files, tmp_path, *args, to=to) == 1
    err = capsys.readouterr().err
    assert f"--to {to} needs {wanted}" in err
    assert "keyword-only argument" not in err


@pytest.mark.parametrize("to", ["hubspot", "braze"])
def test_export_without_required_parameters_runs(export_files, tmp_path, to):
    assert _export(export_files, tmp_path, to=to) == 0


@pytest.mark.parametrize(
    ("params", "words"),
    [
        (["audience_id=1", "colour=red"], ["--param colour is not a parameter of --to meta",
                                           "audience_id, operation"]),
        (["audience_id=1", "batch_size=many"], ["--param batch_size must be a whole number",
                                                "'many'"]),
        (["audience_id=1", "batch_size=true"], ["--param batch_size must be a whole number"]),
        (["audience_id=1", "operation=merge"], ["'operation' parameter of build_meta must be",
                                                "'merge'"]),
        (["audience_id=1", "consent=vip_ok"], ["Consent flag 'vip_ok'",
                                              "--map-customers vip_ok=<column>",
                                              "--param consent=null"]),
    ],
)  # fmt: skip
def test_export_bad_parameters_are_named(export_files, tmp_path, capsys, params, words):
    assert _export(export_files, tmp_path, "--param", *params) == 1
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert "Traceback" not in err


def test_export_list_parameters_are_comma_separated(export_files, tmp_path, capsys):
    code = _export(
        export_files, tmp_path, "--param", "audience_id=1", "suppression=c1,c2", "consent=null"
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "excluded, suppressed: 2" in out
    assert "nothing to send" in out


def test_export_klaviyo_properties_from_the_command_line(export_files, tmp_path):
    _, customers = export_files
    frame = pd.read_csv(customers).assign(tier=["gold", "silver", "none"])
    frame.to_csv(customers, index=False)
    code = _export(
        export_files, tmp_path, "--param", "list_id=L1", "properties=tier", to="klaviyo"
    )
    assert code == 0
    import json

    body = json.loads((tmp_path / "out" / "klaviyo-vip.json").read_text())
    profiles = body["requests"][0]["body"]["data"]["attributes"]["profiles"]["data"]
    assert [p["attributes"]["properties"]["tier"] for p in profiles] == ["gold", "silver"]
    assert [p["attributes"].get("location") for p in profiles] == [{"country": "GB"}, None]


def test_export_country_names_are_sent_and_the_rest_reported(export_files, tmp_path, capsys):
    import hashlib
    import json

    assert _export(export_files, tmp_path, "--param", "audience_id=1") == 0
    out = capsys.readouterr().out
    assert "'European Community' 1" in out
    document = json.loads((tmp_path / "out" / "meta-vip.json").read_text())
    assert document["report"]["unknown_countries"] == {"European Community": 1}
    payload = document["requests"][0]["body"]["payload"]
    column = payload["schema"].index("COUNTRY")
    assert [row[column] for row in payload["data"]] == [hashlib.sha256(b"gb").hexdigest(), ""]


@pytest.mark.parametrize(
    ("which", "content", "words"),
    [
        ("segments", None, ["segments file", "does not exist"]),
        ("segments", "", ["segments file", "is empty"]),
        ("segments", "a,b\n1,2\n", ["segments file", "segment_id", "segmentkit segment --out"]),
        ("segments", 'customer_id,segment_id,segment\n"c1,0', ["segments file", "tokenizing"]),
        ("customers", None, ["--customers file", "does not exist"]),
        ("customers", "", ["--customers file", "is empty"]),
        ("customers", "x,y\n1,2\n", ["'id'", "--map-customers KEY=COLUMN"]),
    ],
)
def test_export_unreadable_files_are_named(export_files, tmp_path, capsys, which, content, words):
    segments, customers = export_files
    path = segments if which == "segments" else customers
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    assert _export(export_files, tmp_path, "--param", "audience_id=1") == 1
    err = capsys.readouterr().err
    assert str(path.name) in err or "'id'" in err
    for word in words:
        assert word in err
    assert "Traceback" not in err


def test_export_unknown_segment_lists_the_segments(export_files, tmp_path, capsys):
    assert _export(export_files, tmp_path, "--param", "audience_id=1", segment="Gold") == 1
    err = capsys.readouterr().err
    assert "No segment named 'Gold'" in err
    assert "'Other', 'VIP'" in err


def test_export_without_a_consent_column_says_how_to_map_it(export_files, tmp_path, capsys):
    segments, customers = export_files
    code = main(
        ["-q", "export", str(segments), "--customers", str(customers), "--map-customers",
         "customer_id=id", "email=mail", "--to", "meta", "--segment", "VIP",
         "--param", "audience_id=1", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "--map-customers consent_ads=<column>" in err


def test_export_platform_ids_are_kept_as_written(export_files, tmp_path):
    import json

    assert _export(export_files, tmp_path, "--param", "list_id=12e3", to="klaviyo") == 0
    document = json.loads((tmp_path / "out" / "klaviyo-vip.json").read_text())
    relationships = document["requests"][0]["body"]["data"]["relationships"]
    assert relationships["lists"]["data"][0]["id"] == "12e3"
