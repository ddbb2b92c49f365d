"""Training data: simulated parcels written once to a cache, labelled real scans mixed in, and
the augmentations that keep the model honest about shape rather than our renderer's colours.

A sample is cut the way the runtime cuts parcels (``edge.detect.pre``: height fills the input,
tiles along the belt) but at a random zoom, so one model serves pixel pitches from 0.5 to 2 mm
and images from 500 to 3,000 pixels a side.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from edge.config import EdgeConfig
from edge.detect.boxes import area, clip_to_image
from edge.detect.pre import as_bgr8, shrink
from simulator.dataset import write_dataset
from simulator.phantoms import THREAT_CLASSES

INPUT = 320
PAD = 255
MIN_VISIBLE = 0.6   # share of a box that must stay in a crop for it to remain a target
HELD_OVER_INPUT = 1.25   # images are held in memory at this many times the input side:
                         # decoded once, cropped fast, and only the largest zooms upsample
FOCUS = 0.7         # share of crops placed around a threat (a random crop often misses it)
# Scanner set-ups the shards cycle through: (pixel pitch mm, pixels across the tunnel).
SETUPS = ((1.0, 768), (1.5, 512), (0.8, 960), (1.0, 768))


@dataclass(frozen=True)
class Record:
    path: Path
    boxes: np.ndarray      # float32 [N, 4] xyxy, image pixels
    classes: np.ndarray    # int64 [N], index into THREAT_CLASSES


def _shard(args) -> dict:
    out, count, seed, setup, threat_share = args
    pitch, pixels = setup
    config = EdgeConfig()
    config = config.model_copy(update={"scanner": config.scanner.model_copy(update={
        "pitch_mm": pitch, "n_pixels": pixels, "threat_share": threat_share})})
    return write_dataset(config, count, Path(out), seed=seed, raw_and_photo=False)


def generate(root: Path, parcels: int, seed: int, workers: int = 2, shards: int | None = None,
             threat_share: float = 0.7) -> list[Path]:
    """Simulate ``parcels`` parcels into ``root/shard-k`` folders (by default one per ten
    parcels, one to eight); reuses finished shards."""
    if shards is None:
        shards = max(1, min(8, parcels // 10))
    per = -(-parcels // shards)
    jobs, folders = [], []
    for k in range(shards):
        folder = root / f"shard-{k}"
        folders.append(folder)
        if (folder / "annotations.json").is_file():
            continue
        jobs.append((str(folder), per, seed * 1000 + k, SETUPS[k % len(SETUPS)], threat_share))
    if jobs:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_shard, jobs))
    return folders


def coco_records(folder: Path, classes=THREAT_CLASSES) -> list[Record]:
    coco = json.loads((folder / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_image: dict[int, list] = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        by_image[a["image_id"]].append(a)
    records = []
    for im in coco["images"]:
        anns = [a for a in by_image[im["id"]] if names[a["category_id"]] in classes]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)],
                         np.float32).reshape(-1, 4)
        cls = np.array([classes.index(names[a["category_id"]]) for a in anns], np.int64)
        records.append(Record(folder / im["file_name"], boxes, cls))
    return records


def read_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return as_bgr8(image)


def is_grey(img: np.ndarray) -> bool:
    """A single-energy grey view stored as BGR: no palette to shift or swap."""
    return bool(np.array_equal(img[..., 0], img[..., 2]))


# Wide augmentation stops short of every style models.styles scores (gamma 0.4 and 2.5, a
# palette turned 90 degrees, noise sigma 16, sharpening 1.5, JPEG quality 30), so that those
# rows stay held out: they measure how far beyond its training a model carries.
WIDE_GAMMA = (0.5, 2.0)


def photometric(img: np.ndarray, rng: np.random.Generator,
                gamma_range: tuple[float, float] | None = None, wide: bool = False) -> np.ndarray:
    """Vendor palettes, grey single-energy views, contrast curves, noise and blur. Contrast
    curves are gamma 0.6-1.6, drawn uniformly (the shipped model's recipe), or drawn
    log-uniformly from ``gamma_range``.

    ``wide`` reaches further, towards what other scanners show: palettes turned up to 70
    degrees, gamma 0.5-2.0 (log-uniform, unless ``gamma_range``), noise up to sigma 12, and on
    top display windows, sharpening and JPEG compression, which the simulator never makes."""
    grey = is_grey(img)
    if not grey and rng.random() < 0.5:
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        turn = 35 if wide else 25
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + int(rng.integers(-turn, turn + 1))) % 180)
        sat = hsv[..., 1].astype(np.float32) * rng.uniform(0.5, 1.3)
        hsv[..., 1] = sat.clip(0, 255).astype(np.uint8)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    if not grey and rng.random() < 0.15:
        img = img[..., rng.permutation(3)]
    if not grey and rng.random() < 0.15:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if wide and gamma_range is None:
        gamma_range = WIDE_GAMMA
    if rng.random() < 0.5:
        gamma = rng.uniform(0.6, 1.6) if gamma_range is None else \
            float(np.exp(rng.uniform(*np.log(gamma_range))))
        table = (255 * (np.arange(256) / 255) ** gamma).astype(np.uint8)
        img = cv2.LUT(img, table)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.2))
    if rng.random() < 0.4:
        noise = rng.normal(0, rng.uniform(2, 12 if wide else 8), img.shape[:2])[..., None]
        img = (img.astype(np.float32) + noise).clip(0, 255).astype(np.uint8)
    if wide:
        img = _display(img, rng)
    return np.ascontiguousarray(img)


def _display(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a scanner's display path adds: a contrast window, sharpening, JPEG."""
    if rng.random() < 0.2:
        lo, hi = rng.uniform(0, 40), rng.uniform(200, 255)
        table = ((np.arange(256) - lo) * 255 / (hi - lo)).clip(0, 255).astype(np.uint8)
        img = cv2.LUT(img, table)
    if rng.random() < 0.2:
        blurred = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 2.0))
        img = cv2.addWeighted(img, 1 + (amount := rng.uniform(0.3, 1.0)), blurred, -amount, 0)
    if rng.random() < 0.2:
        quality = int(rng.integers(45, 91))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


