"""A small hub's store for the dashboard's tests: users of each role and a few parcels with
real pictures from the simulator (rendered by the store's own image writer)."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np

from edge.dashboard.auth import hash_password
from edge.store import Box, ParcelRow, Store
from edge.store.images import write_images
from edge.types import Parcel
from simulator.parcels import ScanGeometry, compose_parcel

PASSWORD = "correct horse battery"
USERS = {"olga": "operator", "emil": "engineer", "ada": "admin"}
GEOMETRY = ScanGeometry(384, 2.0, (50.0, 80.0))   # a narrow tunnel: small, quick pictures


@functools.cache
def password_hash() -> str:
    """One hash for every test user: argon2 takes a fifth of a second a hash, on purpose."""
    return hash_password(PASSWORD)


def make_store(root: Path) -> Store:
    store = Store(root)
    for name, role in USERS.items():
        store.add_user(name, role, password_hash())
    store.begin_run("sim", "test", at=time.time() - 7200)
    return store


def add_parcel(store: Store, seq: int, *, threat: bool = True, action: str | None = None,
               weapon: bool | None = None, photo: bool = True, at: float | None = None,
               tracking: str | None = None) -> int:
    """A simulated parcel scanned now (or ``at``), its ground-truth boxes as detections;
    returns its id."""
    rng = np.random.default_rng(seq)
    scene = compose_parcel(rng, GEOMETRY, threat)
    boxes = [Box(label, 0.9 - 0.1 * i, tuple(float(v) for v in xyxy))
             for i, (xyxy, label) in enumerate(zip(scene.boxes, scene.labels, strict=True))]
    tracking = tracking or f"VN{seq:09d}HUB"
    folder = f"test/{seq}"
    pixels = Parcel(tracking, seq, scene.att_hi, scene.att_lo, np.arange(scene.width),
                    np.arange(scene.width, dtype=float), photo=_photo(tracking, scene)
                    if photo else None)
    size = write_images(pixels, store.images / folder)
    at = time.time() if at is None else at
    row = ParcelRow(run_id=1, seq=seq, tracking=tracking, label_read=True, scanned_at=at - 0.4,
                    decided_at=at, latency_ms=38.0 + seq, reason="gun 0.90" if boxes else "",
                    action=action or ("divert" if boxes else "clear"),
                    width=scene.width, height=GEOMETRY.n_pixels, boxes=boxes,
                    weapon=bool(boxes) if weapon is None else weapon, images=folder,
                    image_bytes=size)
    return store.add_parcels([row])[0]


def _photo(tracking: str, scene):
    from edge.config import SimCameraConfig
    from simulator.camera import SimCamera
    camera = SimCamera(SimCameraConfig(width=640, height=360))
    return camera.photograph(tracking, scene.size_mm, scene.kind, 0.0, 0)


def fill(store: Store, count: int = 6) -> list[int]:
    """``count`` parcels a minute apart, most with a threat; one clean one among them."""
    now = time.time()
    return [add_parcel(store, seq, threat=seq != 3, at=now - 60 * (count - seq))
            for seq in range(1, count + 1)]
