"""Results do not depend on the CPU: the same features give the same segments everywhere.

numpy picks SIMD code for ``log1p`` and ``argsort`` (and OpenBLAS its kernels) by the
CPU it runs on, so an AVX-512 machine and an AVX2 one round some values differently and
order some ties differently. The test runs the engines in a child process with the
CPU's optional instruction sets switched off (``NPY_DISABLE_CPU_FEATURES``,
``OPENBLAS_CORETYPE``), as an older machine would run them, and compares the results
bit for bit with this process's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, warnings
    import numpy as np
    import segmentkit as sk

    def digest(array):
        return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()

    warnings.simplefilter("ignore")
    raw, mapping = sk.datasets.load_sample()
    features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping), as_of="2018-01-01")
    rfm = ["recency_days", "frequency", "monetary"]
    engines = {
        "hdbscan 20/5": sk.HDBSCANSegmenter(features=rfm, min_cluster_size=20, min_samples=5),
        "hdbscan 10": sk.HDBSCANSegmenter(features=rfm, min_cluster_size=10),
        "hdbscan leaf": sk.HDBSCANSegmenter(
            features=rfm, min_cluster_size=15, min_samples=3, cluster_selection_method="leaf"
        ),
        "kmeans auto": sk.KMeansSegmenter(random_state=0),
        "kmeans 4": sk.KMeansSegmenter(n_clusters=4, random_state=0),
    }
    out = {}
    for name, engine in engines.items():
        seg = engine.fit_predict(features)
        out[name] = [digest(seg.assignments["segment_id"].to_numpy()),
                     [s.name for s in engine.segments_]]
    print(json.dumps(out))
    """
)

# Instruction sets above the x86-64-v2 baseline that numpy can be told to ignore.
_OPTIONAL = [
    "AVX512F",
    "AVX512CD",
    "AVX512VPOPCNTDQ",
    "AVX512VL",
    "AVX512BW",
    "AVX512DQ",
    "AVX512VNNI",
    "AVX512IFMA",
    "AVX512VBMI",
    "AVX512VBMI2",
    "AVX512BITALG",
    "AVX512BF16",
    "AVX512FP16",
    "AVX512_SKX",
    "AVX512_CLX",
    "AVX512_CNL",
    "AVX512_ICL",
    "AVX512_SPR",
    "X86_V4",
    "AVX2",
    "FMA3",
    "X86_V3",
]


def _switchable() -> list[str]:
    from numpy._core._multiarray_umath import __cpu_features__

    return [name for name in _OPTIONAL if __cpu_features__.get(name)]


def _run(extra_env: dict[str, str]) -> dict[str, list[object]]:
    env = {**os.environ, **extra_env, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("label", "disabled", "blas"),
    [("AVX2 machine", "AVX2", "Haswell"), ("SSE-only machine", "", "Nehalem")],
)
def test_segments_are_the_same_without_the_cpus_wider_instructions(
    label: str, disabled: str, blas: str
) -> None:
    switchable = _switchable()
    if disabled == "AVX2":
        # Keep AVX2 on, switch off everything wider: what an AVX2-only CPU runs.
        off = [name for name in switchable if name not in {"AVX2", "FMA3", "X86_V3"}]
    else:
        off = switchable
    if not off:
        pytest.skip(f"this CPU has no instruction set above what a {label} has")
    here = _run({})
    there = _run({"NPY_DISABLE_CPU_FEATURES": " ".join(off), "OPENBLAS_CORETYPE": blas})
    assert there == here


def test_snapping_absorbs_last_bit_differences() -> None:
    from segmentkit.engines._preprocess import snap

    rng = np.random.default_rng(0)
    values = rng.normal(0, 3, 100_000)
    nudged = np.nextafter(values, np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = snap(values) == snap(nudged)
    # A value flips only within an ulp of a grid midpoint: essentially never.
    assert same.mean() > 0.9999
    assert np.array_equal(snap(snap(values)), snap(values))
    digest = hashlib.sha256(snap(values).tobytes()).hexdigest()
    assert digest == hashlib.sha256(snap(values.copy()).tobytes()).hexdigest()
