"""The HTML report: one self-contained file, escaped, atomic, and checked in a real browser."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import segmentkit as sk
from segmentkit.errors import InvalidParameterError
from segmentkit.report import _html as _html_report
from segmentkit.report._html import write_report

EVIL = "<script>alert('x')</script>\"'&"
HAS_ABTEST = importlib.util.find_spec("segmentkit.timeline._abtest") is not None


@pytest.fixture(scope="module")
def rfm(sample_features):
    return sk.RFMSegmenter().fit_predict(sample_features)


@pytest.fixture(scope="module")
def kmeans_model(sample_features):
    return sk.KMeansSegmenter(n_clusters=4, random_state=0).fit(sample_features)


@pytest.fixture(scope="module")
def runs(sample_tx):
    return sk.snapshots(
        sample_tx, sk.RFMSegmenter(), pd.date_range("2017-09-01", periods=3, freq="MS")
    )


@pytest.fixture(scope="module")
def moves(runs):
    return sk.migration(runs[0], runs[-1])


def _analysis(segments=("Champions", "At risk"), arms=("control", "offer_a")):
    """A small ExperimentAnalysis look-alike: the attributes the report reads."""
    rows = []
    for i, segment in enumerate(segments):
        for j, arm in enumerate(arms):
            rate = 0.08 + 0.03 * j + 0.01 * i
            control = j == 0
            rows.append(
                {
                    "segment": segment,
                    "arm": arm,
                    "customers": 400 + 10 * i,
                    "conversions": int(rate * 400),
                    "conversion_rate": rate,
                    "conversion_ci_low": rate - 0.025,
                    "conversion_ci_high": rate + 0.025,
                    "revenue_per_customer": 12.5 + j,
                    "revenue_ci_low": 10.0 + j,
                    "revenue_ci_high": 15.0 + j,
                    "conversion_lift": np.nan if control else 0.03 / 0.08,
                    "conversion_p_value": np.nan if control else 0.012,
                    "revenue_lift": np.nan if control else 0.08,
                    "revenue_p_value": np.nan if control else 0.31,
                    "conclusive": np.nan if control else i == 0,
                    "note": "" if control else "revenue difference may be noise",
                }
            )
    return SimpleNamespace(table=pd.DataFrame(rows), control=arms[0], confidence=0.95)


@pytest.fixture(scope="module")
def real_analysis(rfm):
    """analyze_test on the sample's RFM segments, with outcomes made up per arm."""
    groups = sk.assign_groups(rfm, arms={"control": 0.5, "offer": 0.5}, salt="report-test")
    frame = groups.table
    rng = np.random.default_rng(1)
    lift = np.where(frame["arm"].to_numpy() == "offer", 0.12, 0.0)
    converted = rng.random(len(frame)) < 0.2 + lift
    outcomes = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(),
            "converted": converted,
            "revenue": np.where(converted, rng.gamma(2.0, 15.0, len(frame)), 0.0),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small segments are not conclusive: it warns
        return sk.analyze_test(groups, outcomes)


def _report(tmp_path, segmentation, name="report.html", **kwargs):
    path = write_report(segmentation, tmp_path / name, **kwargs)
    return path, path.read_text(encoding="utf-8")


def _sections(text):
    return re.findall(r'<section id="([\w-]+)"', text)


# --- content -------------------------------------------------------------------------


def test_an_rfm_report_has_every_section_in_one_file(rfm, moves, runs, tmp_path):
    path, text = _report(
        tmp_path, rfm, migration=moves, analysis=_analysis(), snapshots=runs, title="Q4 review"
    )
    assert path == tmp_path / "report.html"
    assert text.startswith("<!DOCTYPE html>")
    assert _sections(text) == [
        "sizes",
        "catalog",
        "profiles",
        "rfm",
        "migration",
        "test",
        "snapshots",
    ]
    assert '<h1 id="report-title">Q4 review</h1>' in text
    # One catalog row per segment, empty segments included.
    catalog = text.split('id="catalog-table"')[1].split("</table>")[0]
    assert catalog.count("<tr data-segment=") == len(rfm.segments)
    assert 'data-segment="Champions"' in catalog
    # The header's facts.
    assert f"<b>{len(rfm):,}</b>" in text
    assert f"<b>{rfm.catalog['revenue'].sum():,.2f}</b>" in text  # money to the cent
    # The RFM grids: 25 cells each, customers and mean spend.
    assert len(re.findall(r'data-cell="\d-\d"', text)) == 50
    for chart in ("rfm-customers", "rfm-monetary", "migration-matrix", "drift-table"):
        assert f'id="{chart}"' in text
    assert text.count('<tr data-segment="Champions" data-arm=') == 2
    assert 'id="snapshots-chart"' in text
    assert "projection-chart" not in text


