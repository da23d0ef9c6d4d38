"""Every engine against segmentkit's conformance checks and scikit-learn's own; plugins."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils.estimator_checks import (
    parametrize_with_checks as sklearn_parametrize_with_checks,
)

import segmentkit as sk
from segmentkit.testing import check_segmenter, parametrize_with_checks

try:
    from segmentkit.engines._hdbscan import HDBSCANSegmenter
except ImportError as error:  # the engine or the hdbscan library is missing
    HDBSCANSegmenter = None
    HDBSCAN_MISSING = f"HDBSCANSegmenter cannot be imported: {error}"
else:
    HDBSCAN_MISSING = ""

PLUGIN = Path(__file__).parent / "plugin"

ENGINES = [
    sk.RFMSegmenter(),
    sk.RFMSegmenter(
        segment_map={"VIP": "r_score >= 4 and m_score == 5", "One-off": "f_score == 1"}
    ),
    sk.RuleSegmenter(rules=sk.lifecycle_rules(browsing=False)),
    sk.KMeansSegmenter(n_clusters=3, random_state=0),
]
if HDBSCANSegmenter is not None:
    # With its defaults HDBSCAN finds no dense group among the 800 sample customers
    # (everyone is noise, with a warning); these settings give four real clusters.
    ENGINES.append(
        HDBSCANSegmenter(
            features=["recency_days", "frequency", "monetary"],
            min_cluster_size=20,
            min_samples=5,
            random_state=0,
        )
    )


@parametrize_with_checks(ENGINES)
def test_engine_passes_segmentkit_checks(segmenter, check):
    check(segmenter)


if HDBSCAN_MISSING:

    def test_hdbscan_engine_is_checked():
        pytest.skip(HDBSCAN_MISSING)


def test_check_segmenter_reports_every_failure_with_its_check_name():
    class SetsStateInInit(sk.RFMSegmenter):
        def __init__(self, *, n_bins=5):
            super().__init__(n_bins=n_bins)
            self.cache_ = {}

    with pytest.raises(AssertionError) as raised:
        check_segmenter(SetsStateInInit())
    message = str(raised.value)
    assert "check_no_attributes_set_in_init: SetsStateInInit.__init__ sets attributes" in message
    assert "check_unfitted_raises" in message  # 'cache_' makes it look fitted


def test_expected_failures_are_reported_and_must_not_go_stale():
    results = check_segmenter(
        sk.RuleSegmenter(rules=[("Big", lambda frame: frame["monetary"] > 100)]),
        expected_failed_checks={},
    )
    assert results["check_save_load"].startswith("skipped: its parameters hold Python functions")
    with pytest.raises(AssertionError, match="passed but is listed in expected_failed_checks"):
        check_segmenter(sk.RFMSegmenter(), expected_failed_checks={"check_pickle": "why not"})
    with pytest.raises(ValueError, match="unknown checks"):
        check_segmenter(sk.RFMSegmenter(), expected_failed_checks={"check_typo": "?"})


# --------------------------------------------------------------------------- scikit-learn

_SEGMENTATION = "predict returns a Segmentation (assignments and catalog), not a label array"
_NOT_FITTED = (
    "segmentkit.errors.NotFittedError (a ValueError and AttributeError) is not a "
    "subclass of sklearn.exceptions.NotFittedError"
)
_BY_NAME = "features are matched by name: predict accepts extra columns, names missing ones"
_NO_CHECK_ARRAY = "plain arrays are wrapped without check_array, so complex values are not refused"
_EMPTY = "an input without features is refused in segmentkit's words, not scikit-learn's"
_SPARSE = (
    "sparse input is refused with a TypeError listing the accepted inputs, which does not "
    "use the word 'sparse' scikit-learn looks for"
)
_ONE_CLUSTER = "the check sets n_clusters=1, and one segment is not a segmentation (needs >= 2)"
_ONE_D = "1-D input is refused with a TypeError listing the accepted inputs, not a ValueError"
_NOT_TRANSFORMER = "transform() shows the preprocessed matrix; a segmenter has no fit_transform"

SKLEARN_EXPECTED_FAILURES = {
    "KMeansSegmenter": {
        "check_dont_overwrite_parameters": _ONE_CLUSTER,
        "check_estimators_unfitted": _NOT_FITTED,
        "check_n_features_in_after_fitting": _BY_NAME,
        "check_complex_data": _NO_CHECK_ARRAY,
        "check_dtype_object": (
            "object columns are categorical features (one-hot encoded), so an all-object "
            "matrix has no numeric feature to cluster on"
        ),
        "check_estimators_empty_data_messages": _EMPTY,
        "check_estimators_nan_inf": (
            "missing values are refused in segmentkit's words (missing='raise'), which "
            "name the missing='median' option rather than 'NaN' or 'inf'"
        ),
        "check_estimator_sparse_tag": _SPARSE,
        "check_estimator_sparse_array": _SPARSE,
        "check_estimator_sparse_matrix": _SPARSE,
        "check_estimators_pickle": _SEGMENTATION,
        "check_transformer_data_not_an_array": (
            "inputs are CustomerFeatures, DataFrames or 2-D numpy arrays, not any array-like"
        ),
        "check_transformer_general": _NOT_TRANSFORMER,
        "check_transformer_preserve_dtypes": _NOT_TRANSFORMER,
        "check_methods_sample_order_invariance": _SEGMENTATION,
        "check_methods_subset_invariance": _ONE_CLUSTER,
        "check_fit2d_1sample": _ONE_CLUSTER,
        "check_fit2d_1feature": _ONE_CLUSTER,
        "check_fit_idempotent": _SEGMENTATION,
        "check_fit2d_predict1d": _ONE_CLUSTER,
    },
    "RFMSegmenter": {
        "check_estimators_unfitted": _NOT_FITTED,
        "check_n_features_in_after_fitting": _BY_NAME,
        "check_complex_data": _NO_CHECK_ARRAY,
        "check_estimators_empty_data_messages": _EMPTY,
        "check_estimators_nan_inf": (
            "a missing recency means 'no purchase yet': those customers get the "
            "'No purchases' segment instead of an error"
        ),
        "check_estimator_sparse_tag": _SPARSE,
        "check_estimator_sparse_array": _SPARSE,
        "check_estimator_sparse_matrix": _SPARSE,
        "check_estimators_pickle": _SEGMENTATION,
        "check_methods_sample_order_invariance": _SEGMENTATION,
        "check_methods_subset_invariance": _SEGMENTATION,
        "check_fit_idempotent": _SEGMENTATION,
        "check_fit1d": _ONE_D,
        "check_fit2d_predict1d": _ONE_D,
    },
}

_HAS_EXPECTED_FAILED_CHECKS = (
    "expected_failed_checks" in inspect.signature(sklearn_parametrize_with_checks).parameters
)

if _HAS_EXPECTED_FAILED_CHECKS:
    strict = (
        {"xfail_strict": True}
        if "xfail_strict" in inspect.signature(sklearn_parametrize_with_checks).parameters
        else {}
    )

    @sklearn_parametrize_with_checks(
        [
            sk.KMeansSegmenter(n_clusters=3, random_state=0),
            # Plain numeric arrays have columns x0, x1, ...: read R, F and M all from x0,
            # so that any matrix scikit-learn's checks build is valid RFM input.
            sk.RFMSegmenter(recency="x0", frequency="x0", monetary="x0"),
        ],
        expected_failed_checks=lambda e: SKLEARN_EXPECTED_FAILURES[type(e).__name__],
        **strict,
    )
    @pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
    def test_sklearn_estimator_checks(estimator, check):
        check(estimator)

else:

    @pytest.mark.skip(reason="scikit-learn < 1.6 has no expected_failed_checks")
    def test_sklearn_estimator_checks():
        pass


def test_plain_numeric_arrays_are_segmented_like_sklearn_input():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    segmentation = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit_predict(X)
    assert segmentation.assignments["customer_id"].tolist() == [str(i) for i in range(60)]
    assert set(segmentation.assignments["segment_id"]) == {0, 1, 2}


# --------------------------------------------------------------------------- plugin

_PLUGIN_CHECKS = """
import json, sys
import segmentkit as sk
from segmentkit.testing import check_segmenter, sample_features

