"""Sample data to try segmentkit with, offline.

* :func:`load_sample` – real grocery receipts (a slice of the 84.51° Complete
  Journey study, CC0) with the mapping of their columns to segmentkit's
  canonical names;
* :func:`load_sample_customers` – demographics of the same households;
* :func:`generate_events` – seeded, realistic browsing events (views, carts,
  checkouts, purchases), optionally consistent with real orders.
"""

from segmentkit.datasets._events import generate_events
from segmentkit.datasets._sample import load_sample, load_sample_customers

__all__ = ["generate_events", "load_sample", "load_sample_customers"]
