"""The parcel store: SQLite (WAL) records, pictures as files beside them, retention."""

from edge.store.db import Box, ParcelRow, Store, StoreError
from edge.store.retention import Retention, prune
from edge.store.schema import SchemaError
from edge.store.writer import StoreWriter

__all__ = ["Box", "ParcelRow", "Retention", "SchemaError", "Store", "StoreError",
           "StoreWriter", "prune"]
