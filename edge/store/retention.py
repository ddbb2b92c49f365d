"""How long the store keeps what: records by age, pictures by disk size.

A confirmed threat is evidence for the authorities: neither its record nor its pictures are
removed by retention. Everything else goes oldest first. Removing a parcel's record removes
its detections and decisions with it; the audit log keeps what was done (it is append-only).
Rows go first and their folders after the commit, so a crash in between leaves stray files,
never records that point at missing pictures.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from edge.store.db import Store

CHUNK = 500


@dataclass(frozen=True)
class Retention:
    keep_days: float = 90.0
    max_picture_bytes: int = 20_000_000_000
    every_s: float = 600.0


@dataclass
class Removed:
    parcels: int = 0    # records removed
    pictures: int = 0   # parcels whose pictures were removed (records included)
    bytes: int = 0


def prune(store: Store, retention: Retention, now: float | None = None) -> Removed:
    removed = Removed()
    cutoff = (time.time() if now is None else now) - retention.keep_days * 86400
    while True:
        with store.transaction() as conn:
            old = conn.execute("SELECT id, images, image_bytes FROM parcels WHERE decided_at < ? "
                               "AND review != 'confirmed' ORDER BY id LIMIT ?",
                               (cutoff, CHUNK)).fetchall()
            conn.executemany("DELETE FROM parcels WHERE id = ?", [(r["id"],) for r in old])
        _remove_folders(store, old, removed)
        removed.parcels += len(old)
        if len(old) < CHUNK:
            break
    total = store.conn.execute("SELECT coalesce(sum(image_bytes), 0) FROM parcels"
                               ).fetchone()[0]
    while total > retention.max_picture_bytes:
        with store.transaction() as conn:
            oldest = conn.execute("SELECT id, images, image_bytes FROM parcels WHERE images IS "
                                  "NOT NULL AND review != 'confirmed' ORDER BY id LIMIT ?",
                                  (CHUNK,)).fetchall()
            cut, freed = [], 0
            for row in oldest:
                if total - freed <= retention.max_picture_bytes:
                    break
                cut.append(row)
                freed += row["image_bytes"]
            conn.executemany("UPDATE parcels SET images = NULL, image_bytes = 0 WHERE id = ?",
                             [(r["id"],) for r in cut])
        _remove_folders(store, cut, removed)
        total -= freed
        if not cut:
            break   # what is left is evidence
    return removed


def _remove_folders(store: Store, rows, removed: Removed) -> None:
    root = store.images.resolve()
    for row in rows:
        if not row["images"]:
            continue
        folder = (root / row["images"]).resolve()
        if root in folder.parents:
            shutil.rmtree(folder, ignore_errors=True)
        removed.pictures += 1
        removed.bytes += row["image_bytes"]
