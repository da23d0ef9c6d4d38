"""Time and memory of the clustering engines on synthetic customer features.

For each size and engine, a fresh Python process builds a synthetic features table
(heavy-tailed recency, frequency and spend, as real shops have), then times:

* ``kmeans`` – ``KMeansSegmenter(n_clusters=5)`` ``fit_predict`` (preprocessing, fit,
  naming, assignment of everyone);
* ``sklearn_kmeans`` – scikit-learn's own estimator on the already preprocessed matrix,
  with the same algorithm segmentkit picks at that size (the reference point);
* ``hdbscan`` – ``HDBSCANSegmenter`` ``fit_predict``, fitting on a sample of at most
  ``--hdbscan-sample`` customers and placing the rest by approximate prediction.

With ``--hdbscan-check`` the ``hdbscan`` child then also times the placement of the
customers outside the fit sample alone, by segmentkit and by
``hdbscan.approximate_predict``, and counts the labels on which they disagree (after the
peak RSS is taken; the library's run takes about 85 µs per customer).

Peak RSS is the child's ``ru_maxrss``. Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/bench_clustering.py --customers 10000 100000 1000000

Results go to ``benchmarks/results/clustering.json`` and a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGINES = ("kmeans", "sklearn_kmeans", "hdbscan")


def synthetic_features(n: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frequency = 1 + rng.negative_binomial(1, 0.35, n)
    monetary = np.round(frequency * rng.lognormal(3.3, 0.8, n), 2)
    recency = np.minimum(rng.exponential(120, n) * (1 + 2 / frequency), 730).round()
    tenure = np.minimum(recency + rng.exponential(200, n), 900).round()
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in range(n)],
            "recency_days": recency,
            "frequency": frequency,
            "monetary": monetary,
            "avg_order_value": monetary / frequency,
            "tenure_days": tenure,
            "discount_share": rng.beta(0.5, 6, n),
        }
    )


def run_child(
    engine: str, n: int, sample: int, jobs: int | None = None, check: bool = False
) -> dict:
    # Imports happen before the clock starts: they are paid once per process, not per fit.
    import hdbscan  # noqa: F401
    import sklearn.cluster
    import sklearn.metrics  # noqa: F401

    import segmentkit as sk

    frame = synthetic_features(n)
    features = sk.CustomerFeatures.from_frame(frame, as_of="2024-06-30")
    started = time.perf_counter()
    if engine == "kmeans":
        sk.KMeansSegmenter(n_clusters=5, random_state=0).fit_predict(features)
    elif engine == "sklearn_kmeans":
        from sklearn.cluster import KMeans, MiniBatchKMeans

        segmenter = sk.KMeansSegmenter(n_clusters=5, random_state=0)
        matrix = segmenter.fit(features.frame.head(100)).transform(features)
        started = time.perf_counter()
        if n >= segmenter.minibatch_threshold:
            model = MiniBatchKMeans(n_clusters=5, n_init=4, random_state=0, batch_size=4096)
        else:
            model = KMeans(n_clusters=5, n_init=4, random_state=0)
        model.fit(matrix).predict(matrix)
    else:
        segmenter = sk.HDBSCANSegmenter(
            min_cluster_size=max(50, min(n, sample) // 200),
            max_fit_size=sample,
            random_state=0,
            n_jobs=jobs,
        )
        segmenter.fit_predict(features)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    # Other processes on the (shared) machine skew timings: keep the 1-minute load.
    result = {
        "engine": engine,
        "customers": n,
        "n_jobs": jobs if engine == "hdbscan" else None,
        "seconds": seconds,
        "peak_rss_gib": peak,
        "load_average_1min": os.getloadavg()[0],
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    if engine == "hdbscan" and check:
        result.update(compare_placement(segmenter, features))
    return result


def compare_placement(segmenter, features) -> dict:
    """Placement of the customers outside the fit sample: segmentkit vs the library."""
    import hdbscan
    import numpy as np

    from segmentkit.engines._hdbscan_placement import place

    outside = ~features.customer_ids.isin(segmenter.fit_customer_ids_)
    matrix = segmenter.transform(features)[np.asarray(outside)]
    started = time.perf_counter()
    labels, strengths = place(segmenter._model, matrix, n_jobs=segmenter.n_jobs)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    # In chunks, as segmentkit used to call it: all at once costs gigabytes.
    parts = [
        hdbscan.approximate_predict(segmenter._model, matrix[start : start + 50_000])
        for start in range(0, len(matrix), 50_000)
    ]
    library = time.perf_counter() - started
    reference = np.concatenate([part[0] for part in parts])
    reference_strengths = np.concatenate([part[1] for part in parts])
    return {
        "placed": len(matrix),
        "placement_seconds": ours,
        "library_placement_seconds": library,
        "label_mismatches": int((labels != reference).sum()),
        "max_strength_difference": float(np.abs(strengths - reference_strengths).max(initial=0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--hdbscan-sample", type=int, default=20_000)
    parser.add_argument(
        "--hdbscan-jobs",
        type=int,
        default=None,
        help="HDBSCANSegmenter n_jobs (placement processes; their memory is not in peak RSS)",
    )
    parser.add_argument(
        "--hdbscan-check",
        action="store_true",
        help="also time placement alone, segmentkit vs hdbscan.approximate_predict",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "clustering.json")
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        engine, n = args.child[0], int(args.child[1])
        child = run_child(engine, n, args.hdbscan_sample, args.hdbscan_jobs, args.hdbscan_check)
        print(json.dumps(child))
        return 0
    results = []
    for n in args.customers:
        for engine in args.engines:
            command = [sys.executable, __file__, "--child", engine, str(n)]
            command += ["--hdbscan-sample", str(args.hdbscan_sample)]
            if args.hdbscan_jobs is not None:
                command += ["--hdbscan-jobs", str(args.hdbscan_jobs)]
            if args.hdbscan_check:
                command.append("--hdbscan-check")
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
            if done.returncode:
                print(done.stderr, file=sys.stderr)
                return done.returncode
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            row = results[-1]
            print(
                f"{n:>9,} {engine:<15} {row['seconds']:8.2f} s  {row['peak_rss_gib']:.2f} GiB"
                f"  load {row['load_average_1min']:.1f}"
            )
            if "placed" in row:
                print(
                    f"{'':>9} placing {row['placed']:,}: {row['placement_seconds']:.2f} s "
                    f"(hdbscan.approximate_predict {row['library_placement_seconds']:.2f} s), "
                    f"{row['label_mismatches']} labels differ, strengths within "
                    f"{row['max_strength_difference']:.1e}"
                )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"results": results}, indent=1))
    print(
        "\n| customers | engine | seconds | peak RSS (GiB) | load (1 min) |"
        "\n|---:|---|---:|---:|---:|"
    )
    for row in results:
        print(
            f"| {row['customers']:,} | {row['engine']} | {row['seconds']:.2f} | "
            f"{row['peak_rss_gib']:.2f} | {row['load_average_1min']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
