"""Contracts: the tables a store brings (orders, events, customers), validated once at the
edge into canonical columns, with a :class:`ValidationReport` accounting for every row."""

from segmentkit.contracts._customers import Customers
from segmentkit.contracts._events import Events
from segmentkit.contracts._transactions import Transactions
from segmentkit.contracts._validation import ValidationReport

__all__ = ["Customers", "Events", "Transactions", "ValidationReport"]
