"""The backend boundary: the one place that knows which library a frame belongs to and how
to scan, sample, collect, convert or batch it. Everything above asks here instead of
testing types.

``backend_of``, ``is_pandas`` and ``is_native`` (in :mod:`._kind`) are cheap and import no
backend. The modules that work on frames of other libraries (``_detect``, ``_time``,
``_sample``, ``_batches``) import narwhals and are imported only when such a frame
arrives.
"""

from segmentkit._frame._kind import backend_of, is_native, is_pandas

__all__ = ["backend_of", "is_native", "is_pandas"]
