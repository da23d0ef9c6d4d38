"""The backend boundary: the one place that knows which library a frame belongs to and how
to scan, collect or convert it. Everything above asks here instead of testing types."""