def test_real_migration_and_analysis_objects(rfm, moves, real_analysis, tmp_path):
    _, text = _report(tmp_path, rfm, migration=moves, analysis=real_analysis)
    table = real_analysis.table
    test = text.split('id="test-table"')[1].split("</table>")[0]
    assert test.count("<tr data-segment=") == len(table)
    assert test.count('<span class="badge">control</span>') == (table["arm"] == "control").sum()
    overall = table[(table["segment"] == "All customers") & (table["arm"] == "offer")].iloc[0]
    assert f"{overall['conversion_lift']:+.1%}" in test
    assert "significantly better" in test  # the 12-point lift over all 800 customers
    assert "too little data" in test  # the small segments
    matrix = text.split('id="migration-matrix"')[1].split("</table>")[0]
    assert matrix.count("<tr data-segment=") == len(moves.matrix)
    drift = text.split('id="drift-table"')[1].split("</table>")[0]
    assert drift.count("<tr data-segment=") == len(moves.drift)


def test_a_clustering_report_draws_the_customer_map_not_the_rfm_grid(
    kmeans_model, sample_features, tmp_path
):
    seg = kmeans_model.predict(sample_features)
    _, text = _report(tmp_path, seg, segmenter=kmeans_model)
    assert _sections(text) == ["sizes", "catalog", "profiles", "map"]
    assert "KMeansSegmenter clusters in" in text
    # Every customer is a dot (a zero-length path segment) or counted as outlying.
    dots = sum(path.count("h0") for path in re.findall(r' d="([^"]*)"', text))
    outside = re.search(r"(\d+) outlying customers fall outside the frame", text)
    assert dots + int(outside.group(1) if outside else 0) == len(seg)
    assert dots > 0.98 * len(seg)
    assert "rfm-customers" not in text


def test_the_map_samples_large_segmentations(kmeans_model, sample_features, tmp_path, monkeypatch):
    monkeypatch.setattr(_html_report, "PROJECTION_SAMPLE", 300)
    _, text = _report(tmp_path, kmeans_model.predict(sample_features))
    dots = sum(path.count("h0") for path in re.findall(r' d="([^"]*)"', text))
    assert dots <= 300
    assert "A random sample of 300 of the 800 customers is drawn." in text


def test_what_to_offer_lists_each_segments_items_with_share_and_lift(rfm, sample_tx, tmp_path):
    offers = sk.segment_items(rfm, sample_tx, "category", top=3)
    _, text = _report(tmp_path, rfm, offers=offers)
    assert _sections(text) == ["sizes", "catalog", "profiles", "rfm", "offers"]
    assert '<a href="#offers">What to offer</a>' in text
    table = text.split('id="offers-table"')[1].split("</table>")[0]
    assert table.count("<tr data-segment=") == len(offers)
    first = offers.iloc[0]
    row = table.split(f'<tr data-segment="{first["segment"]}" data-rank="1">')[1].split("</tr>")[0]
    assert f">{first['item']}</td>" in row
    assert f"{first['share']:.1%}" in row
    assert f"{first['lift']:.2f}×" in row
    # Segment-level figures only: no customer id.
    assert rfm.assignments["customer_id"].iloc[0] not in table
    assert "offers" not in _sections(_report(tmp_path, rfm, name="plain.html")[1])
    delegated = rfm.report(tmp_path / "delegated.html", offers=offers)
    assert 'id="offers-table"' in delegated.read_text(encoding="utf-8")


def test_what_to_offer_needs_the_items_table(rfm, tmp_path):
    with pytest.raises(ValueError, match=r"offers lacks the columns \['segment'"):
        write_report(rfm, tmp_path / "r.html", offers=pd.DataFrame({"item": ["a"]}))
    with pytest.raises(InvalidParameterError, match="'offers' parameter"):
        write_report(rfm, tmp_path / "r.html", offers="items.csv")
    empty = pd.DataFrame(
        columns=["segment", "rank", "item", "buyers", "share", "base_share", "lift"]
    )
    _, text = _report(tmp_path, rfm, offers=empty)
    assert "No item reaches the minimum of buyers." in text


