"""Vectorised placement of new points in a fitted HDBSCAN clustering.

Gives the labels and membership strengths of ``hdbscan.approximate_predict`` without its
per-point Python loop. For a new point with ``min_samples = s`` that function

1. takes the ``2s`` nearest fitted points (in the order of the fitted KD-tree's query),
2. picks the first of them with the smallest mutual-reachability distance
   ``max(core distance of the neighbour, distance to the (s+1)-th neighbour, distance)``
   and sets ``lambda = 1 / that distance``,
3. starts at the neighbour's cluster in the condensed tree and, if the neighbour joined
   it at a larger lambda than the point's, climbs while a cluster was born at or above
   that lambda,
4. reports the selected cluster the reached node belongs to (or noise) and
   ``min(lambda, max lambda of the cluster) / max lambda of the cluster``.

Steps 3 and 4 become array lookups: a table per fitted point (its cluster and lambda)
and per condensed-tree cluster (parent, birth lambda, label, max lambda), with the climb
done for all points at once, one tree level per step.

Step 1 dominates the cost, and grows with ``k``. Only ``s + 2`` neighbours are queried
first: when the winner's mutual-reachability distance is below the distance of the last
neighbour queried, no further neighbour can beat or tie it, so the result is that of
the full query. Points where that does not hold, or where two neighbours at the same
distance and mutual-reachability distance would lead to different clusters (the order of
such ties is the KD-tree's), are queried again with the library's own ``k = 2s``, which
reproduces its neighbour order exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PlacementTables", "place"]

# Neighbour-array cells per chunk (distances, indices and a few derived arrays of this
# size are alive at once): about 40 MB each, whatever min_samples is.
_CELLS = 5_000_000


@dataclass(frozen=True)
class PlacementTables:
    """What placing a point needs from a fitted ``hdbscan.HDBSCAN``, as arrays.

    Attributes
    ----------
    tree : sklearn.neighbors.KDTree or BallTree
        The fitted points' search tree (``prediction_data_.tree``); querying this very
        tree keeps the neighbour order, ties included, that of the library.
    core_distances : numpy.ndarray
        Core distance of each fitted point.
    min_samples : int
        ``min_samples`` of the clustering (``min_cluster_size`` when unset).
    point_parent, point_lambda : numpy.ndarray
        Condensed-tree cluster each fitted point falls out of, and at which lambda.
    root : int
        Id of the condensed tree's root cluster; node arrays are indexed by
        ``cluster id - root``.
    node_parent, node_birth : numpy.ndarray
        Parent cluster of each cluster and the lambda at which it split off.
    node_has_parent : numpy.ndarray
        Whether the cluster appears as a child in the cluster tree (the root does not).
    node_label : numpy.ndarray
        Selected cluster (0..k-1) each cluster belongs to, -1 if none.
    node_max_lambda : numpy.ndarray
        Largest lambda in the selected cluster the node belongs to (0 where none).
    """

    tree: Any
    core_distances: np.ndarray
    min_samples: int
    point_parent: np.ndarray
    point_lambda: np.ndarray
    root: int
    node_parent: np.ndarray
    node_birth: np.ndarray
    node_has_parent: np.ndarray
    node_label: np.ndarray
    node_max_lambda: np.ndarray

    @classmethod
    def from_model(cls, model: Any) -> PlacementTables | None:
        """Tables of a fitted ``hdbscan.HDBSCAN(prediction_data=True)``.

        Returns ``None`` when the clustering has no cluster tree (every point is noise).
        """
        data = model.prediction_data_
        raw = model.condensed_tree_._raw_tree
        cluster_tree = data.cluster_tree
        if not len(cluster_tree):
            return None
        n_fit = len(data.raw_data)
        root = int(cluster_tree["parent"].min())

        # The library finds a point's row with a scan that returns the first match, or
        # row 0 if there is none; writing the rows last to first keeps the first match.
        point_parent = np.full(n_fit, raw["parent"][0], dtype=np.int64)
        point_lambda = np.full(n_fit, raw["lambda_val"][0], dtype=np.float64)
        is_point = raw["child"] < n_fit
        children = raw["child"][is_point][::-1]
        point_parent[children] = raw["parent"][is_point][::-1]
        point_lambda[children] = raw["lambda_val"][is_point][::-1]

        n_nodes = int(max(raw["parent"].max(), cluster_tree["child"].max())) - root + 1
        node_parent = np.full(n_nodes, root, dtype=np.int64)
        node_birth = np.zeros(n_nodes, dtype=np.float64)
        node_has_parent = np.zeros(n_nodes, dtype=bool)
        # A dict built from the rows keeps the last row per child; so does this.
        at = cluster_tree["child"] - root
        node_parent[at] = cluster_tree["parent"]
        node_birth[at] = cluster_tree["lambda_val"]
        node_has_parent[at] = True

        node_label = np.full(n_nodes, -1, dtype=np.int64)
        node_max_lambda = np.zeros(n_nodes, dtype=np.float64)
        for node, label in data.cluster_map.items():
            if root <= node < root + n_nodes:
                node_label[node - root] = label
                node_max_lambda[node - root] = data.max_lambdas[node]
        return cls(
            tree=data.tree,
            core_distances=np.asarray(data.core_distances, dtype=np.float64),
            min_samples=int(model.min_samples or model.min_cluster_size),
            point_parent=point_parent,
            point_lambda=point_lambda,
            root=root,
            node_parent=node_parent,
            node_birth=node_birth,
            node_has_parent=node_has_parent,
            node_label=node_label,
            node_max_lambda=node_max_lambda,
        )

    def chunks(self, n_rows: int) -> Iterator[tuple[int, int]]:
        """Row ranges small enough that a chunk's neighbour arrays stay near ``_CELLS``."""
        step = max(1, _CELLS // (2 * self.min_samples))
        for start in range(0, n_rows, step):
            yield start, min(start + step, n_rows)

    def place(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels and membership strengths of ``approximate_predict`` for ``points``.

        Parameters
        ----------
        points : numpy.ndarray of shape (n, n_features)
            New points, in the space the clustering was fitted in. Hold one chunk at a
            time (see :meth:`chunks`): the neighbour arrays are ``n x (min_samples + 2)``.

        Returns
        -------
        labels : numpy.ndarray of int64
            Selected cluster of each point (the library's numbering), -1 for noise.
        probabilities : numpy.ndarray of float64
            Membership strength of each point, 0 for noise.
        """
        s = self.min_samples
        points = np.asarray(points, dtype=np.float64)
        neighbour, lam = self._nearest(points, min(s + 2, 2 * s))
        unsure = neighbour < 0
        if unsure.any():
            neighbour[unsure], lam[unsure] = self._nearest(points[unsure], 2 * s)
        return self._climb(neighbour, lam)

    def _nearest(self, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Mutual-reachability nearest neighbour and lambda of each point.

        Queries ``k`` neighbours; with ``k < 2 * min_samples`` the neighbour is -1 where
        the full query of the library could pick another one (see the module notes).
        """
        s = self.min_samples
        if not len(points):
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        distance, index = self.tree.query(points, k=k)
        rows = np.arange(len(points))
        # Mutual reachability, as the library takes it: the point's own core distance is
        # the distance to its (s+1)-th neighbour.
        reach = np.maximum(self.core_distances[index], distance)
        np.maximum(reach, distance[:, s, None], out=reach)
        # argmin takes the first minimum, i.e. the nearest: so does the library.
        best = reach.argmin(axis=1)
        nearest_reach = reach[rows, best]
        neighbour = index[rows, best].astype(np.int64)
        if k < 2 * s:
            # Beyond the last neighbour queried every reach is >= its distance, so a
            # strictly smaller winner is the library's too.
            sure = nearest_reach < distance[:, -1]
            # A tie at the same distance and reach is ordered by the KD-tree; it only
            # matters when the tied neighbours fall out of different clusters.
            tied = (reach == nearest_reach[:, None]) & (distance == distance[rows, best, None])
            other = (self.point_parent[index] != self.point_parent[neighbour, None]) | (
                self.point_lambda[index] != self.point_lambda[neighbour, None]
            )
            sure &= ~(tied & other).any(axis=1)
            neighbour[~sure] = -1
        with np.errstate(divide="ignore"):
            lam = np.where(nearest_reach > 0.0, 1.0 / nearest_reach, np.finfo(np.double).max)
        return neighbour, lam

    def _climb(self, neighbour: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cluster and membership strength from the neighbour and the point's lambda."""
        node = self.point_parent[neighbour]
        # The climb starts only if the neighbour joined its cluster at a larger lambda.
        moving = self.point_lambda[neighbour] > lam
        while moving.any():
            at = node - self.root
            moving &= (node > self.root) & self.node_has_parent[at]
            moving &= self.node_birth[at] >= lam
            node = np.where(moving, self.node_parent[at], node)
        labels = self.node_label[node - self.root]
        max_lambda = self.node_max_lambda[node - self.root]
        with np.errstate(divide="ignore", invalid="ignore"):
            strength = np.where(max_lambda > 0.0, np.minimum(max_lambda, lam) / max_lambda, 1.0)
        strength = np.where(labels >= 0, strength, 0.0)
        return labels, strength


def place(
    model: Any, points: np.ndarray, n_jobs: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``hdbscan.approximate_predict(model, points)``, vectorised and chunked.

    Parameters
    ----------
    model : hdbscan.HDBSCAN
        Fitted with ``prediction_data=True``.
    points : numpy.ndarray of shape (n, n_features)
        Points to place.
    n_jobs : int or None, default=None
        Threads over chunks (``-1``: one per core). The KD-tree query, most of the
        work, releases the GIL; results do not depend on it.

    Returns
    -------
    labels, probabilities : numpy.ndarray
        As ``approximate_predict`` returns them (int64 and float64 here).
    """
    tables = PlacementTables.from_model(model)
    if tables is None:
        return np.full(len(points), -1, dtype=np.int64), np.zeros(len(points))
    points = np.asarray(points, dtype=np.float64)
    labels = np.empty(len(points), dtype=np.int64)
    strengths = np.empty(len(points))
    bounds = list(tables.chunks(len(points)))

    def run(start: int, stop: int) -> None:
        # Each chunk writes its own rows: the result does not depend on the threads.
        labels[start:stop], strengths[start:stop] = tables.place(points[start:stop])

    workers = _workers(n_jobs, len(bounds))
    if workers > 1:
        from joblib import Parallel, delayed

        Parallel(n_jobs=workers, backend="threading")(delayed(run)(a, b) for a, b in bounds)
    else:
        for a, b in bounds:
            run(a, b)
    return labels, strengths


def _workers(n_jobs: int | None, n_chunks: int) -> int:
    """Threads to use: ``n_jobs`` as scikit-learn reads it, at most one per chunk."""
    if n_jobs is None or n_chunks < 2:
        return 1
    cores = os.cpu_count() or 1
    wanted = cores if n_jobs < 0 else n_jobs
    return max(1, min(wanted, n_chunks))