def _start(rng, extent: int, size: int, lo: float | None = None, hi: float | None = None):
    """A crop start along one axis: anywhere, or so that [lo, hi] lies inside the crop."""
    first, last = min(0, extent - size), max(0, extent - size)
    if lo is not None:
        first, last = max(first, int(np.ceil(hi)) - size), min(last, int(lo))
        if first > last:   # the object is larger than the crop: centre on it
            return int(round((lo + hi - size) / 2))
    return int(rng.integers(first, last + 1))


def crop(img: np.ndarray, boxes: np.ndarray, classes: np.ndarray, rng: np.random.Generator,
         size: int = INPUT, zoom: tuple[float, float] = (0.55, 1.8), base: float | None = None,
         focus: float = 0.0):
    """Random-zoom square crop, white padded; boxes cut below MIN_VISIBLE are dropped.

    ``base`` is the scale at which the runtime would see this image (height fills the input);
    with probability ``focus`` the crop is placed around one of the boxes."""
    h, w = img.shape[:2]
    scale = (size / h if base is None else base) * float(np.exp(rng.uniform(*np.log(zoom))))
    sw, sh = max(int(round(w * scale)), 1), max(int(round(h * scale)), 1)
    img = shrink(img, sw, sh)   # the runtime's own resize (edge.detect.pre)
    if len(boxes) and rng.random() < focus:
        bx = boxes[int(rng.integers(len(boxes)))] * scale
        x0, y0 = _start(rng, sw, size, bx[0], bx[2]), _start(rng, sh, size, bx[1], bx[3])
    else:
        x0, y0 = _start(rng, sw, size), _start(rng, sh, size)
    canvas = np.full((size, size, 3), PAD, np.uint8)
    sx, sy = max(x0, 0), max(y0, 0)
    part = img[sy:sy + size, sx:sx + size]
    canvas[sy - y0:sy - y0 + part.shape[0], sx - x0:sx - x0 + part.shape[1]] = part
    b = boxes * scale - np.array([x0, y0, x0, y0], np.float32)
    clipped = clip_to_image(b.copy(), (size, size))
    whole = np.prod(np.maximum(b[:, 2:] - b[:, :2], 1e-3), 1)   # sides >= 1e-3: drops flat boxes
    kept = area(clipped.T) >= MIN_VISIBLE * whole
    return canvas, clipped[kept], classes[kept]


def flip_rotate(img, boxes, rng):
    size = img.shape[0]
    if rng.random() < 0.5:
        img = img[:, ::-1]
        boxes = np.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], 1)
    if rng.random() < 0.5:
        img = img[::-1]
        boxes = np.stack([boxes[:, 0], size - boxes[:, 3], boxes[:, 2], size - boxes[:, 1]], 1)
    if rng.random() < 0.5:   # transpose: a quarter turn with the flips above
        img = img.transpose(1, 0, 2)
        boxes = boxes[:, [1, 0, 3, 2]]
    return np.ascontiguousarray(img), boxes.astype(np.float32).reshape(-1, 4)