def test_a_segmentation_read_from_a_file_still_gets_a_report(rfm, tmp_path):
    seg = sk.Segmentation.from_assignments(
        rfm.assignments[["customer_id", "segment_id", "segment"]]
    )
    _, text = _report(tmp_path, seg)
    assert 'id="profiles-missing"' in text
    assert 'id="map-missing"' in text
    assert "<b>—</b>" in text  # no revenue without features


def test_text_is_escaped_everywhere(sample_features, tmp_path):
    # Segment names, descriptions, the engine, the title, arm names and notes can all
    # come from users (rule files, assignments files).
    rules = sk.RuleSegmenter(
        rules=[sk.Rule(EVIL, "frequency >= 20", description=EVIL)], default="other & <b>"
    ).fit_predict(sample_features)
    analysis = _analysis(segments=(EVIL,), arms=("control", EVIL))
    _, text = _report(tmp_path, rules, title=EVIL, analysis=analysis)
    assert "<script" not in text
    assert "<b>other" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot;&#x27;&amp;" in text
    assert "other &amp; &lt;b&gt;" in text


def test_the_file_is_self_contained(rfm, moves, runs, tmp_path):
    _, text = _report(tmp_path, rfm, migration=moves, analysis=_analysis(), snapshots=runs)
    for tag in ("http:", "https:", "<script", "<link", "<img", "<iframe", "@import", "url("):
        assert tag not in text, tag
    # Links only to anchors in the page; nothing loaded from anywhere.
    targets = re.findall(r'\b(?:href|src|xlink:href)\s*=\s*["\']?([^"\'\s>]*)', text)
    assert targets
    assert all(t.startswith("#") for t in targets), targets


def test_no_customer_ids_appear(tmp_path):
    ids = [f"shopper.{i:03d}@example.com" for i in range(40)]
    rng = np.random.default_rng(0)
    raw = pd.DataFrame(
        {
            "customer": np.repeat(ids, 3),
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, 120), "D"),
            "amount": rng.gamma(2.0, 20.0, 120).round(2),
        }
    )
    tx = sk.Transactions.from_frame(raw, customer_id="customer", timestamp="ts", amount="amount")
    features = sk.extract_features(tx)
    rfm = sk.RFMSegmenter().fit_predict(features)
    kmeans = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit_predict(features)
    for seg, name in ((rfm, "rfm.html"), (kmeans, "kmeans.html")):
        _, text = _report(tmp_path, seg, name=name)
        assert "example.com" not in text
        assert "shopper" not in text


def test_the_report_is_deterministic(rfm, tmp_path):
    _, first = _report(tmp_path, rfm, name="a.html")
    _, second = _report(tmp_path, rfm, name="b.html")
    assert first == second


def test_segmentation_report_delegates(rfm, tmp_path):
    path = rfm.report(str(tmp_path / "seg.html"), title="From the method")
    assert path == tmp_path / "seg.html"
    assert '<h1 id="report-title">From the method</h1>' in path.read_text(encoding="utf-8")


# --- writing ---------------------------------------------------------------------------


def test_the_file_is_replaced_atomically(rfm, tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("previous report", encoding="utf-8")

    def broken(*args):
        raise RuntimeError("disk full")

    # Failing while the document is built or written leaves the old file whole.
    monkeypatch.setattr(_html_report, "_document", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(rfm, path)
    assert path.read_text(encoding="utf-8") == "previous report"
    monkeypatch.undo()
    real_write_text = type(path).write_text

    def half_written(self, data, *args, **kwargs):
        real_write_text(self, data[:100], *args, **kwargs)
        raise OSError("no space left on device")

    monkeypatch.setattr(type(path), "write_text", half_written)
    with pytest.raises(OSError, match="no space left"):
        write_report(rfm, path)
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary left
    write_report(rfm, path)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"segmentation": "seg"},
            InvalidParameterError,
            r"'segmentation' parameter of write_report\(\) must be a Segmentation",
        ),
        (
            {"title": 3},
            InvalidParameterError,
            r"'title' parameter of write_report\(\) must be a str",
        ),
        (
            {"migration": object()},
            InvalidParameterError,
            r"'migration' .* must be a Migration \(from sk\.migration",
        ),
        (
            {"analysis": 1},
            InvalidParameterError,
            r"'analysis' parameter .* an ExperimentAnalysis.*Got 1 ",
        ),
        (
            {"analysis": SimpleNamespace(table=pd.DataFrame({"segment": ["a"]}))},
            ValueError,
            r"analysis.table lacks the columns \['arm'",
        ),
        ({"snapshots": []}, ValueError, r"'snapshots' parameter of report is empty"),
        ({"snapshots": 5}, InvalidParameterError, r"'snapshots' .* sequence of Segmentation"),
        (
            {"snapshots": ["a"]},
            InvalidParameterError,
            r"Got \['a'\] instead: item 0 is 'a', not a Segmentation\.",
        ),
    ],
)
def test_bad_arguments_are_refused(rfm, tmp_path, kwargs, error, match):
    arguments = {"segmentation": rfm, "path": tmp_path / "r.html", **kwargs}
    with pytest.raises(error, match=match):
        write_report(**arguments)
    assert not (tmp_path / "r.html").exists()