assert "gmm" in sk.available_engines(), sk.available_engines()
engine = sk.get_engine("gmm", n_components=3, random_state=0)
assert type(engine).__module__ == "segmentkit_plugin_demo", type(engine)
results = check_segmenter(engine)
model = engine.fit(sample_features())
model.save(sys.argv[1])
labels = model.predict(sample_features()).assignments["segment_id"].tolist()
print(json.dumps({"results": results, "labels": labels}))
"""

_PLUGIN_LOAD = """
import json, sys
from segmentkit.engines._persistence import load
from segmentkit.testing import sample_features

assert "segmentkit_plugin_demo" not in sys.modules
model = load(sys.argv[1])  # no trust_pickle: the fitted mixture is stored as JSON data
assert type(model).__module__ == "segmentkit_plugin_demo", type(model)
print(json.dumps(model.predict(sample_features()).assignments["segment_id"].tolist()))
"""


def _run(code: str, *args: str, site: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _check_installed_plugin(site: Path, tmp_path: Path) -> None:
    """In fresh interpreters: found by name, passes the checks, saves and loads."""
    model_file = tmp_path / "gmm.json"
    report = json.loads(_run(_PLUGIN_CHECKS, str(model_file), site=site))
    assert set(report["results"].values()) == {"passed"}, report["results"]
    assert "pickled" not in json.loads(model_file.read_text(encoding="utf-8"))
    # A process that never imported the plugin finds its class through the entry point.
    labels = json.loads(_run(_PLUGIN_LOAD, str(model_file), site=site))
    assert labels == report["labels"]


def test_plugin_found_through_its_entry_point_metadata(tmp_path):
    # An installation by hand, as pip would lay it out: the package plus a dist-info
    # folder whose entry_points.txt comes from the plugin's pyproject.toml. Needs no
    # build backend, so it runs everywhere.
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    site = tmp_path / "site"
    shutil.copytree(PLUGIN / "src" / "segmentkit_plugin_demo", site / "segmentkit_plugin_demo")
    dist_info = site / f"segmentkit_plugin_demo-{project['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        encoding="utf-8",
    )
    groups = project["entry-points"]
    (dist_info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in entries.items())
            for group, entries in groups.items()
        ),
        encoding="utf-8",
    )
    _check_installed_plugin(site, tmp_path)


def _pip_cannot_build_offline() -> str:
    """Why pip cannot build the plugin offline here, or '' when it can."""
    from importlib.metadata import PackageNotFoundError, version

    if importlib.util.find_spec("pip") is None:
        return "pip is not installed in this environment"
    try:
        # Read from metadata: importing setuptools here would replace distutils.
        setuptools = version("setuptools")
    except PackageNotFoundError:
        return "setuptools (the plugin's build backend) is not installed"
    major_minor = tuple(int(part) for part in setuptools.split(".")[:2])
    if major_minor < (70, 1) and importlib.util.find_spec("wheel") is None:
        return (
            f"setuptools {setuptools} needs the 'wheel' package to build a wheel, and it is "
            "not installed; offline (--no-index --no-build-isolation) pip cannot fetch it"
        )
    return ""


PIP_CANNOT_BUILD = _pip_cannot_build_offline()


@pytest.mark.skipif(bool(PIP_CANNOT_BUILD), reason=PIP_CANNOT_BUILD or "pip can build")
def test_plugin_installed_with_pip(tmp_path):
    # Into a folder of its own (--target), not the shared venv: other test runs never
    # see a half-installed plugin, and nothing needs uninstalling afterwards.
    source = tmp_path / "plugin"
    shutil.copytree(PLUGIN, source)  # pip builds in the source tree; keep the repo clean
    site = tmp_path / "site"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "--quiet", "--target", str(site), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    _check_installed_plugin(site, tmp_path)
