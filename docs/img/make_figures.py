"""Regenerate the figures of docs/plots.md from the bundled sample.

Run from the repository root, with the development environment:

    OMP_NUM_THREADS=1 python docs/img/make_figures.py

The figures are drawn on matplotlib Figure objects (segmentkit.plots never uses
pyplot); the Agg backend is selected anyway, so the script runs without a display.
"""

from __future__ import annotations

import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
DPI = 100


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")

    import segmentkit as sk
    from segmentkit import plots

    raw, mapping = sk.datasets.load_sample()
    features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping), as_of="2018-01-01")

    rfm = sk.RFMSegmenter().fit_predict(features)
    kmeans = sk.KMeansSegmenter(n_clusters=4, random_state=0).fit(features)
    search = sk.KMeansSegmenter(random_state=0).fit(features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdbscan = sk.HDBSCANSegmenter(
            features=["recency_days", "frequency", "monetary"], min_cluster_size=20, min_samples=5
        ).fit(features)

    tx = sk.Transactions.from_frame(raw, **mapping)
    model = sk.RFMSegmenter().fit(sk.extract_features(tx, as_of="2017-10-01"))
    october = model.predict(sk.extract_features(tx, as_of="2017-10-01"))
    moves = sk.migration(october, model.predict(features))

    figures = {
        "segment_sizes.png": plots.segment_sizes(rfm),
        "migration_flow.png": plots.migration_flow(moves),
        "rfm_heatmap.png": plots.rfm_heatmap(rfm),
        "rfm_heatmap_monetary.png": plots.rfm_heatmap(rfm, value="monetary"),
        "profile_heatmap.png": plots.profile_heatmap(rfm),
        "projection_kmeans.png": plots.projection(
            kmeans.predict(features), features, segmenter=kmeans
        ),
        "projection_hdbscan.png": plots.projection(
            hdbscan.predict(features), features, segmenter=hdbscan
        ),
        "k_selection.png": plots.k_selection(search),
    }
    for name, figure in figures.items():
        figure.savefig(HERE / name, dpi=DPI)
        print(HERE / name)


if __name__ == "__main__":
    main()