def test_snapshots_out_of_order_and_a_missing_folder_are_refused(runs, tmp_path):
    with pytest.raises(ValueError, match=r"in date order, one run per date; got as_of \['2017-10"):
        write_report(runs[0], tmp_path / "r.html", snapshots=[runs[1], runs[0]])
    with pytest.raises(ValueError, match="in date order"):
        write_report(runs[0], tmp_path / "r.html", snapshots=[runs[0], runs[0]])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(runs[0], tmp_path / "nowhere" / "r.html")


# --- section renderers on small frames ----------------------------------------------


def test_the_drift_table_signs_and_colours_changes():
    drift = pd.DataFrame(
        {
            "segment": ["Loyal", "Lost"],
            "customers_before": [10, 5],
            "customers_after": [12, 0],
            "size_change": [2, -5],
            "revenue_before": [100.0, 20.0],
            "revenue_after": [1500.0, 0.0],
            "revenue_change": [1400.0, -20.0],
        }
    )
    table = _html_report._drift_table(drift)
    assert '<td class="up">+2</td>' in table
    assert '<td class="down">-5</td>' in table
    assert '<td class="up">+1,400.00</td>' in table  # money to the cent
    assert "Change %" not in table  # a column the drift lacks is left out


def test_the_migration_section_frames_stayers_and_mutes_zeros():
    matrix = pd.DataFrame(
        [[8, 2, 0], [1, 3, 1], [0, 4, 0]],
        index=pd.Index(["A", "B", "(new)"], name="before"),
        columns=pd.Index(["A", "B", "(gone)"], name="after"),
    )
    totals = matrix.sum(axis=1).to_numpy()
    migration = SimpleNamespace(
        matrix=matrix,
        shares=matrix.div(np.where(totals == 0, 1, totals), axis=0),
        drift=pd.DataFrame(
            {"segment": ["A", "B"], "customers_before": [10, 5], "customers_after": [9, 9]}
        ).assign(size_change=lambda d: d.customers_after - d.customers_before),
        matching=pd.DataFrame({"before": ["A"], "after": ["A"], "overlap": [8]}),
        before_as_of=pd.Timestamp("2024-01-01"),
        after_as_of=pd.Timestamp("2024-02-01"),
    )
    section = _html_report._migration_section(migration)
    assert "customers of 2024-01-01 (rows) are on 2024-02-01" in section
    assert section.count('class="same"') == 2  # A→A and B→B
    assert section.count('class="zero"') == 3
    assert "80%" in section  # 8 of A's 10
    assert 'id="matching-table"' in section
    # The flow picture: A kept 8, B kept 3, and the rest moved.
    assert re.search(r'data-band="A -> A"[^>]*fill-opacity="0.7"', section)
    assert re.search(r'data-band="A -> B"[^>]*fill-opacity="0.3"', section)


def test_the_snapshots_section_keeps_segment_colours(runs):
    colours = _html_report._colours(runs[-1])
    section = _html_report._snapshots_section(list(runs), colours)
    assert f'data-segment="Champions" fill="{colours["Champions"]}"' in section
    assert section.count("<polyline") == int(
        (pd.concat([r.catalog for r in runs]).groupby("segment")["customers"].sum() > 0).sum()
    )


# --- in a real browser -----------------------------------------------------------------

_CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium binary on PATH (CI installs it with apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=_CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open(browser, path):
    """The report in a fresh page; every problem the page meets is collected."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    problems = []
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    requested = []

    def guard(route):
        # Proof the file is self-contained: anything but the file itself is refused.
        url = route.request.url
        requested.append(url)
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", guard)
    page.on("request", lambda r: requested.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, problems, requested


def _check_screenshot(page, tmp_path, name):
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a rendered page, not a blank one
    return shot


def test_the_rfm_report_renders_in_chromium(browser, rfm, moves, runs, real_analysis, tmp_path):
    started = time.perf_counter()
    path, _ = _report(
        tmp_path, rfm, migration=moves, analysis=real_analysis, snapshots=runs, title="Q4"
    )
    page, problems, requested = _open(browser, path)
    try:
        assert page.title() == "Q4"
        for selector in (
            "#report-title",
            "#sizes-chart",
            "#catalog-table",
            "#profiles-table",
            "#profile-heatmap",
            "#migration-flow",
            "#rfm-customers",
            "#rfm-monetary",
            "#migration-matrix",
            "#drift-table",
            "#test-table",
            "#snapshots-chart",
        ):
            assert page.locator(selector).is_visible(), selector
        assert page.locator("#report-title").inner_text() == "Q4"
        assert page.locator("#catalog-table tbody tr").count() == len(rfm.segments)
        assert page.locator("#rfm-customers [data-cell]").count() == 25
        # The charts have a real size on screen.
        box = page.locator("#sizes-chart").bounding_box()
        assert box["width"] > 600
        assert box["height"] > 300
        # The contents links jump within the page.
        page.locator('nav a[href="#test"]').click()
        assert page.evaluate("location.hash") == "#test"
        _check_screenshot(page, tmp_path, "rfm")
    finally:
        page.close()
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
    assert time.perf_counter() - started < 60


def test_the_clustering_report_renders_in_chromium(
    browser, kmeans_model, sample_features, tmp_path
):
    seg = kmeans_model.predict(sample_features)
    path, _ = _report(tmp_path, seg, segmenter=kmeans_model)
    page, problems, requested = _open(browser, path)
    try:
        assert page.locator("#projection-chart").is_visible()
        assert page.locator("#projection-chart path[data-segment]").count() == 4
        assert page.locator("#rfm-customers").count() == 0
        # Four clusters, then the (empty) non-buyer segments every clustering lists.
        assert page.locator("#catalog-table tbody tr").count() == len(kmeans_model.segments_) == 6
        _check_screenshot(page, tmp_path, "kmeans")
    finally:
        page.close()
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requested), requested


def test_the_network_guard_catches_a_request(browser, rfm, tmp_path):
    # The guard of the tests above must see a request a report would make.
    path, text = _report(tmp_path, rfm)
    leaky = path.with_name("leaky.html")
    leaky.write_text(
        text.replace("</body>", '<img src="http://192.0.2.1/pixel.png" alt=""></body>'),
        encoding="utf-8",
    )
    page, problems, requested = _open(browser, leaky)
    page.close()
    assert any(url.startswith("http://192.0.2.1") for url in requested)
    assert any("request failed" in p for p in problems)


# --- what a marketer sees: tables that fit, colours that mean good or bad ------------

_FITS = """() => [...document.querySelectorAll('table')].filter(t => t.offsetParent !== null)
  .map(t => {
    const box = t.closest('.scroll') || t.parentElement;
    return {table: t.id || t.className, width: t.scrollWidth, box: box.clientWidth};
  })"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_every_table_fits_its_box_on_screen_and_in_print(
    browser, rfm, kmeans_model, sample_features, moves, runs, real_analysis, tmp_path, width
):
    reports = {
        "rfm": _report(
            tmp_path, rfm, "rfm.html", migration=moves, analysis=real_analysis, snapshots=runs
        )[0],
        "kmeans": _report(
            tmp_path, kmeans_model.predict(sample_features), "km.html", segmenter=kmeans_model
        )[0],
    }
    for name, path in reports.items():
        page, problems, _ = _open(browser, path)
        try:
            page.set_viewport_size({"width": width, "height": 900})
            tables = page.evaluate(_FITS)
            assert len(tables) >= 2, name
            wide = [t for t in tables if t["width"] > t["box"]]
            assert wide == [], f"{name} at {width} px: tables wider than their box: {wide}"
            # Printed on A4 landscape (about 1,030 px inside the margins): no column lost.
            page.emulate_media(media="print")
            page.set_viewport_size({"width": 1030, "height": 900})
            printed = page.evaluate(_FITS)
            wide = [t for t in printed if t["width"] > t["box"]]
            assert wide == [], f"{name} in print: tables wider than the page: {wide}"
        finally:
            page.close()
        assert problems == []


