"""Write simulated parcels to disk with COCO annotations: the generator the model trains on.

Each parcel goes through the same path as the live scanner (belt, detector, flat-field
correction) and is written as:
- ``colour/<id>.png``  dual-energy pseudo-colour (BGR), ``grey/<id>.png`` single-energy grey,
- ``raw/<id>_hi.png`` and ``raw/<id>_lo.png``  16-bit raw detector counts, same [H, W] layout,
- ``photo/<id>.jpg``  the top camera's photo with the parcel's label,
- ``annotations.json`` COCO: one image entry per rendering, threat boxes in its pixels; a
  threat that cannot be called in the grey view (``parcels.visible_in_grey``) is labelled in
  the colour image only. Each image entry also names every item the parcel holds
  (``families``, benign or not) with its box (``item_boxes``, COCO xywh): what a false alarm
  sits on.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edge.capture import capture_flatfield
from edge.config import EdgeConfig
from edge.imaging.attenuation import ratio_boundaries
from edge.imaging.correct import correct
from edge.imaging.render import render_colour, render_grey
from simulator.camera import SimCamera
from simulator.phantoms import THREAT_CLASSES
from simulator.scanner import SimScanner

MARGIN_MM = 30.0
MIN_VISIBLE = 0.3  # boxes cut by the image edge below this share of their area are dropped


def categories() -> list[dict]:
    return [{"id": i + 1, "name": name, "supercategory": "threat"}
            for i, name in enumerate(THREAT_CLASSES)]


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip xyxy boxes to the image; returns (clipped boxes, kept mask)."""
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    kept_area = np.prod(clipped[:, 2:] - clipped[:, :2], axis=1)
    return clipped, kept_area >= MIN_VISIBLE * np.maximum(area, 1e-6)


def write_dataset(config: EdgeConfig, count: int, out: Path, seed: int | None = None,
                  progress: bool = False, raw_and_photo: bool = True) -> dict:
    """Simulate ``count`` parcels into ``out``; ``raw_and_photo`` False writes renderings only
    (what training needs, at a third of the disk and time)."""
    scfg = config.scanner.model_copy(update={"realtime": False,
                                             **({"seed": seed} if seed is not None else {})})
    scanner = SimScanner(scfg)
    flat = capture_flatfield(scanner)
    camera = SimCamera(config.camera, scfg.seed)
    boundaries = ratio_boundaries(scfg.low_kev, scfg.high_kev)
    for sub in ("colour", "grey", "raw", "photo")[:4 if raw_and_photo else 2]:
        (out / sub).mkdir(parents=True, exist_ok=True)
    cat_id = {c["name"]: c["id"] for c in categories()}
    images, annotations = [], []
    parcels = scanner.parcels()
    for n in range(count):
        placed = next(parcels)
        first, lines = scanner.span_of(placed, MARGIN_MM)
        block = scanner.scan(first, lines)
        raw_hi, raw_lo = block.hi, block.lo
        hi, lo = (np.ascontiguousarray(a.T) for a in correct(raw_hi, raw_lo, flat))
        height, width = hi.shape
        name = placed.id
        cv2.imwrite(str(out / "colour" / f"{name}.png"), render_colour(hi, lo, boundaries))
        cv2.imwrite(str(out / "grey" / f"{name}.png"), render_grey(hi))
        if raw_and_photo:
            cv2.imwrite(str(out / "raw" / f"{name}_hi.png"), np.ascontiguousarray(raw_hi.T))
            cv2.imwrite(str(out / "raw" / f"{name}_lo.png"), np.ascontiguousarray(raw_lo.T))
            photo = camera.photograph(name, placed.scene.size_mm[:2], placed.scene.kind,
                                      float(block.t[0]), int(block.encoder[0]))
            cv2.imwrite(str(out / "photo" / f"{name}.jpg"), photo.image)
        truths = scanner.truth(first, lines)
        own = next(t for t in truths if t.parcel_id == name)
        items = clip_boxes(own.item_boxes, width, height)[0]
        item_boxes = [[round(float(x1), 1), round(float(y1), 1), round(float(x2 - x1), 1),
                       round(float(y2 - y1), 1)] for x1, y1, x2, y2 in items]
        boxes = np.concatenate([t.boxes for t in truths]) if truths else np.zeros((0, 4))
        labels = [lab for t in truths for lab in t.labels]
        boxes, inside = clip_boxes(boxes.astype(np.float32), width, height)
        for render in ("colour", "grey"):
            callable_ = np.array([c for t in truths for c in t.labels_in(render)], bool)
            kept = inside & callable_.reshape(inside.shape)
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": f"{render}/{name}.png",
                           "width": width, "height": height, "parcel_id": name,
                           "render": render, "kind": placed.scene.kind,
                           "pitch_mm": scfg.pitch_mm, "families": placed.scene.families,
                           "item_boxes": item_boxes})
            for box, label, keep in zip(boxes, labels, kept, strict=True):
                if not keep:
                    continue
                x1, y1, x2, y2 = (round(float(v), 2) for v in box)
                annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                    "category_id": cat_id[label],
                                    "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
                                    "area": round((x2 - x1) * (y2 - y1), 2), "iscrowd": 0})
        if progress:
            print(f"[{n + 1}/{count}] {name} {width}x{height} threats: "
                  f"{', '.join(labels) or 'none'}", flush=True)
    coco = {"info": {"description": "edge simulated parcels", "seed": scfg.seed,
                     "scanner": scfg.model_dump(mode="json")},
            "images": images, "annotations": annotations, "categories": categories()}
    (out / "annotations.json").write_text(json.dumps(coco) + "\n")
    return {"parcels": count, "images": len(images), "annotations": len(annotations),
            "out": str(out)}