class TrainSet(torch.utils.data.Dataset):
    """Training samples: every image decoded once and held at HELD_OVER_INPUT times the input
    side in height (data loader processes share it by fork), then cut, zoomed, turned and
    repainted per epoch.

    Objects keep the scale the runtime sees (parcel height to ``input_side``, the model's
    input) whatever ``size`` the crops are: a smaller crop is a cheaper step, not a different
    scale."""

    def __init__(self, records: list[Record], seed: int, size: int = INPUT,
                 progress: bool = False, mosaic: float = 0.0,
                 gamma: tuple[float, float] | None = None, input_side: int = INPUT,
                 wide: bool = False):
        self.records, self.seed, self.size, self.epoch = records, seed, size, 0
        self.wide = wide
        self.input_side = input_side
        self.mosaic, self.gamma = mosaic, gamma
        self.images, self.shrink = [], []
        held = round(HELD_OVER_INPUT * input_side)
        items = records
        if progress:
            from tqdm import tqdm
            items = tqdm(records, desc="decode", mininterval=10)
        for r in items:
            img = read_bgr(r.path)
            f = min(1.0, held / img.shape[0])
            if f < 1:
                img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            self.images.append(img)
            self.shrink.append(f)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        rng = np.random.default_rng((self.seed, self.epoch, i))
        if rng.random() < self.mosaic:
            img, boxes, classes = self._mosaic(i, rng)
        else:
            img, boxes, classes = self._piece(i, rng, self.size)
        img = photometric(img, rng, self.gamma, self.wide)
        tensor = torch.from_numpy(img.transpose(2, 0, 1).copy()).float().div_(255.0)
        return tensor, torch.from_numpy(boxes), torch.from_numpy(classes)

    def _piece(self, i: int, rng, size: int, zoom=(0.55, 1.8)):
        r, img, f = self.records[i], self.images[i], self.shrink[i]
        # The runtime scales the original height to the input; the held copy, being the same
        # image, maps its own height to the input too.
        base = self.input_side / img.shape[0]
        img, boxes, classes = crop(img, r.boxes * f, r.classes, rng, size, zoom, base=base,
                                   focus=FOCUS)
        img, boxes = flip_rotate(img, boxes, rng)
        return img, boxes, classes

    def _mosaic(self, i: int, rng):
        """Four half-size crops (this record and three others) side by side: four times the
        objects per sample at the same cost, at the runtime's scale (zoom capped so most
        objects still fit a quarter)."""
        half = self.size // 2
        canvas = np.empty((self.size, self.size, 3), np.uint8)
        all_boxes, all_classes = [], []
        for q, k in enumerate([i, *rng.integers(len(self), size=3)]):
            img, boxes, classes = self._piece(int(k), rng, half, zoom=(0.55, 1.2))
            y0, x0 = (q // 2) * half, (q % 2) * half
            canvas[y0:y0 + half, x0:x0 + half] = img
            all_boxes.append(boxes + np.array([x0, y0, x0, y0], np.float32))
            all_classes.append(classes)
        return canvas, np.concatenate(all_boxes), np.concatenate(all_classes)


def collate(batch):
    images = torch.stack([b[0] for b in batch])
    m = max([len(b[1]) for b in batch] + [1])
    boxes = torch.zeros(len(batch), m, 4)
    classes = torch.zeros(len(batch), m, dtype=torch.long)
    valid = torch.zeros(len(batch), m, dtype=torch.bool)
    for k, (_, b, c) in enumerate(batch):
        boxes[k, :len(b)], classes[k, :len(c)], valid[k, :len(b)] = b, c, True
    return images, boxes, classes, valid


def main(argv=None) -> int:
    """Simulate a labelled set on its own: the calibration parcels ``make train`` chooses the
    operating point on, more than the validation set it trains with."""
    p = argparse.ArgumentParser(description="Simulate labelled parcels into OUT/shard-k "
                                            "(finished shards are reused)")
    p.add_argument("out", type=Path)
    p.add_argument("--parcels", type=int, required=True)
    p.add_argument("--seed", type=int, required=True,
                   help="the split's seed (models.train uses 1, 1001 and 2001 for training, "
                        "validation and test)")
    p.add_argument("--threat-share", type=float, default=0.7,
                   help="share of parcels that carry a threat (0: clear parcels only, what "
                        "models.false_alarms reads)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if args.parcels < 1:
        p.error(f"--parcels must be at least 1, got {args.parcels}")
    if not 0 <= args.threat_share <= 1:
        p.error(f"--threat-share must be within 0-1, got {args.threat_share}")
    started = time.time()
    folders = generate(args.out, args.parcels, args.seed, args.workers,
                       threat_share=args.threat_share)
    images = sum(len(coco_records(f)) for f in folders)
    print(f"{args.out}: {images} images in {len(folders)} shards ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