def test_profile_colours_say_better_or_worse_by_the_features_direction():
    good, bad, neutral = (_html_report._GOOD, _html_report._BAD, _html_report._NEUTRAL)
    mix = _html_report._mix
    strong = 0.75  # ×4 and ×0.25 are the strongest colours
    # A short recency is good news, a long one bad; more orders good; a discount share
    # has no direction.
    assert _html_report._ratio_colour(0.25, "lower_is_better") == mix("#ffffff", good, strong)
    assert _html_report._ratio_colour(4.0, "lower_is_better") == mix("#ffffff", bad, strong)
    assert _html_report._ratio_colour(4.0, "higher_is_better") == mix("#ffffff", good, strong)
    assert _html_report._ratio_colour(0.25, "neutral") == mix("#ffffff", neutral, strong)
    assert _html_report._ratio_colour(float("nan"), "higher_is_better") == "transparent"
    # None of it (no orders in 30 days against a typical 1) is as far below as it gets.
    assert _html_report._ratio_colour(0.0, "higher_is_better") == mix("#ffffff", bad, strong)
    assert _html_report._ratio_colour(-0.5, "higher_is_better") == "transparent"


def test_profile_rows_read_as_labels_with_units_and_segments_in_value_order(rfm, tmp_path):
    _, text = _report(tmp_path, rfm)
    profiles = text.split('<section id="profiles"')[1].split("</section>")[0]
    # Features are rows headed by their label and unit, the code name on hover.
    recency = re.search(
        r'<tr data-feature="recency_days"><th class="feature" title="([^"]+)">'
        r'Recency<small class="label">days</small>',
        profiles,
    )
    assert recency is not None
    assert recency.group(1).startswith("recency_days: ")
    assert '<small class="label">money</small>' in profiles
    # Segments as columns, most valuable first, seven to a table.
    heads = [html.unescape(h) for h in re.findall(r'<th class="segment">([^<]+)</th>', profiles)]
    catalog = rfm.catalog
    assert heads == list(catalog.loc[catalog["customers"] > 0, "segment"])
    assert heads[0] == "Champions"
    assert profiles.count('class="profile"') == -(-len(heads) // 7)
    # Champions' short recency is good news: the "better" hue, not a warning colour.
    champions = rfm.profile().loc["Champions", ("recency_days", "ratio")]
    expected = _html_report._ratio_colour(champions, "lower_is_better")
    row = re.search(r'<tr data-feature="recency_days">(.*?)</tr>', profiles).group(1)
    first_cell = re.findall(r'<td style="background:(#[0-9a-f]{6})"', row)[0]
    assert first_cell == expected
    assert "better than the typical customer" in profiles


def test_money_has_two_decimals_and_thousands_separators():
    assert _html_report._money(1312737.961) == "1,312,737.96"
    assert _html_report._money(-12.5) == "-12.50"
    assert _html_report._money(None) == "—"


def test_negative_revenue_is_explained_not_drawn_below_zero(sample_features, tmp_path):
    frame = sample_features.frame.copy()
    frame.loc[frame.index[:3], "monetary"] = -50.0  # refunds exceed purchases
    features = sk.CustomerFeatures.from_frame(frame, as_of=sample_features.as_of)
    engine = sk.RuleSegmenter(rules={"Refunders": "monetary < 0"}, default="Other")
    _, text = _report(tmp_path, engine.fit_predict(features))
    sizes = text.split('<section id="sizes"')[1].split("</section>")[0]
    assert "Negative revenue (Refunders (-150.00))" in sizes
    assert "returns and cancellations exceed what they bought" in sizes
    chart = sizes.split('id="sizes-chart"')[1]
    refunders = chart.split('data-segment="Refunders"')[1].split("</g>")[0]
    zero = float(re.search(r'<line x1="([\d.]+)"', chart).group(1))
    bar = r'<rect x="([\d.]+)" y="\d+" width="[\d.]+" height="\d+" fill="#(?:4e79a7|f28e2b)"'
    bars = [float(x) for x in re.findall(bar, refunders)]
    assert bars
    assert min(bars) >= zero  # nothing left of the axis
    assert "-" in re.findall(r'class="value">([^<]+)</text>', refunders)[1]


# --- pictures: the profile at a glance, the migration as a flow ----------------------


def test_the_profile_picture_colours_each_segment_by_the_features_direction(rfm, tmp_path):
    from segmentkit.report._pictures import profile_grid

    _, text = _report(tmp_path, rfm)
    grid = profile_grid(rfm)
    picture = re.search(r'<svg id="profile-heatmap".*?</svg>', text, re.S).group(0)
    cells = re.findall(r'<g data-cell="([^"|]+)\|([^"]+)">.*?fill="([^"]+)"', picture)
    # Every non-empty segment, most valuable first, × the features that differ most.
    assert len(cells) == len(grid.segments) * len(grid.features)
    assert 0 < len(grid.features) <= 12
    shown = list(dict.fromkeys(html.unescape(s) for s, _, _ in cells))
    assert shown == [s for s in rfm.catalog["segment"] if s in set(shown)]
    assert shown[0] == "Champions"
    fills = {(html.unescape(s), f): fill for s, f, fill in cells}
    profile = rfm.profile()
    for (segment, feature), fill in fills.items():
        ratio = profile.loc[segment, (feature, "ratio")]
        direction = _html_report._direction(feature)
        assert fill == _html_report._ratio_colour(ratio, direction), (segment, feature)
    # Champions bought recently: a short recency is good news, blue; Lost's is bad,
    # orange.
    red, _, blue = _channels(fills[("Champions", "recency_days")])
    assert blue > red
    red, _, blue = _channels(fills[("Lost", "recency_days")])
    assert red > blue


def _channels(colour):
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def test_the_migration_flow_draws_every_move_it_can_and_counts_the_rest(rfm, moves, tmp_path):
    from segmentkit.report._pictures import flow_layout

    _, text = _report(tmp_path, rfm, migration=moves)
    picture = re.search(r'<svg id="migration-flow".*?</svg>', text, re.S).group(0)
    bands = re.findall(r'data-band="([^"]+) -> ([^"]+)"', picture)
    flow = flow_layout(moves)
    assert len(bands) == len(flow.bands) > 0
    matrix = moves.matrix
    for source, target in bands:
        assert matrix.loc[html.unescape(source), html.unescape(target)] > 0
    drawn = sum(b.customers for b in flow.bands)
    assert drawn + flow.hidden == int(matrix.to_numpy().sum())
    # Each side's segments carry their customers, as the matrix's rows and columns sum.
    nodes = re.findall(r'<g data-node="([^"]+)"><title>[^:]+: ([\d,]+) customers', picture)
    rows, columns = matrix.sum(axis=1), matrix.sum(axis=0)
    expected = [(n, v) for n, v in rows.items() if v > 0]
    expected = sorted(expected, key=lambda x: list(flow.left).index(x[0]))
    right = sorted(
        [(n, v) for n, v in columns.items() if v > 0], key=lambda x: list(flow.right).index(x[0])
    )
    assert [(html.unescape(n), int(v.replace(",", ""))) for n, v in nodes] == expected + right
    if flow.hidden:
        assert f"{flow.hidden:,} customers in moves under" in text
    # A move of fewer customers than min_share of all is counted, not drawn.
    everything = flow_layout(moves, min_share=0.0)
    assert everything.hidden == 0
    assert sum(b.customers for b in everything.bands) == int(matrix.to_numpy().sum())


# --- screenshots against the stored ones -----------------------------------------------

#: The stored screenshots are also the docs' pictures of the report (docs/report.md).
SHOTS = Path(__file__).resolve().parents[1] / "docs" / "img" / "report"
#: ``SEGMENTKIT_UPDATE_SCREENSHOTS=1 pytest tests/test_report.py -k screenshots`` stores
#: the current rendering after an intended change to the report.
UPDATE = os.environ.get("SEGMENTKIT_UPDATE_SCREENSHOTS") == "1"
#: How far a rendering may stray from the stored one. Each pixel is matched against the
#: stored pixels up to ``SHIFT`` away (Chromium builds and CPUs anti-alias text a pixel
#: apart); an 8 × 8 block whose pixels still differ by ``BLOCK`` grey levels on average
#: has changed, and a rendering may have ``CHANGED`` of them at most. A lost column,
#: chart or row changes far more; the test below shows it.
SHIFT, BLOCK, CHANGED, SIZE_CHANGE = 2, 16.0, 0.001, 0.03
#: Screenshots are rendered in DejaVu Sans (fonts-dejavu-core, installed by .ci/run).
FONT = "DejaVu Sans"


def picture_difference(stored, current):
    """How far ``current`` is from ``stored``: its size change and its changed blocks."""
    from PIL import Image

    a = Image.open(stored).convert("L")
    b = Image.open(current).convert("L")
    (wa, ha), (wb, hb) = a.size, b.size
    size_change = max(abs(wa - wb) / wa, abs(ha - hb) / ha)
    x = np.asarray(a, dtype=float)
    y = np.pad(np.asarray(b.resize(a.size), dtype=float), SHIFT, mode="edge")
    nearest = np.full(x.shape, np.inf)
    for dy in range(2 * SHIFT + 1):
        for dx in range(2 * SHIFT + 1):
            np.minimum(nearest, np.abs(x - y[dy : dy + ha, dx : dx + wa]), out=nearest)
    rows, columns = ha // 8, wa // 8
    blocks = nearest[: rows * 8, : columns * 8].reshape(rows, 8, columns, 8).mean(axis=(1, 3))
    return size_change, float((blocks > BLOCK).mean())


def _close_enough(stored, current):
    size_change, changed = picture_difference(stored, current)
    return size_change <= SIZE_CHANGE and changed <= CHANGED


_FONT_WIDTHS = """font => {
  const context = document.createElement('canvas').getContext('2d');
  const width = family => { context.font = `14px ${family}`;
    return context.measureText('Champions 0123456789 Loyal customers WMwil').width; };
  return [width('system-ui'), width(`"${font}", monospace`), width('monospace')];
}"""


def _renders_in(page, font):
    """Whether the page's default font is ``font``: a missing font falls back to monospace."""
    default, chosen, monospace = page.evaluate(_FONT_WIDTHS, font)
    return chosen != monospace and default == chosen


def _compare_with_stored(page, name, tmp_path, selector=None):
    current = tmp_path / f"{name}.png"
    if selector is None:
        page.screenshot(path=str(current))  # the first screenful, as a reader sees it
    else:
        page.locator(selector).screenshot(path=str(current))
    stored = SHOTS / f"{name}.png"
    if UPDATE:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(current, stored)
        return
    assert stored.exists(), f"{stored} is missing: store it with SEGMENTKIT_UPDATE_SCREENSHOTS=1"
    size_change, changed = picture_difference(stored, current)
    assert _close_enough(stored, current), (
        f"{name}: the rendering differs from {stored.name} (size change {size_change:.1%}, "
        f"changed blocks {changed:.2%}); the new one is "
        f"{current}. If the change is intended, store it with SEGMENTKIT_UPDATE_SCREENSHOTS=1."
    )


@pytest.fixture(scope="module")
def stored_font(browser):
    page = browser.new_page()
    try:
        same = _renders_in(page, FONT)
    finally:
        page.close()
    if not same:
        pytest.skip(
            f"the stored screenshots are rendered in {FONT}, this Chromium's default font is "
            "another (apt-get install fonts-dejavu-core)"
        )


@pytest.mark.parametrize("width", [1280, 1920])
def test_screenshots_match_the_stored_ones(
    browser, stored_font, rfm, kmeans_model, sample_features, moves, runs, tmp_path, width
):
    rfm_path, _ = _report(tmp_path, rfm, "rfm.html", migration=moves, snapshots=runs)
    km_path, _ = _report(
        tmp_path, kmeans_model.predict(sample_features), "km.html", segmenter=kmeans_model
    )
    shots = {
        rfm_path: [
            ("top", None),
            ("catalog", "#catalog"),
            ("profile", "#profile-heatmap"),
            ("migration", "#migration-flow"),
        ],
        km_path: [("kmeans-top", None), ("kmeans-map", "#projection-chart")],
    }
    for path, wanted in shots.items():
        page, problems, _ = _open(browser, path)
        try:
            page.set_viewport_size({"width": width, "height": 900})
            for name, selector in wanted:
                if width != 1280 and selector is not None:
                    continue  # the charts are the same at any width past 1,280 px
                _compare_with_stored(page, f"{name}-{width}", tmp_path, selector)
        finally:
            page.close()
        assert problems == []


def test_the_screenshot_comparison_sees_a_lost_column_but_not_a_blurred_pixel(tmp_path):
    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    stored = SHOTS / "catalog-1280.png"
    if not stored.exists():
        pytest.skip("no stored screenshot yet")
    picture = Image.open(stored).convert("RGB")
    width, height = picture.size
    shifted = ImageChops.offset(picture, 1, 1).filter(ImageFilter.GaussianBlur(0.6))
    shifted.save(tmp_path / "shifted.png")
    assert _close_enough(stored, tmp_path / "shifted.png")
    # The last columns cut off, as the issue found them; the last rows lost.
    for name, box in (
        ("cut", [int(width * 0.85), 0, width, height]),
        ("short", [0, int(height * 0.9), width, height]),
    ):
        cut = picture.copy()
        ImageDraw.Draw(cut).rectangle(box, fill="white")
        cut.save(tmp_path / f"{name}.png")
        assert not _close_enough(stored, tmp_path / f"{name}.png"), name
    # A layout that grew by a tenth.
    taller = picture.resize((width, int(height * 1.1)))
    taller.save(tmp_path / "taller.png")
    assert not _close_enough(stored, tmp_path / "taller.png")
